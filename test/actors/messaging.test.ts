import { afterEach, describe, expect, it } from 'vitest';
import { ActorError, ActorSystem, defineActor, type ActorRef } from '../../src/actors/index.js';
import { PROBE, waitFor } from './helpers.js';

let sys: ActorSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

const code = (e: unknown): string | undefined => (e instanceof ActorError ? e.code : undefined);

describe('tell and ask', () => {
  it('asks a worker actor, values round-trip through msgpackr (bigint, bytes)', async () => {
    sys = new ActorSystem();
    const ref = await sys.spawnWorker({ module: PROBE, args: { name: 'a' } });
    const info = await sys.ask<{ threadId: number; name: string }>(ref, { type: 'info' });
    expect(info.threadId).toBeGreaterThan(0);
    expect(info.threadId).toBe(sys.threadIdOf(ref));
    expect(info.name).toBe('a');
    const v = { n: 2n ** 70n, b: new Uint8Array([1, 2, 3]), s: 'x', m: new Map([[1, 'one']]) };
    expect(await sys.ask(ref, { type: 'echo', v })).toEqual(v);
  });

  it('routes tell and ask between two workers, and between a worker and a main-thread actor', async () => {
    sys = new ActorSystem();
    const a = await sys.spawnWorker({ module: PROBE });
    const b = await sys.spawnWorker({ module: PROBE });
    expect(sys.threadIdOf(a)).not.toBe(sys.threadIdOf(b));
    expect(await sys.ask(a, { type: 'askOther', to: b, msg: { type: 'echo', v: 42 } })).toEqual({ ok: 42 });
    const local = await sys.spawnLocal(
      defineActor<{ v: number }, null, null>({
        init: () => null,
        receive: (m, _s, ctx) => ctx.reply(m.v * 2),
      }),
      null,
    );
    expect(await sys.ask(a, { type: 'askOther', to: local, msg: { v: 21 } })).toEqual({ ok: 42 });
    // main-thread actor asking a worker actor, same API
    const asker = await sys.spawnLocal(
      defineActor<{ to: ActorRef }, null, null>({
        init: () => null,
        async receive(m, _s, ctx) {
          const r = ctx.replier()!;
          r.reply(await ctx.ask(m.to, { type: 'echo', v: 'hi' }));
        },
      }),
      null,
    );
    expect(await sys.ask(asker, { to: b })).toBe('hi');
  });

  it('answers later through a replier', async () => {
    sys = new ActorSystem();
    const a = await sys.spawnWorker({ module: PROBE });
    const p1 = sys.ask(a, { type: 'deferred' });
    const p2 = sys.ask(a, { type: 'deferred' });
    sys.tell(a, { type: 'release', v: 'later' });
    expect(await Promise.all([p1, p2])).toEqual(['later', 'later']);
  });

  it('keeps order per sender and receiver under load', async () => {
    sys = new ActorSystem();
    const a = await sys.spawnWorker({ module: PROBE, capacity: 100_000 });
    const relay = await sys.spawnWorker({ module: PROBE, capacity: 100_000 });
    const N = 2_000;
    for (let i = 0; i < N; i++) {
      sys.tell(a, { type: 'record', sender: 0, seq: i });
      sys.tell(relay, { type: 'forward', to: a, msg: { type: 'record', sender: 1, seq: i } });
    }
    let log: Array<[number, number]> = [];
    for (let i = 0; i < 200 && log.length < 2 * N; i++) {
      log = await sys.ask<Array<[number, number]>>(a, { type: 'log' });
      if (log.length < 2 * N) await new Promise((r) => setTimeout(r, 50));
    }
    expect(log.length).toBe(2 * N);
    for (const sender of [0, 1]) {
      const seqs = log.filter(([s]) => s === sender).map(([, q]) => q);
      expect(seqs).toEqual(Array.from({ length: N }, (_, i) => i));
    }
  });

  it('a full mailbox pushes back instead of growing, and drains', async () => {
    sys = new ActorSystem();
    const a = await sys.spawnWorker({ module: PROBE, capacity: 8 });
    // Keep the actor busy so nothing is taken out of its mailbox for a while.
    const busy = sys.ask(a, { type: 'busy', ms: 300 }, 10_000);
    let accepted = 0;
    let refusal: unknown;
    for (let i = 0; i < 100; i++) {
      try {
        sys.tell(a, { type: 'record', sender: 0, seq: i });
        accepted++;
      } catch (e) {
        refusal = e;
        break;
      }
    }
    expect(code(refusal)).toBe('BATON_ERR_MAILBOX_FULL');
    expect(accepted).toBeLessThanOrEqual(8);
    expect(sys.tryTell(a, { type: 'record', sender: 0, seq: -1 })).toBe(false);
    await sys.drained(a);
    expect(sys.tryTell(a, { type: 'record', sender: 0, seq: accepted })).toBe(true);
    await busy;
    const log = await sys.ask<Array<[number, number]>>(a, { type: 'log' });
    expect(log.map(([, q]) => q)).toEqual(Array.from({ length: accepted + 1 }, (_, i) => i));
  });

  it('a worker whose tell is refused is told (undelivered hook), and a dead letter is emitted', async () => {
    sys = new ActorSystem();
    const events: string[] = [];
    sys.on((e) => {
      if (e.type === 'DeadLetter') events.push(e.code);
    });
    const a = await sys.spawnWorker({ module: PROBE });
    sys.tell(a, { type: 'forward', to: { id: 'nobody' }, msg: 1 });
    let log: string[] = [];
    await waitFor(() => events.length > 0, 'dead letter');
    for (let i = 0; i < 100 && log.length === 0; i++) {
      log = await sys.ask<string[]>(a, { type: 'undeliveredLog' });
    }
    expect(log).toEqual(['nobody:BATON_ERR_NO_SUCH_ACTOR']);
    expect(events).toEqual(['BATON_ERR_NO_SUCH_ACTOR']);
  });

  it('ask times out cleanly on an actor that never answers, and a stopped actor fails at once', async () => {
    sys = new ActorSystem();
    const a = await sys.spawnWorker({ module: PROBE, watchdog: false });
    await expect(sys.ask(a, { type: 'stuck' }, 200)).rejects.toMatchObject({ code: 'BATON_ERR_ASK_TIMEOUT' });
    const b = await sys.spawnWorker({ module: PROBE });
    await sys.stop(b);
    await expect(sys.ask(b, { type: 'echo', v: 1 })).rejects.toMatchObject({ code: 'BATON_ERR_NO_SUCH_ACTOR' });
    await expect(sys.ask({ id: 'nobody' }, 1)).rejects.toMatchObject({ code: 'BATON_ERR_NO_SUCH_ACTOR' });
  });

  it('close() is idempotent and fails pending asks with BATON_ERR_CLOSED', async () => {
    sys = new ActorSystem();
    const a = await sys.spawnWorker({ module: PROBE });
    const pending = sys.ask(a, { type: 'deferred' }, 10_000);
    const c1 = sys.close();
    const c2 = sys.close();
    expect(c1).toBe(c2);
    await expect(pending).rejects.toMatchObject({ code: 'BATON_ERR_CLOSED' });
    await c1;
    await expect(sys.ask(a, { type: 'echo', v: 1 })).rejects.toMatchObject({ code: 'BATON_ERR_CLOSED' });
  });
});
