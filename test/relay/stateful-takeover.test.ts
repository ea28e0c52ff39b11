/**
 * Stateful resumption and relay crashes: the gateway resolves a ticket before any
 * relay sees the ClientHello, and hands what it took on as a retained input, so a
 * crash of the owner while the lookup is out, or after the session reached it but
 * before its state was committed, still resumes. A store that does not answer holds
 * the handshake only until the lookup's deadline.
 */
import { afterEach, expect, it } from 'vitest';
import type { KvEntry, KvStore } from '../../src/cluster/kv.js';
import { MemoryKvStore } from '../../src/cluster/memory-kv.js';
import { startTestCluster, until, visit, type TestCluster } from '../helpers/cluster.js';

/** A store whose reads wait while `hold` is set (a slow NATS). */
class HeldKv extends MemoryKvStore {
  hold: Promise<void> | null = null;
  override async get(key: string): Promise<KvEntry | null> {
    if (this.hold) await this.hold;
    return super.get(key);
  }
}

let test: TestCluster | undefined;

afterEach(async () => {
  await test?.close();
  test = undefined;
});

const crashes = (t: TestCluster) => t.events.filter((e) => e.type === 'Crashed').length;

it('resumes when the owner crashes while the lookup is out', async () => {
  const kv = new HeldKv();
  test = await startTestCluster({ relays: 2, ticketMode: 'stateful', sessionKv: kv });
  const t = test;
  const first = await visit(t.cluster);
  let release!: () => void;
  kv.hold = new Promise((r) => (release = r));
  const lookups = t.cluster.gateway.stats.sessionLookups;
  const again = visit(t.cluster, first.session);
  await until('the lookup to go out', () => t.cluster.gateway.stats.sessionLookups > lookups, 5000);
  const owner = t.cluster.gateway.connections().at(-1)!.owner!;
  t.cluster.inject(owner, 'terminate');
  await until('the owner to crash', () => crashes(t) === 1, 5000);
  kv.hold = null;
  release();
  expect((await again).reused).toBe(true);
}, 30_000);

it('resumes when the owner dies after taking the session, before committing the handshake', async () => {
  test = await startTestCluster({ relays: 2, ticketMode: 'stateful' });
  const t = test;
  const first = await visit(t.cluster);
  // The next commit on either relay is the resuming ClientHello's: the session input and
  // the ClientHello are replayed to the sibling.
  for (const name of t.cluster.relayNames) await t.cluster.arm(name, 'relay.duringReplication', 'throw', { times: 1 });
  const again = await visit(t.cluster, first.session);
  expect(crashes(t)).toBeGreaterThanOrEqual(1);
  expect(again.reused).toBe(true);
  expect(t.cluster.gateway.stats.connectionsLost).toBe(0);
}, 30_000);

it('goes ahead with a full handshake once the lookup outlasts its deadline', async () => {
  const kv = new HeldKv();
  test = await startTestCluster({ relays: 1, ticketMode: 'stateful', sessionKv: kv as KvStore });
  const first = await visit(test.cluster);
  kv.hold = new Promise(() => {});
  const started = performance.now();
  const again = await visit(test.cluster, first.session);
  expect(again.reused).toBe(false);
  // Held for the deadline (200 ms), not for the store.
  expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  expect(performance.now() - started).toBeLessThan(5000);
}, 30_000);
