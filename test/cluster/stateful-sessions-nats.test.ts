/**
 * Stateful tickets across nodes over a real nats-server: two clusters (each with its
 * own NATS connection, as two nodes have) share the ticket keys and the sessions
 * bucket. A ticket issued on A resumes once on B; replayed on A or B it gets a full
 * handshake; with NATS gone, resumption falls back to full handshakes.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SESSION_TTL_MS } from '../../src/cluster/cluster.js';
import { connectNats, parseNatsUrl, type NatsConnection, type NatsUrl } from '../../src/cluster/nats-connection.js';
import { openNatsKv, type NatsKvStore } from '../../src/cluster/nats-kv.js';
import { freshTicketKeys } from '../../src/cluster/ticket-keys.js';
import { createLogger } from '../../src/util/log.js';
import { startTestCluster, until, visit, type TestCluster } from '../helpers/cluster.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

const log = createLogger({ level: 'error' });
let server: NatsServer;
const connections: NatsConnection[] = [];
let bucket: NatsKvStore;
let a: TestCluster;
let b: TestCluster;

async function node(ticketKeys: ReturnType<typeof freshTicketKeys>, name: string): Promise<TestCluster> {
  const nc = await connectNats({ url: parseNatsUrl(server.url) as NatsUrl, name, log });
  connections.push(nc);
  const sessionKv = await openNatsKv(nc, { bucket: 'baton_test_sessions', ttlMs: SESSION_TTL_MS, timeoutMs: 1000 });
  bucket = sessionKv;
  return startTestCluster({ relays: 2, ticketMode: 'stateful', ticketKeys, sessionKv });
}

beforeAll(async () => {
  server = await startNatsServer();
  const keys = freshTicketKeys();
  a = await node(keys, 'node-a');
  b = await node(keys, 'node-b');
}, 60_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  for (const nc of connections) await nc.close();
  await server?.stop();
});

it('a stateful ticket from node A resumes once on node B, then gets a full handshake anywhere', async () => {
  const first = await visit(a.cluster);
  expect(first.reused).toBe(false);
  await until('A to store its two sessions', async () => (await bucket.keys('session.')).length >= 2, 5000);
  const onB = await visit(b.cluster, first.session);
  expect(onB.reused).toBe(true);
  expect((await visit(a.cluster, first.session)).reused).toBe(false);
  expect((await visit(b.cluster, first.session)).reused).toBe(false);
  // The ticket B issued on resumption resumes once on A.
  expect((await visit(a.cluster, onB.session)).reused).toBe(true);
}, 30_000);

it('with NATS gone, a stateful ticket gets a full handshake, not an error', async () => {
  const first = await visit(a.cluster);
  await server.kill();
  const started = performance.now();
  const again = await visit(b.cluster, first.session);
  expect(again.reused).toBe(false);
  // Within the lookup deadline (200 ms) plus a handshake, not the store's own timeout.
  expect(performance.now() - started).toBeLessThan(3000);
}, 30_000);
