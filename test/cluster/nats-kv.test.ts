/**
 * The KvStore contract on a real nats-server's JetStream bucket: revisions, create and
 * update as compare-and-set, compare-and-delete losing a race, keys and watch by
 * prefix, expiry by the bucket's TTL, and BATON_ERR_KV_UNREACHABLE when NATS is gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats, parseNatsUrl, type NatsConnection, type NatsUrl } from '../../src/cluster/nats-connection.js';
import { openNatsKv, type NatsKvStore } from '../../src/cluster/nats-kv.js';
import { KvError, type KvChange } from '../../src/cluster/kv.js';
import { createLogger } from '../../src/util/log.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { until } from '../helpers/wait.js';

const log = createLogger({ level: 'error' });
const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

let server: NatsServer;
let nc: NatsConnection;
let kv: NatsKvStore;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connectNats({ url: parseNatsUrl(server.url) as NatsUrl, name: 'kv-test', log });
  kv = await openNatsKv(nc, { bucket: 'kvtest' });
}, 30_000);

afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

describe('parseNatsUrl', () => {
  it('takes nats://HOST:PORT and defaults the port', () => {
    expect(parseNatsUrl('nats://127.0.0.1:4333')).toEqual({ host: '127.0.0.1', port: 4333, url: 'nats://127.0.0.1:4333' });
    expect(parseNatsUrl('nats://example.org')).toMatchObject({ port: 4222 });
    expect(parseNatsUrl('nats://[::1]:5000')).toMatchObject({ host: '::1', url: 'nats://[::1]:5000' });
  });
  it('names what is wrong', () => {
    expect(parseNatsUrl('127.0.0.1:4222')).toMatch(/not a URL/);
    expect(parseNatsUrl('http://127.0.0.1:4222')).toMatch(/scheme http/);
    expect(parseNatsUrl('nats://u:p@127.0.0.1:4222')).toMatch(/credentials/);
    expect(parseNatsUrl('nats://127.0.0.1:99999')).toMatch(/not a valid URL|bad port/);
    expect(parseNatsUrl('nats://127.0.0.1:4222/x')).toMatch(/path/);
    expect(parseNatsUrl('')).toMatch(/empty/);
  });
});

describe('NatsKvStore', () => {
  it('puts and gets with growing revisions', async () => {
    const r1 = await kv.put('a.one', bytes('x'));
    const r2 = await kv.put('a.one', bytes('y'));
    expect(r2).toBeGreaterThan(r1);
    const e = await kv.get('a.one');
    expect(e && { ...e, value: text(e.value) }).toEqual({ key: 'a.one', value: 'y', revision: r2 });
    expect(await kv.get('a.never')).toBeNull();
  });

  it('create writes once; update is compare-and-set', async () => {
    const r1 = await kv.create('b.cas', bytes('1'));
    expect(r1).toBeTypeOf('number');
    expect(await kv.create('b.cas', bytes('2'))).toBeNull();
    const r2 = await kv.update('b.cas', bytes('2'), r1!);
    expect(r2).toBeGreaterThan(r1!);
    // A writer still holding r1 lost the race.
    expect(await kv.update('b.cas', bytes('3'), r1!)).toBeNull();
    expect(text((await kv.get('b.cas'))!.value)).toBe('2');
    // Of two concurrent updates from the same revision exactly one wins.
    const both = await Promise.all([kv.update('b.cas', bytes('A'), r2!), kv.update('b.cas', bytes('B'), r2!)]);
    expect(both.filter((r) => r !== null)).toHaveLength(1);
  });

  it('compare-and-delete: one of two takers wins, the replay loses', async () => {
    const r = (await kv.create('s.sess1', bytes('state')))!;
    const takes = await Promise.all([kv.delete('s.sess1', r), kv.delete('s.sess1', r)]);
    expect(takes.sort()).toEqual([false, true]);
    expect(await kv.get('s.sess1')).toBeNull();
    expect(await kv.delete('s.sess1', r)).toBe(false);
    // A deleted key can be created again.
    expect(await kv.create('s.sess1', bytes('again'))).toBeTypeOf('number');
    // A delete at a revision the key moved past loses.
    const r3 = (await kv.put('s.sess2', bytes('1')))!;
    await kv.put('s.sess2', bytes('2'));
    expect(await kv.delete('s.sess2', r3)).toBe(false);
    expect(await kv.get('s.sess2')).not.toBeNull();
    expect(await kv.delete('s.sess2')).toBe(true);
    expect(await kv.delete('s.sess2')).toBe(false);
  });

  it('lists keys by prefix, without deleted ones', async () => {
    await kv.put('k.x.1', bytes('1'));
    await kv.put('k.x.2', bytes('2'));
    await kv.put('k.y', bytes('3'));
    await kv.put('kz', bytes('4'));
    await kv.delete('k.x.2');
    expect(await kv.keys('k.x.')).toEqual(['k.x.1']);
    expect(await kv.keys('k.')).toEqual(['k.x.1', 'k.y']);
    expect(await kv.keys('k')).toEqual(['k.x.1', 'k.y', 'kz']);
    expect(await kv.keys('nothing.')).toEqual([]);
  });

  it('watches later changes under a prefix, in revision order', async () => {
    const seen: KvChange[] = [];
    await kv.put('w.before', bytes('0'));
    const stop = await kv.watch('w.', (c) => seen.push(c));
    const r1 = await kv.put('w.a', bytes('1'));
    await kv.put('other.a', bytes('x'));
    const r2 = await kv.put('w.b', bytes('2'));
    await kv.delete('w.a');
    await until('three changes', () => seen.length >= 3, 10_000);
    await stop();
    expect(seen.map((c) => (c.kind === 'put' ? `put ${c.entry.key} ${c.entry.revision}` : `delete ${c.key}`))).toEqual([
      `put w.a ${r1}`,
      `put w.b ${r2}`,
      'delete w.a',
    ]);
  });

  it('refuses keys NATS cannot hold', async () => {
    await expect(kv.put('bad key', bytes('x'))).rejects.toMatchObject({ code: 'BATON_ERR_KV_BAD_KEY' });
    await expect(kv.get('a..b')).rejects.toMatchObject({ code: 'BATON_ERR_KV_BAD_KEY' });
    await expect(kv.update('a.b', bytes('x'), 0)).rejects.toMatchObject({ code: 'BATON_ERR_KV_BAD_KEY' });
  });

  it('forgets values older than the bucket TTL', async () => {
    const short = await openNatsKv(nc, { bucket: 'kvttl', ttlMs: 1_000 });
    await short.put('m.node-a', bytes('hb'));
    expect(await short.keys('m.')).toEqual(['m.node-a']);
    await until('the entry to expire', async () => (await short.get('m.node-a')) === null, 10_000, 100);
    expect(await short.keys('m.')).toEqual([]);
  });
});

describe('NATS unreachable', () => {
  it('rejects with BATON_ERR_KV_UNREACHABLE, and works again once NATS is back', async () => {
    const own = await startNatsServer();
    const c = await connectNats({ url: parseNatsUrl(own.url) as NatsUrl, name: 'kv-down', log });
    try {
      const store = await openNatsKv(c, { bucket: 'down', timeoutMs: 1_000 });
      await store.put('x.y', bytes('1'));
      await own.stop({ keepStore: true });
      const e = await store.get('x.y').catch((err: unknown) => err);
      expect(e).toBeInstanceOf(KvError);
      expect(e).toMatchObject({ code: 'BATON_ERR_KV_UNREACHABLE' });
      expect((e as Error).message).toMatch(/bucket down: get x.y failed/);
      await expect(store.put('x.y', bytes('2'))).rejects.toMatchObject({ code: 'BATON_ERR_KV_UNREACHABLE' });
      const back = await startNatsServer({ port: own.port, storeDir: own.storeDir });
      try {
        await until('the store to answer again', async () => (await store.get('x.y').catch(() => undefined)) !== undefined, 15_000, 100);
        expect(text((await store.get('x.y'))!.value)).toBe('1');
      } finally {
        await c.close();
        await back.stop();
      }
    } finally {
      await c.close().catch(() => undefined);
      await own.stop();
    }
  }, 40_000);

  it('a NATS back without its streams gets the bucket again (empty)', async () => {
    const own = await startNatsServer();
    const c = await connectNats({ url: parseNatsUrl(own.url) as NatsUrl, name: 'kv-lost', log, reconnectWaitMs: 100 });
    let back: NatsServer | undefined;
    try {
      const store = await openNatsKv(c, { bucket: 'lost', timeoutMs: 1_000 });
      await store.put('x.y', bytes('1'));
      await own.stop();
      back = await startNatsServer({ port: own.port });
      await until('writes to work again', async () => (await store.put('x.z', bytes('2')).catch(() => null)) !== null, 20_000, 200);
      expect(await store.get('x.y')).toBeNull();
      expect(text((await store.get('x.z'))!.value)).toBe('2');
    } finally {
      await c.close();
      await back?.stop();
      await own.stop();
    }
  }, 40_000);

  it('the first connect to nothing fails with a clear error', async () => {
    const e = await connectNats({ url: parseNatsUrl('nats://127.0.0.1:1') as NatsUrl, name: 'x', log, connectTimeoutMs: 1_000 }).catch((err: unknown) => err);
    expect(e).toMatchObject({ code: 'BATON_ERR_NATS_UNREACHABLE' });
    expect((e as Error).message).toMatch(/cannot reach NATS at nats:\/\/127.0.0.1:1/);
  });
});
