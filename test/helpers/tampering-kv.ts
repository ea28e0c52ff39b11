/** A KvStore in front of another that lets a test change values on their way in (an attacker with write access). */
import type { KvChange, KvEntry, KvStore } from '../../src/cluster/kv.js';

export type Tamper = (key: string, value: Uint8Array, inner: KvStore) => Uint8Array | Promise<Uint8Array>;

export class TamperingKvStore implements KvStore {
  tamper: Tamper | null = null;
  constructor(readonly inner: KvStore) {}
  private async change(key: string, value: Uint8Array): Promise<Uint8Array> {
    return this.tamper ? this.tamper(key, value, this.inner) : value;
  }
  get(key: string): Promise<KvEntry | null> {
    return this.inner.get(key);
  }
  async put(key: string, value: Uint8Array): Promise<number> {
    return this.inner.put(key, await this.change(key, value));
  }
  async create(key: string, value: Uint8Array): Promise<number | null> {
    return this.inner.create(key, await this.change(key, value));
  }
  async update(key: string, value: Uint8Array, revision: number): Promise<number | null> {
    return this.inner.update(key, await this.change(key, value), revision);
  }
  delete(key: string, revision?: number): Promise<boolean> {
    return this.inner.delete(key, revision);
  }
  keys(prefix: string): Promise<string[]> {
    return this.inner.keys(prefix);
  }
  watch(prefix: string, onChange: (change: KvChange) => void): Promise<() => Promise<void>> {
    return this.inner.watch(prefix, onChange);
  }
}
