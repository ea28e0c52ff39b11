/**
 * The chaos test of issue 4: 50 Node `tls` clients stream random data both ways
 * through a 3-relay cluster to an echo backend, verifying every byte, while
 * relays are crashed at least 20 times with every crash kind, injected directly
 * and at fault points placed at exact protocol moments. No client may see an
 * error, reconnect, or handshake twice; no byte and no connection may be lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FaultKind, SupervisorEvent } from '../../src/actors/index.js';
import { VerifyingClient } from '../../src/cli/demo/verifying-client.js';
import type { Cluster } from '../../src/cluster/cluster.js';
import type { RelayFaultPoint } from '../../src/relay/fault-points.js';
import { startTestCluster, until, type TestCluster } from '../helpers/cluster.js';
import { caPem } from '../helpers/interop.js';

const CLIENTS = 50;
const FIRST_WAVE = 32;

interface Crash {
  readonly how: 'inject' | RelayFaultPoint;
  readonly kind: FaultKind;
}

const KINDS: readonly FaultKind[] = ['throw', 'exit', 'terminate', 'oom', 'hang'];
const SCHEDULE: readonly Crash[] = [
  ...KINDS.map((kind) => ({ how: 'inject' as const, kind })),
  { how: 'relay.midStream', kind: 'throw' },
  { how: 'relay.duringKeyUpdate', kind: 'exit' },
  { how: 'relay.duringReplication', kind: 'terminate' },
  { how: 'relay.afterClientHelloReplicated', kind: 'throw' },
  { how: 'relay.beforeClientFinished', kind: 'hang' },
  ...KINDS.map((kind) => ({ how: 'inject' as const, kind })),
  { how: 'relay.midStream', kind: 'oom' },
  { how: 'relay.duringKeyUpdate', kind: 'hang' },
  { how: 'relay.duringReplication', kind: 'exit' },
  { how: 'relay.afterClientHelloReplicated', kind: 'terminate' },
  { how: 'relay.beforeClientFinished', kind: 'throw' },
];

describe('chaos: crashes under load never reach a client', () => {
  let test: TestCluster;
  let cluster: Cluster;
  let events: SupervisorEvent[];

  beforeAll(async () => {
    test = await startTestCluster({
      // An injected OOM fills the 96 MB heap in ~0.4 s on an idle machine, twice that with
      // two busy loops, and over 1.5 s at a load average of 10, all of it without a
      // heartbeat: a watchdog shorter than that reports the OOM as a hang and the test
      // never sees an 'oom'. Each hang step waits this long, so it stays a few seconds.
      watchdogMs: 4000,
      relayHeapMb: 96,
      // Frequent KeyUpdates, so a crash can land in the middle of one.
      keyUpdateAfterRecords: 40,
    });
    ({ cluster, events } = test);
  }, 60_000);

  afterAll(async () => {
    await test?.close();
  });

  it('survives 20 crashes of every kind with no error, reconnect or lost byte', async () => {
    const clients: VerifyingClient[] = [];
    const connectClient = async (): Promise<VerifyingClient> => {
      const c = new VerifyingClient({
        host: '127.0.0.1',
        port: cluster.address.port,
        ca: caPem,
        servername: 'localhost',
        seed: `client-${clients.length}`,
        maxChunk: 8192,
        window: 32_768,
      });
      clients.push(c);
      await c.connect().catch((e) => {
        throw new Error(`${(e as Error).message}: ${JSON.stringify(cluster.gateway.connections().filter((x) => !x.handshakeDone))} ${JSON.stringify(events.slice(-4))}`);
      });
      c.start();
      return c;
    };
    await Promise.all(Array.from({ length: FIRST_WAVE }, connectClient));

    const crashed = () => events.filter((e) => e.type === 'Crashed').length;
    const restarted = () => events.filter((e) => e.type === 'Restarted').length;
    let victimIndex = 0;
    for (const step of SCHEDULE) {
      // Wait until every relay is back, so each crash has a live replica to fail over to.
      await until(
        () => `all relays up: ${JSON.stringify(events.slice(-3))}`,
        () => cluster.relayNames.every((n) => cluster.threadIdOf(n) !== undefined),
        60_000,
      );
      // ...and the gateway has them back too (their data channels registered).
      await until('the gateway sees every relay up', () => [...cluster.gateway.placement().values()].every((p) => p.up), 60_000);
      // Takeovers gather connections on the relays that survived, and a restarted relay
      // owns nothing until new connections arrive: aim mid-stream faults at relays that
      // own connections.
      const handshakePoint = step.how === 'relay.afterClientHelloReplicated' || step.how === 'relay.beforeClientFinished';
      const owners = [...cluster.gateway.placement()].filter(([, p]) => p.owned > 0).map(([name]) => name);
      // New connections go to the relay that owns the fewest: aim handshake faults there.
      const placement = cluster.gateway.placement();
      const leastLoaded = [...placement].sort(([, a], [, b]) => a.owned - b.owned).map(([name]) => name);
      const candidates = handshakePoint ? leastLoaded.slice(0, 1) : owners.length === 0 ? cluster.relayNames : owners;
      const victim = candidates[victimIndex++ % candidates.length]!;
      const before = crashed();
      const restartsBefore = restarted();
      if (step.how === 'inject') {
        cluster.inject(victim, step.kind);
      } else {
        await cluster.arm(victim, step.how, step.kind).catch((e: Error) => {
          throw new Error(`arming ${step.how}/${step.kind} on ${victim}: ${e.message}; last events ${JSON.stringify(events.slice(-3))}`);
        });
        if (handshakePoint) {
          // Handshake points need new connections; the least-loaded victim gets the next one.
          for (let k = 0; k < 3 && crashed() === before && clients.length < CLIENTS; k++) await connectClient();
        }
      }
      await until(`crash ${step.how}/${step.kind} of ${victim}`, () => crashed() > before, 20_000);
      await until(`restart of ${victim}`, () => restarted() > restartsBefore, 60_000);
    }
    while (clients.length < CLIENTS) await connectClient();
    await until('every client streaming', () => clients.every((c) => c.bytesVerified > 0), 60_000);
    await Promise.all(clients.map((c) => c.stop()));

    expect(crashed()).toBeGreaterThanOrEqual(20);
    const kindsSeen = new Set(events.flatMap((e) => (e.type === 'Crashed' ? [e.crash.reason.kind] : [])));
    expect([...kindsSeen].sort()).toEqual(['exit', 'hang', 'oom', 'terminated', 'throw']);
    const points = new Set(events.flatMap((e) => (e.type === 'Crashed' && e.crash.fault?.point ? [e.crash.fault.point] : [])));
    expect(points.size).toBe(5);
    expect(clients).toHaveLength(CLIENTS);
    for (const c of clients) {
      expect(c.errors).toEqual([]);
      expect(c.handshakes).toBe(1);
      expect(c.bytesVerified).toBe(c.bytesSent);
      expect(c.bytesSent).toBeGreaterThan(0);
    }
    // The relays' placement counts agree with the connections themselves.
    const conns = cluster.gateway.connections();
    for (const [name, p] of cluster.gateway.placement()) {
      expect(p.owned).toBe(conns.filter((c) => c.owner === name).length);
    }
    const stats = cluster.gateway.stats;
    expect(stats.connectionsLost).toBe(0);
    expect(stats.quarantined).toBe(0);
    expect(stats.outputGaps).toBe(0);
    expect(stats.takeovers).toBeGreaterThanOrEqual(20);
    expect(test.backend.accepted()).toBe(CLIENTS);
  }, 240_000);
});
