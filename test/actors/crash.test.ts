import { afterEach, describe, expect, it } from 'vitest';
import {
  ActorSystem,
  type CrashReason,
  type FaultKind,
  type Supervisor,
  type SupervisorEvent,
  type WorkerActorOptions,
} from '../../src/actors/index.js';
import { PROBE, waitFor } from './helpers.js';

let sys: ActorSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

// Small heap so `oom` is quick; small watchdog deadline so `hang` is.
const OPTS: WorkerActorOptions = {
  module: PROBE,
  resourceLimits: { maxOldGenerationSizeMb: 48, maxYoungGenerationSizeMb: 8 },
  watchdog: { deadlineMs: 300, messageDeadlineMs: 1_000 },
};

// A heap-exhaustion spiral starves the heartbeat too; under load it can outlast a short
// deadline and be caught as a hang first, so only the hang case runs with 300 ms.
const RELAXED: WorkerActorOptions = { ...OPTS, watchdog: { deadlineMs: 5_000, messageDeadlineMs: 1_000 } };

async function supervised(events: SupervisorEvent[], options = OPTS): Promise<Supervisor> {
  return sys!.supervise({
    strategy: 'one_for_one',
    intensity: 10,
    periodMs: 10_000,
    children: [{ id: 'victim', start: { kind: 'worker', options } }],
    listener: (e) => events.push(e),
  });
}

const expected: Record<FaultKind, CrashReason['kind']> = {
  throw: 'throw',
  exit: 'exit',
  terminate: 'terminated',
  oom: 'oom',
  hang: 'hang',
};

describe('crash detection and one_for_one restart', () => {
  for (const kind of ['throw', 'exit', 'terminate', 'oom', 'hang'] as const) {
    it(`detects ${kind}, reports the reason and restarts on a new thread`, async () => {
      sys = new ActorSystem();
      const events: SupervisorEvent[] = [];
      const sup = await supervised(events, kind === 'oom' ? RELAXED : OPTS);
      const ref = sup.childRef('victim');
      const before = sys.threadIdOf(ref)!;
      expect(before).toBeGreaterThan(0);
      const t0 = Date.now();
      sys.inject(ref, kind);
      await waitFor(() => events.some((e) => e.type === 'Restarted'), `restart after ${kind}`, 20_000);
      const crashed = events.find((e) => e.type === 'Crashed');
      expect(crashed?.type).toBe('Crashed');
      if (crashed?.type !== 'Crashed') return;
      expect(crashed.crash.reason.kind).toBe(expected[kind]);
      expect(crashed.crash.ref.id).toBe(ref.id);
      expect(crashed.crash.threadId).toBe(before);
      expect(crashed.crash.fault?.kind).toBe(kind);
      expect(crashed.crash.detectedAt).toBeGreaterThanOrEqual(t0);
      if (kind === 'exit') expect(crashed.crash.reason).toMatchObject({ exitCode: 70 });
      const after = sys.threadIdOf(ref);
      expect(after).toBeGreaterThan(0);
      expect(after).not.toBe(before);
      // The same ref reaches the new incarnation.
      expect(await sys.ask(ref, { type: 'info' })).toMatchObject({ threadId: after });
    });
  }

  it('catches a stuck promise with the per-message deadline', async () => {
    sys = new ActorSystem();
    const events: SupervisorEvent[] = [];
    const sup = await supervised(events);
    const ref = sup.childRef('victim');
    const before = sys.threadIdOf(ref);
    const stuck = sys.ask(ref, { type: 'stuck' }, 10_000);
    await expect(stuck).rejects.toMatchObject({ code: 'BATON_ERR_ACTOR_DEAD' });
    await waitFor(() => events.some((e) => e.type === 'Restarted'), 'restart after stuck promise');
    const crashed = events.find((e) => e.type === 'Crashed');
    expect(crashed?.type === 'Crashed' && crashed.crash.reason).toMatchObject({ kind: 'hang' });
    expect(sys.threadIdOf(ref)).not.toBe(before);
  });

  it('an ask to an actor that crashes fails with BATON_ERR_ACTOR_DEAD, not a hang', async () => {
    sys = new ActorSystem();
    const events: SupervisorEvent[] = [];
    const sup = await supervised(events);
    const ref = sup.childRef('victim');
    await sys.armFaultPoint(ref, 'probe.point', 'exit');
    await expect(sys.ask(ref, { type: 'point', name: 'probe.point' }, 10_000)).rejects.toMatchObject({
      code: 'BATON_ERR_ACTOR_DEAD',
    });
  });

  it('an unsupervised crash is reported as a system event', async () => {
    sys = new ActorSystem();
    const reasons: string[] = [];
    sys.on((e) => {
      if (e.type === 'Crashed') reasons.push(e.crash.reason.kind);
    });
    const ref = await sys.spawnWorker(OPTS);
    sys.inject(ref, 'throw');
    await waitFor(() => reasons.length > 0, 'crash event');
    expect(reasons).toEqual(['throw']);
    expect(sys.threadIdOf(ref)).toBeUndefined();
    // Nobody restarts it, so its mail is refused rather than buffered forever.
    await expect(sys.ask(ref, { type: 'echo', v: 1 }, 5_000)).rejects.toMatchObject({ code: 'BATON_ERR_ACTOR_DEAD' });
  });
});

describe('fault points', () => {
  for (const kind of ['throw', 'exit', 'terminate'] as const) {
    it(`an armed '${kind}' point fires exactly at the hit it was armed for`, async () => {
      sys = new ActorSystem();
      const events: SupervisorEvent[] = [];
      const sup = await supervised(events);
      const ref = sup.childRef('victim');
      const before = sys.threadIdOf(ref);
      await sys.armFaultPoint(ref, 'relay.afterFlight', kind, { skip: 2 });
      // Other points and the first two hits pass untouched.
      expect(await sys.ask(ref, { type: 'point', name: 'relay.other' })).toBe('passed');
      expect(await sys.ask(ref, { type: 'point', name: 'relay.afterFlight' })).toBe('passed');
      expect(await sys.ask(ref, { type: 'point', name: 'relay.afterFlight' })).toBe('passed');
      expect(events).toEqual([]);
      await expect(sys.ask(ref, { type: 'point', name: 'relay.afterFlight' }, 10_000)).rejects.toMatchObject({
        code: 'BATON_ERR_ACTOR_DEAD',
      });
      await waitFor(() => events.some((e) => e.type === 'Restarted'), 'restart');
      const crashed = events.find((e) => e.type === 'Crashed');
      expect(crashed?.type === 'Crashed' && crashed.crash.fault).toEqual({ kind, point: 'relay.afterFlight' });
      expect(sys.threadIdOf(ref)).not.toBe(before);
      // Arming is per incarnation: the new one passes the point.
      expect(await sys.ask(ref, { type: 'point', name: 'relay.afterFlight' })).toBe('passed');
    });
  }
});
