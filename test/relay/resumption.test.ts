/**
 * Session tickets issued by one relay resume on every other relay of the
 * cluster (the ticket keys are shared), without a full handshake.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cluster } from '../../src/cluster/cluster.js';
import { startTestCluster, visit, type TestCluster } from '../helpers/cluster.js';

let test: TestCluster;
let cluster: Cluster;

beforeAll(async () => {
  test = await startTestCluster();
  cluster = test.cluster;
}, 60_000);

afterAll(async () => {
  await test?.close();
});

const visitOnce = (session?: Buffer) => visit(cluster, session);

it('a ticket from one relay resumes on each of the others', async () => {
  const first = await visitOnce();
  expect(first.reused).toBe(false);
  const owners = new Set([first.owner]);
  // With equal loads, placement takes turns: each new connection goes to the next relay.
  for (let i = 0; i < 3; i++) {
    const again = await visitOnce(first.session);
    expect(again.reused).toBe(true);
    owners.add(again.owner);
  }
  expect(owners.size).toBe(3);
});

it('a ticket from one cluster resumes on another that shares its ticket keys (another process after a crash)', async () => {
  const other = await startTestCluster({ relays: 2, ticketKeys: cluster.activeTls.ticketKeys });
  try {
    const first = await visitOnce();
    const elsewhere = await visit(other.cluster, first.session);
    expect(elsewhere.reused).toBe(true);
    const stranger = await startTestCluster({ relays: 2 });
    try {
      // Keys not shared: the ticket is ignored and a full handshake follows.
      expect((await visit(stranger.cluster, first.session)).reused).toBe(false);
    } finally {
      await stranger.close();
    }
  } finally {
    await other.close();
  }
});
