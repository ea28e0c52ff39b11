/**
 * Membership on a real nats-server: heartbeats in a TTL bucket. A node appears to the
 * others, one that stops beating (killed: no goodbye) expires after the TTL, one that
 * closes leaves at once, a name held by a live node is refused and the name of a dead
 * run is taken over; NATS going away is logged and the node beats again when it is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats, parseNatsUrl, type NatsConnection, type NatsUrl } from '../../src/cluster/nats-connection.js';
import { openNatsKv } from '../../src/cluster/nats-kv.js';
import { Membership, memberKey, type MemberInfo } from '../../src/cluster/membership.js';
import { createLogger } from '../../src/util/log.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { until } from '../helpers/wait.js';

let server: NatsServer;
const conns: NatsConnection[] = [];
const lines: string[] = [];
const log = createLogger({ level: 'info', destination: { write: (l: string) => lines.push(l) } });

/** Whether log line `l` is event `event` of node `node`. */
const isEvent = (l: string, event: string, node: string) => l.includes(`"event":"${event}"`) && l.includes(`"node":"${node}"`);

const info = (node: string): MemberInfo => ({
  node,
  admin: '127.0.0.1:1',
  relays: [{ name: 'relay-0', up: true, restarts: 0 }],
  connections: { active: 0, opened: 0 },
  config: { version: 1, digest: 'd' },
  startedAt: new Date().toISOString(),
  incarnation: node,
});

async function member(bucket: string, node: string, heartbeatMs = 100): Promise<{ m: Membership; nc: NatsConnection }> {
  const nc = await connectNats({ url: parseNatsUrl(server.url) as NatsUrl, name: node, log, reconnectWaitMs: 100 });
  conns.push(nc);
  const kv = await openNatsKv(nc, { bucket, ttlMs: 1_000, timeoutMs: 1_000 });
  return { m: new Membership({ kv, node, log, heartbeatMs, info: () => info(node) }), nc };
}

beforeAll(async () => {
  server = await startNatsServer();
}, 30_000);

afterAll(async () => {
  await Promise.allSettled(conns.map((c) => c.close()));
  await server?.stop();
});

describe('Membership', () => {
  it('nodes appear to each other; a killed one expires after the TTL, a closed one leaves at once', async () => {
    const { m: a } = await member('m1', 'a');
    const { m: b, nc: ncB } = await member('m1', 'b');
    const { m: c } = await member('m1', 'c');
    const seen: string[] = [];
    a.on((e) => seen.push(`${e.type} ${e.node}`));
    await a.start();
    await b.start();
    await c.start();
    await until('a to see b and c', async () => (await a.refresh()).length === 3, 5_000, 50);
    expect(a.members().map((x) => x.info.node)).toEqual(['a', 'b', 'c']);
    expect(a.isLive('b')).toBe(true);
    expect(a.members()[1]!.info.relays[0]!.name).toBe('relay-0');
    // b dies without a word: its connection goes, its beats stop.
    await ncB.close();
    await until('b to expire', () => !a.isLive('b'), 5_000, 50);
    expect(a.isLive('c')).toBe(true);
    await c.close();
    await until('c to be gone', () => !a.isLive('c'), 2_000, 20);
    expect(a.members().map((x) => x.info.node)).toEqual(['a']);
    expect(seen.sort()).toEqual(['joined b', 'joined c', 'left b', 'left c']);
    expect(lines.some((l) => l.includes('"event":"membership.left"') && l.includes('"member":"b"'))).toBe(true);
    await a.close();
    await b.close();
  });

  it('refuses a name a live node beats on; takes over the name of a dead run', async () => {
    const { m: first } = await member('m2', 'x');
    await first.start();
    const { m: second } = await member('m2', 'x');
    await expect(second.start()).rejects.toMatchObject({ code: 'BATON_ERR_NODE_NAME_TAKEN', message: expect.stringMatching(/--node x: another live node/) });
    // A run that died left its entry; the next run of the node gets the name back.
    const { m: dead, nc } = await member('m3', 'y');
    await dead.start();
    await nc.close();
    const { m: next } = await member('m3', 'y');
    await next.start();
    expect(next.isLive('y')).toBe(true);
    await first.close();
    await next.close();
    await dead.close();
  });

  it('a NATS outage is logged, the node keeps its last view, and beats resume when NATS is back', async () => {
    const own = await startNatsServer();
    const nc = await connectNats({ url: parseNatsUrl(own.url) as NatsUrl, name: 'z', log, reconnectWaitMs: 100 });
    conns.push(nc);
    const kv = await openNatsKv(nc, { bucket: 'm4', ttlMs: 2_000, timeoutMs: 500 });
    const m = new Membership({ kv, node: 'z', log, heartbeatMs: 100, info: () => info('z') });
    await m.start();
    await own.stop({ keepStore: true });
    // z's own failure: the other tests' dead nodes (b, y) logged theirs already, and an
    // outage shorter than a beat's timeout is ridden out by the client's reconnect
    // buffer (no beat fails, so none resumes); the server stays down until z has failed.
    await until('z to log its failure', () => lines.some((l) => isEvent(l, 'membership.failing', 'z')), 10_000, 50);
    expect(m.members().map((x) => x.info.node)).toEqual(['z']);
    const back = await startNatsServer({ port: own.port, storeDir: own.storeDir });
    try {
      await until(() => `beats to resume; last lines: ${lines.slice(-4).join('')}`, () => lines.some((l) => isEvent(l, 'membership.resumed', 'z')), 20_000, 100);
      expect((await kv.get(memberKey('z')))).not.toBeNull();
    } finally {
      await m.close();
      await back.stop();
    }
  }, 40_000);
});
