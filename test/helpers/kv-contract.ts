/**
 * The behaviour every {@link KvStore} must have, as one suite: `kvContract(name, make)`
 * runs it against the memory store here and against the NATS bucket adapter (give
 * `make` a fresh bucket per call; `close` runs after each test).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KvError, type KvChange, type KvStore } from '../../src/cluster/kv.js';
import { until } from './wait.js';

export interface KvUnderTest {
  readonly store: KvStore;
  readonly close?: () => Promise<void>;
}

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined);

export function kvContract(name: string, make: () => Promise<KvUnderTest>): void {
  describe(`KvStore contract: ${name}`, () => {
    let open: KvUnderTest[] = [];
    const fresh = async () => {
      const s = await make();
      open.push(s);
      return s.store;
    };
    afterEach(async () => {
      for (const s of open) await s.close?.();
      open = [];
    });

    it('get of a key never written is null; put returns growing revisions', async () => {
      const kv = await fresh();
      expect(await kv.get('a.b')).toBeNull();
      const r1 = await kv.put('a.b', bytes('one'));
      const r2 = await kv.put('a.c', bytes('two'));
      const r3 = await kv.put('a.b', bytes('three'));
      expect(r2).toBeGreaterThan(r1);
      expect(r3).toBeGreaterThan(r2);
      const e = await kv.get('a.b');
      expect(text(e?.value)).toBe('three');
      expect(e?.revision).toBe(r3);
      expect(e?.key).toBe('a.b');
    });

    it('create writes only a key without a value; of ten racing creates exactly one wins', async () => {
      const kv = await fresh();
      expect(await kv.create('lock', bytes('first'))).toEqual(expect.any(Number));
      expect(await kv.create('lock', bytes('second'))).toBeNull();
      expect(text((await kv.get('lock'))?.value)).toBe('first');
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => kv.create('race', bytes(`w${i}`))));
      expect(results.filter((r) => r !== null)).toHaveLength(1);
      const winner = results.findIndex((r) => r !== null);
      expect(text((await kv.get('race'))?.value)).toBe(`w${winner}`);
    });

    it('update compares the revision: a stale one is refused and the value kept', async () => {
      const kv = await fresh();
      const r1 = (await kv.create('k', bytes('v1')))!;
      const r2 = await kv.update('k', bytes('v2'), r1);
      expect(r2).toBeGreaterThan(r1);
      expect(await kv.update('k', bytes('stale'), r1)).toBeNull();
      expect(text((await kv.get('k'))?.value)).toBe('v2');
      expect(await kv.update('never', bytes('x'), 1)).toBeNull();
      const racing = await Promise.all(Array.from({ length: 5 }, (_, i) => kv.update('k', bytes(`u${i}`), r2!)));
      expect(racing.filter((r) => r !== null)).toHaveLength(1);
    });

    it('delete removes; with a revision only at that revision (compare-and-delete); create works again after', async () => {
      const kv = await fresh();
      const r1 = await kv.put('s.1', bytes('state'));
      const r2 = await kv.put('s.1', bytes('state2'));
      expect(await kv.delete('s.1', r1)).toBe(false);
      expect(await kv.get('s.1')).not.toBeNull();
      const both = await Promise.all([kv.delete('s.1', r2), kv.delete('s.1', r2)]);
      expect(both.filter(Boolean)).toHaveLength(1);
      expect(await kv.get('s.1')).toBeNull();
      expect(await kv.delete('s.1')).toBe(false);
      await kv.put('s.2', bytes('x'));
      expect(await kv.delete('s.2')).toBe(true);
      expect(await kv.create('s.2', bytes('again'))).not.toBeNull();
    });

    it('keys(prefix) lists the keys with a value under the prefix', async () => {
      const kv = await fresh();
      await kv.put('cfg.a', bytes('1'));
      await kv.put('cfg.b.c', bytes('2'));
      await kv.put('other.a', bytes('3'));
      await kv.put('cfg.gone', bytes('4'));
      await kv.delete('cfg.gone');
      expect((await kv.keys('cfg.')).sort()).toEqual(['cfg.a', 'cfg.b.c']);
      expect(await kv.keys('none.')).toEqual([]);
    });

    it('watch reports later changes under its prefix in revision order, and nothing after stop', async () => {
      const kv = await fresh();
      await kv.put('w.before', bytes('old'));
      const seen: KvChange[] = [];
      const stop = await kv.watch('w.', (c) => seen.push(c));
      const r1 = await kv.put('w.a', bytes('1'));
      await kv.put('x.a', bytes('elsewhere'));
      const r2 = (await kv.create('w.b', bytes('2')))!;
      const r3 = (await kv.update('w.a', bytes('3'), r1))!;
      await kv.delete('w.b', r2);
      await until('four changes watched', () => seen.length >= 4, 5_000);
      expect(seen.map((c) => (c.kind === 'put' ? `put ${c.entry.key} ${text(c.entry.value)}` : `delete ${c.key}`))).toEqual([
        'put w.a 1',
        'put w.b 2',
        'put w.a 3',
        'delete w.b',
      ]);
      const revisions = seen.map((c) => (c.kind === 'put' ? c.entry.revision : c.revision));
      expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
      expect(revisions.slice(0, 3)).toEqual([r1, r2, r3]);
      await stop();
      await kv.put('w.after', bytes('late'));
      // A sentinel watch sees the later write, so the stopped one had its chance too.
      const sentinel: KvChange[] = [];
      const stop2 = await kv.watch('w.', (c) => sentinel.push(c));
      await kv.put('w.sentinel', bytes('s'));
      await until('sentinel change', () => sentinel.length >= 1, 5_000);
      await stop2();
      expect(seen).toHaveLength(4);
    });

    it('values are copies: changing a buffer after put or get does not change the store', async () => {
      const kv = await fresh();
      const v = bytes('abc');
      await kv.put('c', v);
      v[0] = 0x7a;
      const got = (await kv.get('c'))!;
      expect(text(got.value)).toBe('abc');
      got.value[0] = 0x7a;
      expect(text((await kv.get('c'))?.value)).toBe('abc');
    });

    it('a malformed key is refused with BATON_ERR_KV_BAD_KEY', async () => {
      const kv = await fresh();
      for (const key of ['', 'a..b', '.a', 'a.', 'sp ace', 'star*', 'gt>']) {
        await expect(kv.put(key, bytes('x')), key).rejects.toSatisfy((e: unknown) => e instanceof KvError && e.code === 'BATON_ERR_KV_BAD_KEY');
      }
    });
  });
}
