/**
 * One node's view of a shared KvStore that can be cut off: while cut, every call
 * rejects with BATON_ERR_KV_UNREACHABLE and the node's watches report nothing (what a
 * node sees when it loses NATS while the others keep it).
 */
import { KvError, type KvChange, type KvEntry, type KvStore } from '../../src/cluster/kv.js';

export class PartitionedKvStore implements KvStore {
  cut = false;
  constructor(private readonly inner: KvStore) {}
  private reach(): void {
    if (this.cut) throw new KvError('BATON_ERR_KV_UNREACHABLE', 'the key-value store cannot be reached (this node is cut off)');
  }
  async get(key: string): Promise<KvEntry | null> {
    this.reach();
    return this.inner.get(key);
  }
  async put(key: string, value: Uint8Array): Promise<number> {
    this.reach();
    return this.inner.put(key, value);
  }
  async create(key: string, value: Uint8Array): Promise<number | null> {
    this.reach();
    return this.inner.create(key, value);
  }
  async update(key: string, value: Uint8Array, revision: number): Promise<number | null> {
    this.reach();
    return this.inner.update(key, value, revision);
  }
  async delete(key: string, revision?: number): Promise<boolean> {
    this.reach();
    return this.inner.delete(key, revision);
  }
  async keys(prefix: string): Promise<string[]> {
    this.reach();
    return this.inner.keys(prefix);
  }
  async watch(prefix: string, onChange: (change: KvChange) => void): Promise<() => Promise<void>> {
    this.reach();
    return this.inner.watch(prefix, (c) => {
      if (!this.cut) onChange(c);
    });
  }
}
