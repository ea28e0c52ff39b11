import { afterEach, describe, expect, it } from 'vitest';
import { ActorSystem, type ActorRef, type SupervisorEvent, type SystemEvent, type WorkerActorOptions } from '../../src/actors/index.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BAD_INIT, FLAKY, PROBE, waitFor } from './helpers.js';

let sys: ActorSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

const OPTS: WorkerActorOptions = { module: PROBE, watchdog: { deadlineMs: 1_000 } };
const worker = (id: string) => ({ id, start: { kind: 'worker' as const, options: OPTS } });

function threads(s: ActorSystem, refs: ActorRef[]): Array<number | undefined> {
  return refs.map((r) => s.threadIdOf(r));
}

describe('restart strategies', () => {
  it('one_for_all restarts every child', async () => {
    sys = new ActorSystem();
    const events: SupervisorEvent[] = [];
    const sup = await sys.supervise({
      strategy: 'one_for_all',
      children: [worker('a'), worker('b'), worker('c')],
      listener: (e) => events.push(e),
    });
    const refs = ['a', 'b', 'c'].map((id) => sup.childRef(id));
    const before = threads(sys, refs);
    sys.inject(refs[1]!, 'throw');
    await waitFor(() => events.filter((e) => e.type === 'Restarted').length === 3, 'three restarts');
    const after = threads(sys, refs);
    for (let i = 0; i < 3; i++) {
      expect(after[i]).toBeGreaterThan(0);
      expect(after[i]).not.toBe(before[i]);
    }
    expect(events.filter((e) => e.type === 'Crashed').map((e) => e.type === 'Crashed' && e.child)).toEqual(['b']);
    expect(events.filter((e) => e.type === 'Restarted').map((e) => e.type === 'Restarted' && e.child)).toEqual(['a', 'b', 'c']);
  });

  it('rest_for_one restarts the crashed child and those started after it', async () => {
    sys = new ActorSystem();
    const events: SupervisorEvent[] = [];
    const sup = await sys.supervise({
      strategy: 'rest_for_one',
      children: [worker('a'), worker('b'), worker('c')],
      listener: (e) => events.push(e),
    });
    const refs = ['a', 'b', 'c'].map((id) => sup.childRef(id));
    const before = threads(sys, refs);
    sys.inject(refs[1]!, 'exit');
    await waitFor(() => events.filter((e) => e.type === 'Restarted').length === 2, 'two restarts');
    const after = threads(sys, refs);
    expect(after[0]).toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
    expect(after[2]).not.toBe(before[2]);
    expect(after[2]).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === 'Restarted').map((e) => e.type === 'Restarted' && e.child)).toEqual(['b', 'c']);
  });

  it('one_for_one leaves siblings alone; WhichChildren answers by ask', async () => {
    sys = new ActorSystem();
    const events: SupervisorEvent[] = [];
    const sup = await sys.supervise({ strategy: 'one_for_one', children: [worker('a'), worker('b')], listener: (e) => events.push(e) });
    const refs = ['a', 'b'].map((id) => sup.childRef(id));
    const before = threads(sys, refs);
    sys.inject(refs[0]!, 'terminate');
    await waitFor(() => events.some((e) => e.type === 'Restarted'), 'restart');
    const after = threads(sys, refs);
    expect(after[0]).not.toBe(before[0]);
    expect(after[1]).toBe(before[1]);
    const rows = await sys.ask<Array<{ id: string; threadId: number }>>(sup.ref, { type: 'WhichChildren' });
    expect(rows.map((r) => [r.id, r.threadId])).toEqual([
      ['a', after[0]],
      ['b', after[1]],
    ]);
  });

  it('one_for_one: a sibling crashing during a restart does not cancel it; both come back and are announced', async () => {
    sys = new ActorSystem();
    const events: SupervisorEvent[] = [];
    const sup = await sys.supervise({
      strategy: 'one_for_one',
      intensity: 10,
      children: [worker('a'), worker('b')],
      listener: (e) => events.push(e),
    });
    const refs = ['a', 'b'].map((id) => sup.childRef(id));
    const before = threads(sys, refs);
    sys.inject(refs[0]!, 'terminate');
    // b dies while a's new worker is still starting.
    sys.inject(refs[1]!, 'terminate');
    await waitFor(() => events.filter((e) => e.type === 'Restarted').length === 2, 'two restarts');
    const restarted = events.filter((e) => e.type === 'Restarted').map((e) => e.type === 'Restarted' && e.child);
    expect(restarted.sort()).toEqual(['a', 'b']);
    const after = threads(sys, refs);
    for (let i = 0; i < 2; i++) {
      expect(after[i]).toBeGreaterThan(0);
      expect(after[i]).not.toBe(before[i]);
    }
  });

  it('beforeRestart holds a crashed child back until it settles; other children restart meanwhile', async () => {
    sys = new ActorSystem();
    const events: SupervisorEvent[] = [];
    const asked: string[] = [];
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const sup = await sys.supervise({
      strategy: 'one_for_one',
      intensity: 10,
      children: [worker('a'), worker('b')],
      listener: (e) => events.push(e),
      beforeRestart: (child) => {
        asked.push(child);
        return child === 'a' ? held : Promise.reject(new Error('a rejection counts as settled'));
      },
    });
    const restarted = (child: string) => events.some((e) => e.type === 'Restarted' && e.child === child);
    sys.inject(sup.childRef('a'), 'throw');
    await waitFor(() => asked.includes('a'), 'a held');
    sys.inject(sup.childRef('b'), 'throw');
    await waitFor(() => restarted('b'), 'the restart of b');
    expect(restarted('a')).toBe(false);
    release();
    await waitFor(() => restarted('a'), 'the restart of a');
    expect(asked).toEqual(['a', 'b']);
    expect(events.map((e) => (e.type === 'Crashed' || e.type === 'Restarted' ? `${e.type} ${e.child}` : e.type))).toEqual([
      'Crashed a',
      'Crashed b',
      'Restarted b',
      'Restarted a',
    ]);
  });

  it('temporary children are not restarted', async () => {
    sys = new ActorSystem();
    const events: SupervisorEvent[] = [];
    const sup = await sys.supervise({
      strategy: 'one_for_one',
      intensity: 10,
      children: [{ ...worker('t'), restart: 'temporary' }, worker('p')],
      listener: (e) => events.push(e),
    });
    const restarted = (child: string) => events.some((e) => e.type === 'Restarted' && e.child === child);
    sys.inject(sup.childRef('t'), 'throw');
    await waitFor(() => events.some((e) => e.type === 'Crashed' && e.child === 't'), 'the crash of t');
    // The proof that t is not restarted is a restart that would come after one of t: the
    // permanent sibling p, crashed after t, is restarted; then we wait as long again as (plus a margin)
    // p's restart took (measured, so a slow machine waits longer).
    const crashedAt = Date.now();
    sys.inject(sup.childRef('p'), 'throw');
    await waitFor(() => restarted('p'), 'the restart of p');
    const restartMs = Date.now() - crashedAt;
    await waitFor(() => restarted('t'), 'a restart of t', restartMs + 200).catch(() => undefined);
    expect(restarted('t')).toBe(false);
    expect(events.map((e) => e.type === 'Crashed' || e.type === 'Restarted' ? `${e.type} ${e.child}` : e.type)).toEqual(['Crashed t', 'Crashed p', 'Restarted p']);
    expect(sup.whichChildren().map((c) => c.id)).toEqual(['p']);
  });
});

