/**
 * The shared {@link KvStore} contract (test/helpers/kv-contract.ts), the one the memory
 * store passes, run against the NATS adapter on a real nats-server: a fresh bucket per
 * test, so no test sees another's keys. The node configuration agent relies on exactly
 * this (watch after start, in revision order; CAS; prefixes ending in '.').
 */
import { afterAll, beforeAll } from 'vitest';
import { connectNats, parseNatsUrl, type NatsConnection, type NatsUrl } from '../../src/cluster/nats-connection.js';
import { openNatsKv } from '../../src/cluster/nats-kv.js';
import { createLogger } from '../../src/util/log.js';
import { kvContract } from '../helpers/kv-contract.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

let server: NatsServer;
let nc: NatsConnection;
let buckets = 0;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connectNats({ url: parseNatsUrl(server.url) as NatsUrl, name: 'kv-contract', log: createLogger({ level: 'error' }) });
}, 30_000);

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

kvContract('NATS JetStream bucket', async () => {
  const bucket = `contract_${++buckets}`;
  return { store: await openNatsKv(nc, { bucket }) };
});
