/**
 * An in-memory {@link KvStore}: the store of a node alone, and the stand-in for the
 * NATS bucket in tests. Same semantics as a JetStream key-value bucket: one revision
 * counter per store (deletes take a revision too), create only on a key without a
 * value, update and delete compared against the revision, and watches that report
 * every later change in revision order. An optional bucket-wide TTL (JetStream's
 * max age) makes entries expire; {@link MemoryKvStore.setReachable} simulates a
 * store that cannot be reached.
 */
import { KvError, type KvChange, type KvEntry, type KvStore } from './kv.js';

export interface MemoryKvOptions {
  /** Entries older than this read as absent (JetStream max age). Absent: never expire. */
  readonly ttlMs?: number;
  /** Clock for the TTL; tests pass a fake one. */
  readonly now?: () => number;
}

interface Stored {
  readonly value: Uint8Array;
  readonly revision: number;
  readonly writtenAt: number;
}

interface Watcher {
  readonly prefix: string;
  readonly onChange: (change: KvChange) => void;
  stopped: boolean;
}

// NATS key-value keys: these characters, dot-separated tokens, none empty.
const KEY = /^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$/;
const PREFIX = /^[-/_=.a-zA-Z0-9]*$/;

function checkKey(key: string): void {
  if (typeof key !== 'string' || !KEY.test(key)) {
    throw new KvError('BATON_ERR_KV_BAD_KEY', `key ${JSON.stringify(key)}: a key is dot-separated tokens of letters, digits, - / _ =`);
  }
}

export class MemoryKvStore implements KvStore {
  private revision = 0;
  private readonly entries = new Map<string, Stored>();
  private readonly watchers = new Set<Watcher>();
  private reachable = true;
  private readonly ttlMs: number | undefined;
  private readonly now: () => number;

  constructor(opts: MemoryKvOptions = {}) {
    this.ttlMs = opts.ttlMs;
    this.now = opts.now ?? Date.now;
  }

  /** false: every call rejects with BATON_ERR_KV_UNREACHABLE until set back (watches stay). */
  setReachable(reachable: boolean): void {
    this.reachable = reachable;
  }

  /** Ends every watch without telling its owner: a reconnect that lost them (tests). */
  dropWatches(): void {
    for (const w of this.watchers) w.stopped = true;
    this.watchers.clear();
  }

  /** The store's last revision (tests). */
  get lastRevision(): number {
    return this.revision;
  }

  /** Every value held, for tests that scan the store (e.g. for secrets in clear). */
  allValues(): Array<{ key: string; value: Uint8Array }> {
    return [...this.entries].map(([key, s]) => ({ key, value: new Uint8Array(s.value) }));
  }

  private reach(): void {
    if (!this.reachable) throw new KvError('BATON_ERR_KV_UNREACHABLE', 'the key-value store cannot be reached (memory store set unreachable)');
  }

  private live(key: string): Stored | undefined {
    const s = this.entries.get(key);
    if (s && this.ttlMs !== undefined && this.now() - s.writtenAt >= this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    return s;
  }

  private emit(change: KvChange): void {
    const key = change.kind === 'put' ? change.entry.key : change.key;
    for (const w of this.watchers) {
      if (!key.startsWith(w.prefix)) continue;
      // Microtasks run in order: every watcher sees changes in revision order, after the write returned.
      queueMicrotask(() => {
        if (!w.stopped) w.onChange(change);
      });
    }
  }

  private write(key: string, value: Uint8Array): number {
    const revision = ++this.revision;
    const copy = new Uint8Array(value);
    this.entries.set(key, { value: copy, revision, writtenAt: this.now() });
    this.emit({ kind: 'put', entry: { key, value: new Uint8Array(copy), revision } });
    return revision;
  }

  async get(key: string): Promise<KvEntry | null> {
    this.reach();
    checkKey(key);
    const s = this.live(key);
    return s ? { key, value: new Uint8Array(s.value), revision: s.revision } : null;
  }

  async put(key: string, value: Uint8Array): Promise<number> {
    this.reach();
    checkKey(key);
    return this.write(key, value);
  }

  async create(key: string, value: Uint8Array): Promise<number | null> {
    this.reach();
    checkKey(key);
    if (this.live(key)) return null;
    return this.write(key, value);
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number | null> {
    this.reach();
    checkKey(key);
    const s = this.live(key);
    if (!s || s.revision !== revision) return null;
    return this.write(key, value);
  }

  async delete(key: string, revision?: number): Promise<boolean> {
    this.reach();
    checkKey(key);
    const s = this.live(key);
    if (!s || (revision !== undefined && s.revision !== revision)) return false;
    this.entries.delete(key);
    this.emit({ kind: 'delete', key, revision: ++this.revision });
    return true;
  }

  async keys(prefix: string): Promise<string[]> {
    this.reach();
    if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
      throw new KvError('BATON_ERR_KV_BAD_KEY', `prefix ${JSON.stringify(prefix)}: letters, digits, . - / _ = only`);
    }
    return [...this.entries.keys()].filter((k) => k.startsWith(prefix) && this.live(k) !== undefined).sort();
  }

  async watch(prefix: string, onChange: (change: KvChange) => void): Promise<() => Promise<void>> {
    this.reach();
    if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
      throw new KvError('BATON_ERR_KV_BAD_KEY', `prefix ${JSON.stringify(prefix)}: letters, digits, . - / _ = only`);
    }
    const w: Watcher = { prefix, onChange, stopped: false };
    this.watchers.add(w);
    return async () => {
      w.stopped = true;
      this.watchers.delete(w);
    };
  }
}
