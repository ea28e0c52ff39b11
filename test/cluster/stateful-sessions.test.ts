/**
 * Single-use sessions in a KV store (cluster/stateful-sessions.ts) and the gateway's
 * bounded lookup (relay/session-lookup.ts): an entry is taken once, a lost race or a
 * store that fails or does not answer in time yields nothing, never an error.
 */
import { expect, it } from 'vitest';
import type { KvStore } from '../../src/cluster/kv.js';
import { MemoryKvStore } from '../../src/cluster/memory-kv.js';
import { KvSessionStore } from '../../src/cluster/stateful-sessions.js';
import { takeWithin, type SessionStore } from '../../src/relay/session-lookup.js';
import { until } from '../helpers/wait.js';

const id = (n: number) => new Uint8Array(32).fill(n);
const entry = new Uint8Array([1, 2, 3, 4]);

async function stored(kv: KvStore, sessions: KvSessionStore, n: number): Promise<void> {
  sessions.store({ id: id(n), entry });
  await until('the entry stored', async () => (await kv.keys('session.')).length > 0, 2000);
}

it('takes an entry once: the second take finds nothing', async () => {
  const kv = new MemoryKvStore();
  const sessions = new KvSessionStore(kv);
  await stored(kv, sessions, 1);
  const first = await sessions.take([id(1)]);
  expect(first).toHaveLength(1);
  expect([...first[0]!.entry]).toEqual([...entry]);
  expect(await sessions.take([id(1)])).toEqual([]);
  expect(await kv.keys('session.')).toEqual([]);
});

it('gives an entry to one of two takes at once (compare-and-delete on the revision)', async () => {
  const kv = new MemoryKvStore();
  const a = new KvSessionStore(kv);
  const b = new KvSessionStore(kv);
  await stored(kv, a, 2);
  const [x, y] = await Promise.all([a.take([id(2)]), b.take([id(2)])]);
  expect(x.length + y.length).toBe(1);
});

it('loses the race to a write after the read: the entry is not taken', async () => {
  const kv = new MemoryKvStore();
  const sessions = new KvSessionStore(kv);
  await stored(kv, sessions, 3);
  const key = (await kv.keys('session.'))[0]!;
  // A get that another writer overtakes before the delete lands.
  const racing: KvStore = Object.assign(Object.create(kv) as KvStore, {
    get: async (k: string) => {
      const e = await kv.get(k);
      await kv.put(k, new Uint8Array([9]));
      return e;
    },
  });
  expect(await new KvSessionStore(racing).take([id(3)])).toEqual([]);
  expect((await kv.get(key))?.value).toEqual(new Uint8Array([9]));
});

it('forgets entries older than the TTL', async () => {
  let now = 1_000;
  const kv = new MemoryKvStore({ ttlMs: 500, now: () => now });
  const sessions = new KvSessionStore(kv);
  await stored(kv, sessions, 4);
  now += 501;
  expect(await sessions.take([id(4)])).toEqual([]);
});

it('yields nothing from an unreachable store, and leaves the entry for later', async () => {
  const kv = new MemoryKvStore();
  const sessions = new KvSessionStore(kv);
  await stored(kv, sessions, 5);
  kv.setReachable(false);
  expect(await sessions.take([id(5)])).toEqual([]);
  expect(sessions.takeFailures).toBe(1);
  sessions.store({ id: id(6), entry });
  await until('the failed write counted', () => sessions.storeFailures === 1, 2000);
  kv.setReachable(true);
  expect(await sessions.take([id(5)])).toHaveLength(1);
});

it('bounds a lookup by its deadline, and turns a failure into nothing', async () => {
  const silent: SessionStore = { store: () => {}, take: () => new Promise(() => {}) };
  const started = performance.now();
  expect(await takeWithin(silent, [id(7)], 50)).toEqual([]);
  expect(performance.now() - started).toBeGreaterThanOrEqual(45);
  const failing: SessionStore = { store: () => {}, take: () => Promise.reject(new Error('down')) };
  expect(await takeWithin(failing, [id(7)], 1000)).toEqual([]);
});
