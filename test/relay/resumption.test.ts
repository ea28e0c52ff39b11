/**
 * Session tickets issued by one relay resume on every other relay of the
 * cluster (the ticket keys are shared), without a full handshake.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cluster } from '../../src/relay/cluster.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { caPem } from '../helpers/interop.js';

let test: TestCluster;
let cluster: Cluster;

beforeAll(async () => {
  test = await startTestCluster();
  cluster = test.cluster;
}, 60_000);

afterAll(async () => {
  await test?.close();
});

/** Connects (optionally resuming), echoes a line, and returns the session, whether it was reused, and the owner relay. */
async function visit(session?: Buffer): Promise<{ session: Buffer; reused: boolean; owner: string }> {
  const s = tls.connect({ host: '127.0.0.1', port: cluster.address.port, ca: caPem, servername: 'localhost', ...(session ? { session } : {}) });
  let ticket: Buffer | undefined;
  s.on('session', (t: Buffer) => (ticket ??= t));
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', () => resolve());
    s.once('error', reject);
  });
  const owner = cluster.gateway.connections().at(-1)!.owner;
  s.write('ping\n');
  await new Promise<void>((resolve) => s.once('data', () => resolve()));
  const reused = s.isSessionReused();
  s.end();
  await new Promise((r) => s.once('close', r));
  return { session: ticket ?? session!, reused, owner };
}

it('a ticket from one relay resumes on each of the others', async () => {
  const first = await visit();
  expect(first.reused).toBe(false);
  const owners = new Set([first.owner]);
  // Round-robin placement moves each new connection to the next relay.
  for (let i = 0; i < 3; i++) {
    const again = await visit(first.session);
    expect(again.reused).toBe(true);
    owners.add(again.owner);
  }
  expect(owners.size).toBe(3);
});
