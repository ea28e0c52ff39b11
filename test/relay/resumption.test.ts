/**
 * Session tickets issued by one relay resume on every other relay of the
 * cluster (the ticket keys are shared), without a full handshake.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cluster } from '../../src/relay/cluster.js';
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
  // Round-robin placement moves each new connection to the next relay.
  for (let i = 0; i < 3; i++) {
    const again = await visitOnce(first.session);
    expect(again.reused).toBe(true);
    owners.add(again.owner);
  }
  expect(owners.size).toBe(3);
});
