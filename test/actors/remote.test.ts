/**
 * Remote refs over a real nats-server: two actor systems (nodes a and b), each with its
 * own NATS connection and transport. Tells and asks cross from main-thread callers,
 * main-thread actors and worker actors, and the errors are the coded ones of local refs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorSystem, defineActor, refOf, type ActorRef } from '../../src/actors/index.js';
import { RemoteTransport } from '../../src/actors/remote.js';
import { connectNats, parseNatsUrl, type NatsConnection, type NatsUrl } from '../../src/cluster/nats-connection.js';
import { createLogger } from '../../src/util/log.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { until } from '../helpers/wait.js';
import { PROBE } from './helpers.js';

const log = createLogger({ level: 'error' });
let server: NatsServer;
const conns: NatsConnection[] = [];
const systems: ActorSystem[] = [];
let a: ActorSystem;
let b: ActorSystem;

async function node(name: string, opts: { isLive?: (n: string) => boolean } = {}): Promise<{ sys: ActorSystem; t: RemoteTransport }> {
  const nc = await connectNats({ url: parseNatsUrl(server.url) as NatsUrl, name, log });
  conns.push(nc);
  const sys = new ActorSystem();
  systems.push(sys);
  const t = await RemoteTransport.start(sys, { nc, cluster: 'test', node: name, ...opts });
  return { sys, t };
}

/** A main-thread actor that keeps what it is told and answers or fails asks. */
const keeper = defineActor<{ type: 'keep'; v: unknown } | { type: 'kept' } | { type: 'refuse' }, { kept: unknown[] }>({
  name: 'keeper',
  init: () => ({ kept: [] }),
  receive(msg, state, ctx) {
    if (msg.type === 'keep') state.kept.push(msg.v);
    else if (msg.type === 'kept') ctx.reply(state.kept);
    else ctx.replier()!.fail('BATON_ERR_ASK_FAILED', 'refused on purpose');
  },
});

beforeAll(async () => {
  server = await startNatsServer();
  ({ sys: a } = await node('a'));
  ({ sys: b } = await node('b'));
}, 30_000);

afterAll(async () => {
  await Promise.allSettled(systems.map((s) => s.close()));
  await Promise.allSettled(conns.map((c) => c.close()));
  await server?.stop();
});

