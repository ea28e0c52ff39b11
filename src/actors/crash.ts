/**
 * Why an actor died, as its supervisor learns it. One discriminated union for every
 * path (worker `error`, worker `exit`, watchdog, start deadline, local throw,
 * escalation), so supervisors and listeners switch on `reason.kind`.
 */
import type { FaultKind } from './faults.js';
import type { ActorRef } from './ref.js';

export type CrashReason =
  /** Uncaught exception (worker `error` event, or a main-thread actor's receive threw). */
  | { readonly kind: 'throw'; readonly message: string; readonly code?: string }
  /** The worker called `process.exit(code)`. */
  | { readonly kind: 'exit'; readonly exitCode: number }
  /** `worker.terminate()` from the main thread: injected, or requested by a fault point. */
  | { readonly kind: 'terminated'; readonly by: 'inject' | 'fault-point' }
  /** The worker hit its `resourceLimits` (ERR_WORKER_OUT_OF_MEMORY). */
  | { readonly kind: 'oom'; readonly message: string }
  /** The watchdog saw no heartbeat (busy loop) or one message running too long (stuck promise). */
  | { readonly kind: 'hang'; readonly silentMs: number; readonly busyMs: number }
  /** The worker did not post Ready within its start deadline. */
  | { readonly kind: 'start-timeout'; readonly afterMs: number }
  /** A child supervisor exceeded its restart intensity and gave up. */
  | { readonly kind: 'escalated'; readonly child: string; readonly cause: CrashReason };

/** A crash report: who, why, when it was detected, on which thread, at which fault. */
export interface Crash {
  readonly ref: ActorRef;
  readonly reason: CrashReason;
  /** Clock time (ms since epoch) when the runtime detected the crash. */
  readonly detectedAt: number;
  /** The thread the dead incarnation ran on (0 for main-thread actors), if it got that far. */
  readonly threadId: number | undefined;
  /** Whether it died before it was Ready. */
  readonly phase: 'start' | 'run';
  /** The injected fault or armed fault point that fired last, if any. */
  readonly fault?: { readonly kind: FaultKind; readonly point?: string };
}

/** A short human-readable description of a reason, for logs and errors. */
export function describeReason(r: CrashReason): string {
  switch (r.kind) {
    case 'throw':
      return `uncaught exception: ${r.message}`;
    case 'exit':
      return `process.exit(${r.exitCode})`;
    case 'terminated':
      return `terminated (${r.by})`;
    case 'oom':
      return `out of memory: ${r.message}`;
    case 'hang':
      return `hang (silent ${r.silentMs} ms, busy ${r.busyMs} ms)`;
    case 'start-timeout':
      return `not ready after ${r.afterMs} ms`;
    case 'escalated':
      return `child ${r.child} escalated: ${describeReason(r.cause)}`;
    default: {
      const never: never = r;
      return String(never);
    }
  }
}