describe('restart intensity and escalation', () => {
  it('exceeding the intensity escalates to the parent, which restarts the child supervisor', async () => {
    sys = new ActorSystem();
    const all: SystemEvent[] = [];
    sys.on((e) => all.push(e));
    const top = await sys.supervise({
      id: 'top',
      strategy: 'one_for_one',
      intensity: 5,
      periodMs: 30_000,
      children: [
        {
          id: 'inner',
          start: {
            kind: 'supervisor',
            spec: { id: 'inner', strategy: 'one_for_one', intensity: 1, periodMs: 30_000, children: [worker('w')] },
          },
        },
      ],
    });
    const inner = top.childRef('inner');
    const innerSup = (await sys.ask<Array<{ id: string; ref: ActorRef }>>(inner, { type: 'WhichChildren' }))[0]!;
    const w = innerSup.ref;
    const t0 = sys.threadIdOf(w);
    // First crash: within intensity 1, the inner supervisor restarts w.
    sys.inject(w, 'throw');
    await waitFor(() => all.some((e) => e.type === 'Restarted' && e.child === 'w'), 'first restart');
    const t1 = sys.threadIdOf(w);
    expect(t1).not.toBe(t0);
    // Second crash inside the period: inner gives up, escalates; top restarts inner, which starts w afresh.
    sys.inject(w, 'throw');
    await waitFor(() => all.some((e) => e.type === 'Restarted' && e.child === 'inner'), 'inner restarted by top');
    expect(all.some((e) => e.type === 'Escalated' && e.child === 'w')).toBe(true);
    const crashOfInner = all.find((e) => e.type === 'Crashed' && e.supervisor !== undefined && e.child === 'inner');
    expect(crashOfInner?.type === 'Crashed' && crashOfInner.crash.reason.kind).toBe('escalated');
    await waitFor(() => (sys!.threadIdOf(w) ?? 0) > 0, 'w running again');
    expect(sys.threadIdOf(w)).not.toBe(t1);
    expect(await sys.ask(w, { type: 'echo', v: 'back' })).toBe('back');
  });

  it('a top-level supervisor that gives up reports Escalated and a Crashed system event', async () => {
    sys = new ActorSystem();
    const all: SystemEvent[] = [];
    sys.on((e) => all.push(e));
    const sup = await sys.supervise({ strategy: 'one_for_one', intensity: 0, children: [worker('w')] });
    sys.inject(sup.childRef('w'), 'exit');
    await waitFor(() => all.some((e) => e.type === 'Crashed' && e.supervisor === undefined), 'top-level crash');
    expect(all.map((e) => e.type)).toEqual(['Crashed', 'Escalated', 'Crashed']);
    expect(sys.threadIdOf(sup.childRef('w'))).toBeUndefined();
  });

  it('a supervisor whose child cannot start fails its start and stops the others', async () => {
    sys = new ActorSystem();
    const sup = sys.createSupervisor({
      strategy: 'one_for_one',
      children: [worker('ok'), { id: 'bad', start: { kind: 'worker', options: { module: BAD_INIT } } }],
    });
    await expect(sup.start()).rejects.toMatchObject({ code: 'BATON_ERR_START_FAILED' });
    expect(sys.threadIdOf(sup.childRef('ok'))).toBeUndefined();
  });

  it('a worker that dies while restarting is retried with backoff, then escalates', async () => {
    sys = new ActorSystem();
    const marker = join(mkdtempSync(join(tmpdir(), 'baton-')), 'fail');
    const events: SupervisorEvent[] = [];
    const stamps: number[] = [];
    const sup = await sys.supervise({
      strategy: 'one_for_one',
      intensity: 4,
      periodMs: 60_000,
      backoff: { initialMs: 100, factor: 2, maxMs: 1_000 },
      children: [{ id: 'flaky', start: { kind: 'worker', options: { module: FLAKY, args: { marker } } } }],
      listener: (e) => {
        events.push(e);
        if (e.type === 'Crashed') stamps.push(performance.now());
      },
    });
    writeFileSync(marker, 'x');
    sys.inject(sup.childRef('flaky'), 'throw');
    await waitFor(() => events.some((e) => e.type === 'Escalated'), 'escalation', 30_000);
    rmSync(marker);
    const crashes = events.filter((e) => e.type === 'Crashed');
    // One run-time crash, then four start-time crashes: intensity 4 allows four restarts.
    expect(crashes.map((e) => e.type === 'Crashed' && e.crash.phase)).toEqual(['run', 'start', 'start', 'start', 'start']);
    expect(events.some((e) => e.type === 'Restarted')).toBe(false);
    // Backoff gives lower bounds only (timers never fire early), so this holds on a slow machine.
    const gaps = stamps.slice(1).map((t, i) => t - stamps[i]!);
    expect(gaps[1]).toBeGreaterThanOrEqual(95);
    expect(gaps[2]).toBeGreaterThanOrEqual(195);
    expect(gaps[3]).toBeGreaterThanOrEqual(395);
  });
});
