/**
 * Versioned configuration rolled out two-phase while connections are live:
 * a certificate swap under load, ticket-key rotation, a refused rollout, and
 * relays that crash mid-rollout or after it.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SupervisorEvent } from '../../src/actors/index.js';
import { VerifyingClient } from '../../src/cli/demo/verifying-client.js';
import type { Cluster } from '../../src/cluster/cluster.js';
import { rotateTicketKeys } from '../../src/cluster/ticket-keys.js';
import { P256_CERT as P256, startTestCluster, until, visit, type TestCluster } from '../helpers/cluster.js';
import { caPem, fixture } from '../helpers/interop.js';

const RSA = { cert: fixture('rsa.pem'), key: fixture('rsa-key.pem') };
const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

let test: TestCluster;
let cluster: Cluster;
let events: SupervisorEvent[];
const allUp = () => test.allUp();

beforeAll(async () => {
  test = await startTestCluster();
  ({ cluster, events } = test);
}, 60_000);

afterAll(async () => {
  await test?.close();
});

const visitOnce = (session?: Buffer) => visit(cluster, session);

/** Visits until every relay has served one connection (equal loads take turns); bounded. */
async function visitEveryRelay(session?: Buffer): Promise<Awaited<ReturnType<typeof visitOnce>>[]> {
  const seen = new Map<string, Awaited<ReturnType<typeof visitOnce>>>();
  for (let i = 0; i < 9 && seen.size < cluster.relayNames.length; i++) {
    const v = await visitOnce(session);
    seen.set(v.owner, v);
  }
  expect(seen.size).toBe(cluster.relayNames.length);
  return [...seen.values()];
}

describe('configuration rollout', () => {
  it('swaps the certificate under load: new handshakes get the new one, live connections carry on', async () => {
    const streaming = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const c = new VerifyingClient({ host: '127.0.0.1', port: cluster.address.port, ca: caPem, servername: 'localhost', seed: `swap-${i}`, window: 65_536 });
        await c.connect();
        c.start();
        return c;
      }),
    );
    for (const v of await visitEveryRelay()) expect(v.fingerprint).toBe(fingerprint(P256.cert));
    const before = cluster.activeConfig.version;
    const result = await cluster.reconfigure({ ...cluster.activeTls, certificates: [RSA] });
    expect(result).toMatchObject({ ok: true, version: before + 1 });
    expect(cluster.activeConfig.version).toBe(before + 1);
    for (const v of await visitEveryRelay()) expect(v.fingerprint).toBe(fingerprint(RSA.cert));
    // Connections opened before the swap carry on under it.
    const swappedAt = streaming.map((c) => c.bytesVerified);
    await until('streams going on after the swap', () => streaming.every((c, i) => c.bytesVerified > swappedAt[i]!));
    await Promise.all(streaming.map((c) => c.stop()));
    for (const c of streaming) {
      expect(c.errors).toEqual([]);
      expect(c.handshakes).toBe(1);
      expect(c.bytesVerified).toBe(c.bytesSent);
      expect(c.bytesVerified).toBeGreaterThan(0);
    }
  });

  it('a ticket issued just before a rotation resumes on every relay after it; two rotations retire it', async () => {
    const { session } = await visitOnce();
    expect(session).toBeDefined();
    expect((await cluster.reconfigure({ ...cluster.activeTls, ticketKeys: rotateTicketKeys(cluster.activeTls.ticketKeys) })).ok).toBe(true);
    for (const v of await visitEveryRelay(session)) expect(v.reused).toBe(true);
    expect((await cluster.reconfigure({ ...cluster.activeTls, ticketKeys: rotateTicketKeys(cluster.activeTls.ticketKeys) })).ok).toBe(true);
    for (const v of await visitEveryRelay(session)) expect(v.reused).toBe(false);
  });

  it('refuses a rollout with a broken certificate and keeps serving the old version', async () => {
    const before = cluster.activeConfig;
    const served = (await visitOnce()).fingerprint;
    const result = await cluster.reconfigure({ ...cluster.activeTls, certificates: [{ cert: RSA.cert, key: P256.key }] });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(/refused version .*: .*(match|key)/i);
    expect(cluster.activeConfig).toEqual(before);
    for (const v of await visitEveryRelay()) expect(v.fingerprint).toBe(served);
  });

  it('a relay crashed mid-rollout, or after it, comes back on the active version', async () => {
    await until('all relays up', allUp);
    const target = cluster.activeTls.certificates[0]!.cert === RSA.cert ? P256 : RSA;
    const rollout = cluster.reconfigure({ ...cluster.activeTls, certificates: [target] });
    cluster.inject(cluster.relayNames[1]!, 'exit');
    const result = await rollout;
    expect(result.ok).toBe(true);
    await until('all relays up', allUp);
    for (const v of await visitEveryRelay()) expect(v.fingerprint).toBe(fingerprint(target.cert));
    const restarts = events.filter((e) => e.type === 'Restarted').length;
    cluster.inject(cluster.relayNames[2]!, 'terminate');
    await until('restart', () => events.filter((e) => e.type === 'Restarted').length > restarts && allUp());
    for (const v of await visitEveryRelay()) expect(v.fingerprint).toBe(fingerprint(target.cert));
  });
});
