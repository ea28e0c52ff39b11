/**
 * A worker's crash is handled only after every frame it sent before dying has been
 * processed (DESIGN.md, "Takeover"). The race is made on purpose: a worker tells a
 * main-thread actor 2,000 numbers and dies at once while the main thread is busy, so
 * its whole burst and its death are queued together; Node then delivers the burst and
 * fires `exit` with no microtask checkpoint between (or the watchdog's or an
 * operator's terminate() comes first, with the burst still in the port).
 */
import { afterEach, expect, it } from 'vitest';
import { ActorSystem, defineActor, type ActorRef, type Crash, type SupervisorEvent, type SystemEvent } from '../../src/actors/index.js';
import type { BurstMsg } from '../fixtures/actors/burst.js';
import { waitFor } from './helpers.js';

const BURST = new URL('../fixtures/actors/burst.ts', import.meta.url);
/** More than a main-thread mailbox holds (1024 by default; the sink's holds {@link SINK_CAPACITY}). */
const N = 2_000;
const SINK_CAPACITY = 256;
const WATCHDOG_MS = 300;

let sys: ActorSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

function busyWait(ms: number, until: () => boolean = () => false): void {
  const end = Date.now() + ms;
  while (Date.now() < end && !until()) {
    // the main thread busy on purpose: nothing of the worker's is handled meanwhile
  }
}

const cases = [
  { then: 'exit', reason: 'exit' },
  { then: 'throw', reason: 'throw' },
  // The watchdog's deadline passes while the main thread is busy: its terminate() comes
  // before the port's messages are read.
  { then: 'hang', reason: 'hang' },
  // An operator's terminate() with the burst still unread.
  { then: 'terminate', reason: 'terminated' },
] as const;

for (const { then, reason } of cases) {
  it(`${then}: the crash is handled after all ${N} frames of the dead worker's last burst, in order`, { timeout: 60_000 }, async () => {
    sys = new ActorSystem();
    const got: number[] = [];
    const sink = await sys.spawnLocal(
      defineActor<number, null, null>({ name: 'sink', init: () => null, receive: (n) => void got.push(n) }),
      null,
      { id: 'sink', capacity: SINK_CAPACITY },
    );
    const deadLetters: SystemEvent[] = [];
    sys.on((e) => {
      if (e.type === 'DeadLetter') deadLetters.push(e);
    });
    const seen: { crash: Crash; processed: number; inOrder: boolean }[] = [];
    const flag = new SharedArrayBuffer(4);
    const sup = await sys.supervise({
      strategy: 'one_for_one',
      intensity: 5,
      periodMs: 10_000,
      children: [
        {
          id: 'burst',
          restart: 'temporary',
          start: { kind: 'worker', options: { module: BURST, shared: flag, watchdog: { deadlineMs: WATCHDOG_MS } } },
        },
      ],
      listener: (e: SupervisorEvent) => {
        // What the crash handler sees: how much of the burst was processed before it ran.
        if (e.type === 'Crashed') seen.push({ crash: e.crash, processed: got.length, inOrder: got.every((v, i) => v === i) });
      },
    });
    const ref = sup.childRef('burst');
    const done = new Int32Array(flag);
    sys.tell(ref as ActorRef<BurstMsg>, { to: sink, n: N, then: then === 'terminate' ? 'hang' : then });
    // Busy until the burst is out (bounded), then a little longer so the worker is dead
    // (or, for a hang, its heartbeat deadline has passed) before the main thread looks.
    busyWait(20_000, () => Atomics.load(done, 0) === 1);
    expect(Atomics.load(done, 0)).toBe(1);
    busyWait(then === 'hang' ? 2 * WATCHDOG_MS : 100);
    if (then === 'terminate') sys.inject(ref, 'terminate');
    await waitFor(() => seen.length > 0, 'the crash', 30_000);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.crash.reason.kind).toBe(reason);
    expect(deadLetters).toEqual([]);
    expect({ processed: seen[0]!.processed, inOrder: seen[0]!.inOrder }).toEqual({ processed: N, inOrder: true });
  });
}