describe('remote refs', () => {
  it('a main-thread ask reaches a worker actor on the other node', async () => {
    const probe = await b.spawnWorker({ module: PROBE, args: { name: 'on-b' } });
    const remote = b.publicRef(probe);
    expect(remote).toEqual({ id: probe.id, node: 'b' });
    expect(a.isRemote(remote)).toBe(true);
    expect(b.isRemote(remote)).toBe(false);
    const info = await a.ask<{ name: string; threadId: number }>(remote, { type: 'info' });
    expect(info.name).toBe('on-b');
    expect(info.threadId).toBeGreaterThan(0);
    // Binary and bigint values cross intact.
    const v = { bytes: new Uint8Array([1, 2, 3]), big: 2n ** 70n, s: 'x' };
    const back = await a.ask<typeof v>(remote, { type: 'echo', v });
    expect({ ...back, bytes: [...back.bytes] }).toEqual({ ...v, bytes: [1, 2, 3] });
    // On its own node, the same ref is local.
    expect(await b.ask(remote, { type: 'echo', v: 1 })).toBe(1);
  });

  it('a tell reaches a main-thread actor on the other node', async () => {
    const k = b.publicRef(await b.spawnLocal(keeper, undefined));
    a.tell(k, { type: 'keep', v: 'one' });
    a.tell(k, { type: 'keep', v: 'two' });
    await until('both tells', async () => (await b.ask<unknown[]>(k, { type: 'kept' })).length === 2, 10_000);
    expect(await a.ask(k, { type: 'kept' })).toEqual(['one', 'two']);
  });

  it('worker actors tell and ask across nodes', async () => {
    const k = b.publicRef(await b.spawnLocal(keeper, undefined));
    const probeB = b.publicRef(await b.spawnWorker({ module: PROBE, args: { name: 'pb' } }));
    const probeA = await a.spawnWorker({ module: PROBE });
    expect(await a.ask(probeA, { type: 'askOther', to: probeB, msg: { type: 'echo', v: 42 } })).toEqual({ ok: 42 });
    a.tell(probeA, { type: 'forward', to: k, msg: { type: 'keep', v: 'from a worker' } });
    await until('the forwarded tell', async () => (await a.ask<unknown[]>(k, { type: 'kept' })).length === 1, 10_000);
    // The worker gets the remote side's coded errors too.
    expect(await a.ask(probeA, { type: 'askOther', to: refOf('nobody', 'b'), msg: { type: 'noop' } })).toEqual({ err: 'BATON_ERR_NO_SUCH_ACTOR' });
    expect(await a.ask(probeA, { type: 'askOther', to: refOf('x', 'nowhere'), msg: { type: 'noop' } })).toEqual({ err: 'BATON_ERR_UNREACHABLE' });
    expect(await a.ask(probeA, { type: 'askOther', to: probeB, msg: { type: 'stuck' }, timeoutMs: 300 })).toEqual({ err: 'BATON_ERR_ASK_TIMEOUT' });
  });

  it('the remote side answers with the codes of a local ref', async () => {
    await expect(a.ask(refOf('nobody', 'b'), { type: 'info' })).rejects.toMatchObject({ code: 'BATON_ERR_NO_SUCH_ACTOR' });
    const probe = b.publicRef(await b.spawnWorker({ module: PROBE }));
    b.inject(probe, 'throw');
    await until('the probe to be down', () => b.threadIdOf(probe) === undefined, 10_000);
    await expect(a.ask(probe, { type: 'info' })).rejects.toMatchObject({ code: 'BATON_ERR_ACTOR_DEAD' });
    const k = b.publicRef(await b.spawnLocal(keeper, undefined));
    await expect(a.ask(k, { type: 'refuse' })).rejects.toMatchObject({ code: 'BATON_ERR_ASK_FAILED', message: 'refused on purpose' });
  });

  it('an ask with no answer in time is BATON_ERR_ASK_TIMEOUT', async () => {
    const probe = b.publicRef(await b.spawnWorker({ module: PROBE }));
    const t0 = Date.now();
    await expect(a.ask(probe, { type: 'stuck' }, 300)).rejects.toMatchObject({ code: 'BATON_ERR_ASK_TIMEOUT' });
    expect(Date.now() - t0).toBeLessThan(3_000);
  });

  it('a node nobody listens for is BATON_ERR_UNREACHABLE, at once', async () => {
    const t0 = Date.now();
    await expect(a.ask(refOf('x', 'c'), { type: 'info' }, 5_000)).rejects.toMatchObject({ code: 'BATON_ERR_UNREACHABLE' });
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('a node that left is unreachable; one the membership says is gone refuses tells', async () => {
    const { sys: c, t: tc } = await node('c');
    const k = c.publicRef(await c.spawnLocal(keeper, undefined));
    expect(await a.ask(k, { type: 'kept' })).toEqual([]);
    await tc.close();
    await expect(a.ask(k, { type: 'kept' })).rejects.toMatchObject({ code: 'BATON_ERR_UNREACHABLE' });
    // After close, c is a node alone again: refs to others are unreachable, its own are local.
    expect(c.node).toBeUndefined();
    expect(() => c.tell(refOf('x', 'a'), 1)).toThrow(expect.objectContaining({ code: 'BATON_ERR_UNREACHABLE' }));
    const { sys: d } = await node('d', { isLive: (n) => n !== 'b' });
    expect(() => d.tell(refOf('x', 'b'), 1)).toThrow(expect.objectContaining({ code: 'BATON_ERR_UNREACHABLE', message: expect.stringMatching(/not a live member/) }));
  });
});

describe('a node alone', () => {
  it('routes bare refs as before and refuses refs to other nodes', async () => {
    const sys = new ActorSystem();
    systems.push(sys);
    const probe: ActorRef = await sys.spawnWorker({ module: PROBE });
    expect(probe).toEqual({ id: probe.id });
    expect(sys.publicRef(probe)).toBe(probe);
    expect(sys.node).toBeUndefined();
    expect(await sys.ask(probe, { type: 'echo', v: 'local' })).toBe('local');
    await expect(sys.ask(refOf(probe.id, 'b'), { type: 'info' })).rejects.toMatchObject({ code: 'BATON_ERR_UNREACHABLE' });
    expect(() => sys.tell(refOf(probe.id, 'b'), { type: 'noop' })).toThrow(expect.objectContaining({ code: 'BATON_ERR_UNREACHABLE' }));
  });

  it('refuses a bad node name', async () => {
    const sys = new ActorSystem();
    systems.push(sys);
    await expect(RemoteTransport.start(sys, { nc: conns[0]!, cluster: 'test', node: 'a.b' })).rejects.toMatchObject({ code: 'BATON_ERR_BAD_NAME' });
  });
});

describe('NATS down', () => {
  it('asks and tells are unreachable while NATS is away, and work again after', async () => {
    const own = await startNatsServer();
    const mk = async (name: string) => {
      const nc = await connectNats({ url: parseNatsUrl(own.url) as NatsUrl, name, log, reconnectWaitMs: 100 });
      conns.push(nc);
      const sys = new ActorSystem();
      systems.push(sys);
      await RemoteTransport.start(sys, { nc, cluster: 'down', node: name });
      return sys;
    };
    const x = await mk('x');
    const y = await mk('y');
    const k = y.publicRef(await y.spawnLocal(keeper, undefined));
    expect(await x.ask(k, { type: 'kept' })).toEqual([]);
    await own.stop({ keepStore: true });
    await until('x to see the disconnect', async () => {
      try {
        x.tell(k, { type: 'keep', v: 'lost' });
        return false;
      } catch (e) {
        return (e as { code?: string }).code === 'BATON_ERR_UNREACHABLE';
      }
    }, 10_000, 50);
    await expect(x.ask(k, { type: 'kept' }, 500)).rejects.toMatchObject({ code: 'BATON_ERR_UNREACHABLE' });
    const back = await startNatsServer({ port: own.port, storeDir: own.storeDir });
    try {
      await until('asks to work again', async () => (await x.ask(k, { type: 'kept' }, 500).catch(() => undefined)) !== undefined, 20_000, 100);
    } finally {
      await back.stop();
    }
  }, 40_000);
});
