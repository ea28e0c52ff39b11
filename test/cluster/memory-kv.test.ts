/** The in-memory store: the KvStore contract, its TTL and its unreachable switch. */
import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/cluster/kv.js';
import { MemoryKvStore } from '../../src/cluster/memory-kv.js';
import { kvContract } from '../helpers/kv-contract.js';

kvContract('memory', async () => ({ store: new MemoryKvStore() }));

describe('MemoryKvStore', () => {
  it('entries expire after the TTL and read as absent', async () => {
    let now = 1_000;
    const kv = new MemoryKvStore({ ttlMs: 500, now: () => now });
    await kv.put('hb.a', new Uint8Array([1]));
    now += 499;
    expect(await kv.get('hb.a')).not.toBeNull();
    now += 1;
    expect(await kv.get('hb.a')).toBeNull();
    expect(await kv.keys('hb.')).toEqual([]);
    expect(await kv.create('hb.a', new Uint8Array([2]))).not.toBeNull();
  });

  it('unreachable: every call rejects with BATON_ERR_KV_UNREACHABLE; reachable again, the data is there', async () => {
    const kv = new MemoryKvStore();
    await kv.put('a', new Uint8Array([1]));
    kv.setReachable(false);
    const unreachable = (e: unknown) => e instanceof KvError && e.code === 'BATON_ERR_KV_UNREACHABLE';
    await expect(kv.get('a')).rejects.toSatisfy(unreachable);
    await expect(kv.put('a', new Uint8Array([2]))).rejects.toSatisfy(unreachable);
    await expect(kv.keys('')).rejects.toSatisfy(unreachable);
    kv.setReachable(true);
    expect((await kv.get('a'))?.value).toEqual(new Uint8Array([1]));
  });
});
