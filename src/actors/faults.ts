/**
 * Fault injection: the crash kinds of the fault model, named fault points that actor
 * code declares, and the table of armed points. The table is a pure value so the worker
 * host and main-thread actors share the same hit/skip/times logic.
 */

/** The ways an actor can be made to die or stop answering (DESIGN.md, "Fault model"). */
export type FaultKind = 'throw' | 'exit' | 'terminate' | 'oom' | 'hang';

export const FAULT_KINDS: readonly FaultKind[] = ['throw', 'exit', 'terminate', 'oom', 'hang'];

/** Exit code a worker uses for `process.exit` faults, so reports can tell it apart. */
export const INJECTED_EXIT_CODE = 70;

/** How long an injected hang spins before giving up (the watchdog should win long before). */
export const HANG_BOUND_MS = 60_000;

/** One armed fault point: fire `kind` after skipping `skip` hits, `times` times. */
export interface ArmedPoint {
  readonly kind: FaultKind;
  readonly skip: number;
  readonly times: number;
}

/** Options when arming: skip the first `skip` hits (default 0), fire once by default. */
export interface ArmOptions {
  readonly skip?: number;
  readonly times?: number;
}

/** Armed points by name. Empty in production, so `faultPoint()` is one `size` check. */
export type ArmedTable = Map<string, ArmedPoint>;

/** Arms `point` in `table` (replacing any earlier arming of the same name). */
export function arm(table: ArmedTable, point: string, kind: FaultKind, opts: ArmOptions = {}): void {
  const times = opts.times ?? 1;
  if (times <= 0) {
    table.delete(point);
    return;
  }
  table.set(point, { kind, skip: Math.max(0, opts.skip ?? 0), times });
}

/**
 * Records a hit of `point` and says which fault to fire now, if any. Pure bookkeeping:
 * the caller performs the fault, because how depends on the thread it runs on.
 */
export function hit(table: ArmedTable, point: string): FaultKind | undefined {
  const a = table.get(point);
  if (a === undefined) return undefined;
  if (a.skip > 0) {
    table.set(point, { ...a, skip: a.skip - 1 });
    return undefined;
  }
  if (a.times <= 1) table.delete(point);
  else table.set(point, { ...a, times: a.times - 1 });
  return a.kind;
}

/** Allocates until V8 gives up: used for `oom` inside a worker with `resourceLimits`. */
export function exhaustMemory(): never {
  const hog: unknown[] = [];
  // Bounded only by the heap limit; under resourceLimits this ends in
  // ERR_WORKER_OUT_OF_MEMORY within a second or two.
  for (;;) hog.push(new Array(64 * 1024).fill(hog.length + 0.5));
}

/** Spins the event loop dead: used for `hang`. Bounded so a missing watchdog cannot wedge a test run forever. */
export function spin(ms = HANG_BOUND_MS): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // Busy on purpose: no heartbeat can leave this thread while we are here.
  }
}
