/**
 * The configuration across nodes on real relays: two Baton clusters in one process
 * (two "nodes", each with its own relays on worker threads) over one store, each
 * driven through clusterRelays by its NodeConfigAgent. A session from node A resumes
 * on node B, across a rotation too; a certificate rollout reaches both; a version the
 * relays refuse is aborted on both.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryKvStore } from '../../src/cluster/memory-kv.js';
import { NodeConfigAgent } from '../../src/cluster/node-config-agent.js';
import { clusterRelays } from '../../src/cluster/node-relays.js';
import type { RolloutResult } from '../../src/cluster/rollout.js';
import { MISMATCHED, RSA } from '../helpers/config-nodes.js';
import { P256_CERT, startTestCluster, until, visit, type TestCluster } from '../helpers/cluster.js';

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
const store = new MemoryKvStore();
const live = new Set(['node-a', 'node-b']);
let a: TestCluster;
let b: TestCluster;
let agentA: NodeConfigAgent;
let agentB: NodeConfigAgent;

const start = (name: string, test: TestCluster) =>
  NodeConfigAgent.start({ store, cluster: 'test', node: name, relays: clusterRelays(test.cluster), liveNodes: () => [...live], rolloutDeadlineMs: 20_000, joinTimeoutMs: 20_000 });

beforeAll(async () => {
  [a, b] = await Promise.all([startTestCluster({ relays: 2 }), startTestCluster({ relays: 2, certificates: [RSA] })]);
  agentA = await start('node-a', a);
  agentB = await start('node-b', b);
}, 60_000);

afterAll(async () => {
  await agentA?.close();
  await agentB?.close();
  await Promise.all([a?.close(), b?.close()]);
});

describe('configuration across two real nodes', () => {
  it('node-b comes up on node-a\'s version: its certificate and its ticket keys', async () => {
    expect(b.cluster.activeConfig).toEqual(a.cluster.activeConfig);
    expect((await visit(b.cluster)).fingerprint).toBe(fingerprint(P256_CERT.cert));
  });

  it('a session issued on node-a resumes on node-b, and still after a rotation', async () => {
    const first = await visit(a.cluster);
    expect(first.session).toBeDefined();
    expect((await visit(b.cluster, first.session)).reused).toBe(true);
    const r = await agentB.rotateTicketKeys();
    expect(r.ok).toBe(true);
    await until('both nodes on the rotated version', () => a.cluster.activeConfig.version === r.version && b.cluster.activeConfig.version === r.version, 10_000);
    expect((await visit(a.cluster, first.session)).reused).toBe(true);
    const fresh = await visit(b.cluster);
    expect((await visit(a.cluster, fresh.session)).reused).toBe(true);
  });

  it('a certificate rolled out from node-a is served by both; one the relays refuse is aborted on both', async () => {
    // What baton reload's handler gets from cluster.reconfigure today, it gets from the agent on a joined node.
    const t0 = performance.now();
    const r: RolloutResult = await agentA.rollOut((t) => ({ ...t, certificates: [RSA] }));
    expect(r.ok).toBe(true);
    await until('node-b on the new version', () => b.cluster.activeConfig.digest === a.cluster.activeConfig.digest, 10_000, 1);
    console.log(`two nodes x 2 relays, memory store: rollout to active on both in ${(performance.now() - t0).toFixed(1)} ms`);
    expect((await visit(a.cluster)).fingerprint).toBe(fingerprint(RSA.cert));
    expect((await visit(b.cluster)).fingerprint).toBe(fingerprint(RSA.cert));
    const active = a.cluster.activeConfig;
    const bad = await agentB.rollOut((t) => ({ ...t, certificates: [MISMATCHED] }));
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.reason).toMatch(/node node-[ab] refused version \d+: relay-\d refused version \d+/);
    expect(a.cluster.activeConfig).toEqual(active);
    expect(b.cluster.activeConfig).toEqual(active);
    expect((await visit(b.cluster)).fingerprint).toBe(fingerprint(RSA.cert));
  });
});
