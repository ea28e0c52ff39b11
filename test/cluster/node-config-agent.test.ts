/**
 * The configuration across nodes, three simulated nodes over one in-memory store:
 * a rollout reaches every node; a refusal, a node that stops answering, a tampered,
 * foreign or replayed block each abort it for all; membership dropping a node lets
 * the others go on; late joiners and restarted nodes come up on the active version;
 * of concurrent rollouts one wins; no secret sits in the store in clear.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeSealedConfig } from '../../src/cluster/config-codec.js';
import { ACTIVE_KEY, ROLLOUT_KEY, activeCodec, nodeKeyCodec, readConfigStatus, rolloutCodec } from '../../src/cluster/config-records.js';
import { sealBlock } from '../../src/cluster/sealed-block.js';
import { configVersion } from '../../src/cluster/config-version.js';
import type { KvStore } from '../../src/cluster/kv.js';
import { MemoryKvStore } from '../../src/cluster/memory-kv.js';
import type { CrossNodeResult } from '../../src/cluster/node-config-agent.js';
import { MISMATCHED, P256, RSA, simCluster, tlsWith, type SimCluster } from '../helpers/config-nodes.js';
import { PartitionedKvStore } from '../helpers/partitioned-kv.js';
import { TamperingKvStore } from '../helpers/tampering-kv.js';
import { until } from '../helpers/wait.js';

let sim: SimCluster | null = null;
afterEach(async () => {
  await sim?.close();
  sim = null;
});

async function threeNodes(store: KvStore = new MemoryKvStore(), deadlineMs = 5_000): Promise<SimCluster> {
  sim = simCluster(store, { rolloutDeadlineMs: deadlineMs });
  await sim.start('node-a');
  await sim.start('node-b', tlsWith(RSA));
  await sim.start('node-c', tlsWith(RSA));
  return sim;
}

const node = (s: SimCluster, name: string) => s.nodes.get(name)!;
const digests = (s: SimCluster) => [...s.nodes.values()].map((n) => n.relays.current.digest);
const versions = (s: SimCluster) => [...s.nodes.values()].map((n) => n.relays.current.version);

async function activeRecord(store: KvStore) {
  const e = await store.get(ACTIVE_KEY);
  return e ? activeCodec.decode(e.key, e.value) : null;
}
async function rolloutRecord(store: KvStore) {
  const e = await store.get(ROLLOUT_KEY);
  return e ? rolloutCodec.decode(e.key, e.value) : null;
}

function expectOk(r: CrossNodeResult): asserts r is Extract<CrossNodeResult, { ok: true }> {
  if (!r.ok) throw new Error(`rollout failed: ${r.reason}`);
}

describe('joining', () => {
  it('the first node starts the cluster on its own settings; the others come up on that version, not theirs', async () => {
    const s = await threeNodes();
    const a = node(s, 'node-a');
    expect(a.agent.running?.version).toBe(1);
    // node-b and node-c started with RSA; they run node-a's P-256 version.
    expect(new Set(digests(s)).size).toBe(1);
    expect(versions(s)).toEqual([1, 1, 1]);
    expect(node(s, 'node-b').relays.current.tls.certificates[0]!.cert).toBe(P256.cert);
    for (const n of s.nodes.values()) expect(n.agent.running?.versionId).toBe(a.agent.running?.versionId);
  });

  it('a node that starts later, or restarts with a new key, comes up on the active version', async () => {
    const s = await threeNodes();
    expectOk(await node(s, 'node-b').agent.rollOut((t) => tlsWith(RSA, t)));
    const active = (await activeRecord(s.store))!;
    expect(active.version).toBe(2);
    const late = await s.start('node-d', tlsWith(P256));
    expect(late.relays.current.digest).toBe(active.digest);
    expect(late.agent.running?.versionId).toBe(active.versionId);
    // node-c restarts: a new process, a new key pair, its file's settings.
    const before = node(s, 'node-c');
    await before.agent.close();
    const again = await s.start('node-c', tlsWith(P256));
    expect(Buffer.from(again.agent.keys.publicKey).equals(Buffer.from(before.agent.keys.publicKey))).toBe(false);
    expect(again.relays.current.digest).toBe(active.digest);
    expect(again.relays.current.version).toBe(2);
  });

  it('a cluster whose every node restarted comes back on one version', async () => {
    const s = await threeNodes();
    await Promise.all([...s.nodes.values()].map((n) => n.agent.close()));
    const restarted = await Promise.all(['node-a', 'node-b', 'node-c'].map((n) => s.start(n, tlsWith(n === 'node-a' ? P256 : RSA))));
    await until('every node on the same version', () => restarted.every((n) => n.agent.running?.versionId === restarted[0]!.agent.running?.versionId && n.agent.running !== null), 10_000);
    expect(new Set(restarted.map((n) => n.relays.current.digest)).size).toBe(1);
  });
});

describe('rollout', () => {
  it('reaches every node: staged everywhere, then active everywhere', async () => {
    const s = await threeNodes();
    const t0 = performance.now();
    const r = await node(s, 'node-b').agent.rollOut((t) => tlsWith(RSA, t));
    const ms = performance.now() - t0;
    expectOk(r);
    expect(r).toMatchObject({ version: 2, unchanged: false, nodes: ['node-a', 'node-b', 'node-c'] });
    await until('every node active on version 2', () => versions(s).every((v) => v === 2), 5_000);
    expect(new Set(digests(s))).toEqual(new Set([r.digest]));
    for (const n of s.nodes.values()) {
      expect(n.relays.stages.at(-1)?.version).toBe(2);
      expect(n.relays.current.tls.certificates[0]!.cert).toBe(RSA.cert);
    }
    expect((await rolloutRecord(s.store))?.state).toBe('committed');
    console.log(`three-node rollout, reload to active on the coordinator: ${ms.toFixed(1)} ms`);
  });

  it('back-to-back rollouts from different nodes, each started as the last returns, all succeed', async () => {
    const s = await threeNodes();
    const names = ['node-a', 'node-b', 'node-c'];
    for (let i = 0; i < 6; i++) {
      // A node still activating the last version waits for it rather than refusing.
      node(s, names[(i + 1) % 3]!).relays.holdActivations();
      setTimeout(() => node(s, names[(i + 1) % 3]!).relays.release(), 30);
      const r = await node(s, names[i % 3]!).agent.rollOut((t) => ({ ...t, alpn: [`n${i}`] }));
      expect(r, `rollout ${i}`).toMatchObject({ ok: true, version: i + 2 });
    }
    await until('every node on version 7', () => versions(s).every((v) => v === 7), 5_000);
  });

  it('the same settings again are unchanged: no new version', async () => {
    const s = await threeNodes();
    const r = await node(s, 'node-a').agent.rollOut((t) => t);
    expect(r).toMatchObject({ ok: true, unchanged: true, version: 1 });
    expect(versions(s)).toEqual([1, 1, 1]);
  });

  it('one refusing node aborts it for all: every node stays on the old version, with the reason', async () => {
    const s = await threeNodes();
    node(s, 'node-c').relays.refuseWith = 'relay-1 refused version 2: certificate expired';
    const r = await node(s, 'node-a').agent.rollOut((t) => tlsWith(RSA, t));
    expect(r).toMatchObject({ ok: false, version: 1, busy: false });
    if (r.ok) return;
    expect(r.reason).toMatch(/node node-c refused version 2: relay-1 refused version 2: certificate expired/);
    expect(versions(s)).toEqual([1, 1, 1]);
    expect((await activeRecord(s.store))?.version).toBe(1);
    expect(await rolloutRecord(s.store)).toMatchObject({ state: 'aborted', version: 2 });
    // The cluster goes on: the next rollout, once node-c accepts, is version 2.
    node(s, 'node-c').relays.refuseWith = null;
    expectOk(await node(s, 'node-a').agent.rollOut((t) => tlsWith(RSA, t)));
    await until('every node on version 2', () => versions(s).every((v) => v === 2), 5_000);
  });

  it('a version the relays cannot load (a certificate with another key) is refused by every node and aborted', async () => {
    const s = await threeNodes();
    const r = await node(s, 'node-b').agent.rollOut((t) => tlsWith(MISMATCHED, t));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/refused version 2/);
    expect(versions(s)).toEqual([1, 1, 1]);
  });

  it('a node that stops answering cannot block the others for ever: the deadline aborts', async () => {
    const s = await threeNodes(new MemoryKvStore(), 400);
    node(s, 'node-c').relays.hang();
    const t0 = Date.now();
    const r = await node(s, 'node-a').agent.rollOut((t) => tlsWith(RSA, t));
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/node node-c did not answer version 2 within 400 ms/);
    expect((await activeRecord(s.store))?.version).toBe(1);
    expect(versions(s)).toEqual([1, 1, 1]);
    // The lock expired with the deadline: another rollout may start at once (node-c dropped by membership now).
    s.live.delete('node-c');
    const again = await node(s, 'node-b').agent.rollOut((t) => tlsWith(RSA, t));
    expectOk(again);
    expect(again.nodes).toEqual(['node-a', 'node-b']);
  });

  it('membership dropping a silent node mid-rollout lets the others activate; it catches up when it answers again', async () => {
    const s = await threeNodes();
    const c = node(s, 'node-c');
    c.relays.hang();
    const pending = node(s, 'node-a').agent.rollOut((t) => tlsWith(RSA, t));
    await until('node-a and node-b answered', async () => (await s.store.keys('config.ack.')).length >= 2, 5_000);
    s.live.delete('node-c');
    const r = await pending;
    expectOk(r);
    expect(r.nodes).toEqual(['node-a', 'node-b']);
    expect(node(s, 'node-a').relays.current.version).toBe(2);
    expect(c.relays.current.version).toBe(1);
    c.relays.release();
    s.live.add('node-c');
    await until('node-c on the active version', () => c.relays.current.version === 2 && c.agent.running?.versionId === r.versionId, 5_000);
    expect(c.relays.current.digest).toBe(r.digest);
  });

  it('a node restarted mid-rollout (a new key) refuses the block sealed for its previous run: aborted at once, then it rejoins', async () => {
    const s = await threeNodes();
    const c = node(s, 'node-c');
    c.relays.hang();
    const pending = node(s, 'node-a').agent.rollOut((t) => tlsWith(RSA, t));
    await until('node-c\'s block written', async () => (await s.store.keys('config.block.v2-')).length === 3, 5_000);
    const t0 = Date.now();
    await c.agent.close();
    c.relays.release();
    const restarted = await s.start('node-c');
    const r = await pending;
    expect(Date.now() - t0).toBeLessThan(2_500);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/node node-c restarted during the rollout of version 2: .*sealed for another key of node "node-c" \(a previous run of it\)/);
    expect(restarted.relays.current.version).toBe(1);
    expect(restarted.agent.running?.version).toBe(1);
    expectOk(await node(s, 'node-b').agent.rollOut((t) => tlsWith(RSA, t)));
    await until('every node on version 2', () => versions(s).every((v) => v === 2), 5_000);
  });

  it('of concurrent rollouts from three nodes exactly one wins, and every node runs the winner', async () => {
    const s = await threeNodes();
    for (let round = 0; round < 4; round++) {
      const names = ['node-a', 'node-b', 'node-c'];
      const certs = [P256, RSA, P256];
      const results = await Promise.all(
        names.map((n, i) => node(s, n).agent.rollOut((t) => ({ ...tlsWith(certs[(i + round) % 3]!, t), alpn: [`round-${round}-${n}`] }))),
      );
      const won = results.filter((r) => r.ok && !r.unchanged);
      expect(won, `round ${round}`).toHaveLength(1);
      for (const r of results) if (!r.ok) expect(r.busy).toBe(true);
      const winner = won[0] as Extract<CrossNodeResult, { ok: true }>;
      await until('every node on the winner', () => digests(s).every((d) => d === winner.digest), 5_000);
      expect((await activeRecord(s.store))?.versionId).toBe(winner.versionId);
    }
    expect(versions(s)).toEqual([5, 5, 5]);
  });

  it('the store unreachable: the rollout fails with why, every node keeps serving its version', async () => {
    const store = new MemoryKvStore();
    const s = await threeNodes(store);
    store.setReachable(false);
    const r = await node(s, 'node-a').agent.rollOut((t) => tlsWith(RSA, t));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/cluster store.*cannot be reached/);
    expect(versions(s)).toEqual([1, 1, 1]);
    store.setReachable(true);
    expectOk(await node(s, 'node-a').agent.rollOut((t) => tlsWith(RSA, t)));
  });
});

describe('blocks in the store that do not open', () => {
  async function tamperedCluster() {
    const tampering = new TamperingKvStore(new MemoryKvStore());
    const s = await threeNodes(tampering);
    const before = [...s.nodes.values()].map((n) => n.relays.activations.length);
    return { s, tampering, before };
  }

  async function expectNothingActivated(s: SimCluster, before: number[], store: KvStore) {
    expect((await activeRecord(store))?.version).toBe(1);
    expect(versions(s)).toEqual([1, 1, 1]);
    expect([...s.nodes.values()].map((n) => n.relays.activations.length)).toEqual(before);
    expect((await rolloutRecord(store))?.state).toBe('aborted');
  }

  it('a block changed in the store is refused by its node, with why, and nothing is activated', async () => {
    const { s, tampering, before } = await tamperedCluster();
    tampering.tamper = (key, value) => {
      if (!/^config\.block\.v2-[0-9a-f]+\.node-b$/.test(key)) return value;
      const bad = new Uint8Array(value);
      bad[bad.length - 20]! ^= 0x40;
      return bad;
    };
    const r = await node(s, 'node-a').agent.rollOut((t) => tlsWith(RSA, t));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/node node-b refused version 2: sealed block of version "v2-[0-9a-f]+" for node "node-b" does not authenticate/);
    await expectNothingActivated(s, before, tampering);
  });

  it('another node\'s block put in place of a node\'s own is refused as foreign', async () => {
    const { s, tampering, before } = await tamperedCluster();
    tampering.tamper = async (key, value, inner) => {
      const m = /^config\.block\.(v2-[0-9a-f]+)\.node-b$/.exec(key);
      if (!m) return value;
      // node-a's block of the same version (written first: nodes are sealed for in name order).
      return (await inner.get(`config.block.${m[1]}.node-a`))!.value;
    };
    const r = await node(s, 'node-c').agent.rollOut((t) => tlsWith(RSA, t));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/node node-b refused version 2: .*sealed for another node, not "node-b"/);
    await expectNothingActivated(s, before, tampering);
  });

  it('a node\'s block of an older version replayed into a new one is refused', async () => {
    const { s, tampering, before } = await tamperedCluster();
    const v1 = (await activeRecord(tampering))!.versionId;
    tampering.tamper = async (key, value, inner) => {
      if (!/^config\.block\.v2-[0-9a-f]+\.node-b$/.test(key)) return value;
      return (await inner.get(`config.block.${v1}.node-b`))!.value;
    };
    const r = await node(s, 'node-a').agent.rollOut((t) => tlsWith(RSA, t));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(new RegExp(`node node-b refused version 2: .*was sealed for version "${v1}", not "v2-`));
    await expectNothingActivated(s, before, tampering);
  });

  it('a block sealed by an outsider for a node\'s public key (valid, but without the member key) is refused', async () => {
    const { s, tampering, before } = await tamperedCluster();
    tampering.tamper = async (key, value, inner) => {
      const m = /^config\.block\.(v2-[0-9a-f]+)\.node-b$/.exec(key);
      if (!m) return value;
      // An attacker with write access to the store: reads node-b's public key, seals its own settings.
      const peer = nodeKeyCodec.decode('k', (await inner.get('config.keys.node-b'))!.value);
      const evil = { version: configVersion(2, tlsWith(MISMATCHED)), memberKey: { id: '0000000000000000', secret: new Uint8Array(32) } };
      return sealBlock({ cluster: 'test-cluster', versionId: m[1]!, node: 'node-b', recipientPublicKey: new Uint8Array(Buffer.from(peer.publicKey, 'base64url')) }, encodeSealedConfig(evil));
    };
    const r = await node(s, 'node-a').agent.rollOut((t) => tlsWith(RSA, t));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/node node-b refused version 2: .*not sealed under the cluster's member key/);
    await expectNothingActivated(s, before, tampering);
  });

  it('a late joiner whose block was tampered with does not start on it, and says why', async () => {
    const { s, tampering } = await tamperedCluster();
    tampering.tamper = (key, value) => {
      if (!key.startsWith('config.block.') || !key.endsWith('.node-d')) return value;
      const bad = new Uint8Array(value);
      bad[bad.length - 1]! ^= 0x01;
      return bad;
    };
    await expect(s.start('node-d', tlsWith(RSA), { joinTimeoutMs: 500 })).rejects.toThrow(/node-d did not get the active version 1 .* within 500 ms: .*does not authenticate/);
  });
});

describe('secrets in the store', () => {
  it('no stored value holds a private key, a ticket key or a node key in clear (raw, hex, base64)', async () => {
    const store = new MemoryKvStore();
    const s = await threeNodes(store);
    expectOk(await node(s, 'node-b').agent.rollOut((t) => tlsWith(RSA, t)));
    expectOk(await node(s, 'node-c').agent.rotateTicketKeys());
    await s.start('node-d');
    const secrets: Array<{ what: string; bytes: Buffer }> = [];
    for (const pem of [P256.key, RSA.key]) {
      const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
      secrets.push({ what: 'a certificate private key (DER)', bytes: der });
      const body = pem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
      secrets.push({ what: 'a certificate private key (PEM line)', bytes: Buffer.from(body.slice(0, 48)) });
    }
    const seen = new Set<string>();
    for (const n of s.nodes.values()) {
      const keys = n.relays.current.tls.ticketKeys;
      for (const k of [keys.current, ...(keys.previous ?? [])]) seen.add(Buffer.from(k.secret).toString('hex'));
      // The node's X25519 private key (JWK d) — reached past `private` on purpose, to look for it.
      const d = (n.agent.keys as unknown as { privateKey: KeyObject }).privateKey.export({ format: 'jwk' }).d!;
      secrets.push({ what: `node ${n.name}'s private key`, bytes: Buffer.from(d, 'base64url') });
      const member = (n.agent as unknown as { runs: { memberKey: { secret: Uint8Array } } }).runs.memberKey;
      secrets.push({ what: 'the member key', bytes: Buffer.from(member.secret) });
    }
    expect(seen.size).toBeGreaterThanOrEqual(3);
    for (const hex of seen) secrets.push({ what: 'a ticket key', bytes: Buffer.from(hex, 'hex') });
    const values = store.allValues();
    expect(values.length).toBeGreaterThan(10);
    for (const { key, value } of values) {
      const v = Buffer.from(value);
      for (const { what, bytes } of secrets) {
        for (const form of [bytes, Buffer.from(bytes.toString('hex')), Buffer.from(bytes.toString('base64')), Buffer.from(bytes.toString('base64url'))]) {
          expect(v.includes(form), `${key} holds ${what}`).toBe(false);
        }
      }
    }
  });
});

describe('the lock, missed changes and status', () => {
  it('a coordinator that died holding the lock blocks rollouts only until its deadline', async () => {
    const s = await threeNodes();
    const active = (await activeRecord(s.store))!;
    const t = Date.now();
    const stale = {
      versionId: 'v2-0123456789ab',
      version: 2,
      digest: 'f'.repeat(64),
      coordinator: 'node-x',
      nodes: ['node-a', 'node-x'],
      state: 'staging' as const,
      basedOn: active.versionId,
      startedAt: t,
      deadlineAt: t + 300,
    };
    const lock = await s.store.get(ROLLOUT_KEY);
    expect(await s.store.update(ROLLOUT_KEY, rolloutCodec.encode(stale), lock!.revision)).not.toBeNull();
    const busy = await node(s, 'node-b').agent.rollOut((x) => tlsWith(RSA, x));
    expect(busy).toMatchObject({ ok: false, busy: true, version: 1 });
    if (!busy.ok) expect(busy.reason).toMatch(/another rollout is in progress: version 2 from node node-x/);
    await until('the dead coordinator\'s deadline', () => Date.now() > t + 300, 2_000);
    expectOk(await node(s, 'node-b').agent.rollOut((x) => tlsWith(RSA, x)));
    await until('every node on version 2', () => versions(s).every((v) => v === 2), 5_000);
  });

  it('nodes whose watches were lost still stage, answer and activate, from the periodic resync', async () => {
    const store = new MemoryKvStore();
    sim = simCluster(store, { resyncMs: 100 });
    for (const n of ['node-a', 'node-b', 'node-c']) await sim.start(n);
    store.dropWatches();
    const t0 = Date.now();
    const r = await node(sim, 'node-a').agent.rollOut((x) => tlsWith(RSA, x));
    expectOk(r);
    expect(Date.now() - t0).toBeLessThan(3_000);
    await until('every node on version 2', () => versions(sim!).every((v) => v === 2), 5_000);
  });

  it('a node cut off from the store keeps serving its version, and catches up when the store is back', async () => {
    const shared = new MemoryKvStore();
    const cView = new PartitionedKvStore(shared);
    sim = simCluster(shared, { resyncMs: 100 });
    await sim.start('node-a');
    await sim.start('node-b');
    const c = await sim.start('node-c', tlsWith(P256), { store: cView });
    cView.cut = true;
    // node-c cannot answer: membership drops it (its heartbeats stop reaching the store).
    sim.live.delete('node-c');
    const r = await node(sim, 'node-a').agent.rollOut((x) => tlsWith(RSA, x));
    expectOk(r);
    expect(r.nodes).toEqual(['node-a', 'node-b']);
    expect(c.relays.current.version).toBe(1);
    await until('node-c noticed the store is gone', () => c.agent.lastError?.includes('cannot be reached') === true, 5_000);
    expect(c.relays.current.version).toBe(1);
    cView.cut = false;
    sim.live.add('node-c');
    await until('node-c on version 2', () => c.relays.current.version === 2, 5_000);
    expect(c.relays.current.digest).toBe(r.digest);
  });

  it('the status lists every node with the version it runs', async () => {
    const s = await threeNodes();
    const r = await node(s, 'node-c').agent.rollOut((x) => tlsWith(RSA, x));
    expectOk(r);
    await until('every node published version 2', async () => (await readConfigStatus(s.store)).nodes.every((n) => n.runs === r.versionId), 5_000);
    const status = await readConfigStatus(s.store);
    expect(status.active).toMatchObject({ version: 2, versionId: r.versionId, by: 'node-c' });
    expect(status.rollout).toMatchObject({ state: 'committed', versionId: r.versionId });
    expect(status.nodes.map((n) => n.node).sort()).toEqual(['node-a', 'node-b', 'node-c']);
  });
});
