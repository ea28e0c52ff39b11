/**
 * {@link KvStore} over a JetStream key-value bucket (`@nats-io/kv`): the bucket is
 * created when missing; revisions are the stream's sequence numbers; create, update
 * and delete-at-revision are JetStream's expected-last-subject-sequence check
 * (`previousSeq`), so a lost race reads as null / false, never as an error. A bucket
 * with a `ttlMs` (max_age) forgets every value that old, which is how membership
 * heartbeats expire.
 *
 * Every failure to reach the server (disconnected, timed out, no JetStream) is a
 * KvError `BATON_ERR_KV_UNREACHABLE` naming the bucket and the operation; a key NATS
 * cannot hold is `BATON_ERR_KV_BAD_KEY`. After such a failure the bucket is opened
 * again in the background (at most every few seconds), so a NATS that came back
 * without its streams (a new server, a lost store) gets the bucket again, empty.
 */
import { jetstream, JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { Kvm, KvWatchInclude, type KV, type KvEntry as NatsKvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { KvError, type KvChange, type KvEntry, type KvStore } from './kv.js';

export interface NatsKvOptions {
  /** Bucket name: letters, digits, `-` and `_`. */
  readonly bucket: string;
  /** Values older than this are forgotten (the stream's max_age). Default: kept. */
  readonly ttlMs?: number;
  /** Revisions kept per key. Default 1 (the latest only). */
  readonly history?: number;
  /** Bound on each request to JetStream. Default 5000 ms. */
  readonly timeoutMs?: number;
}

/** Keys NATS takes: dot-separated tokens of letters, digits, `-`, `_`, `/`, `=`. */
const KEY = /^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$/;
const BUCKET = /^[-_a-zA-Z0-9]+$/;

/**
 * Opens (creating when missing) the bucket `opts.bucket` on `nc`. Rejects with
 * `BATON_ERR_KV_UNREACHABLE` when JetStream does not answer within the timeout.
 */
export async function openNatsKv(nc: NatsConnection, opts: NatsKvOptions): Promise<NatsKvStore> {
  if (!BUCKET.test(opts.bucket)) throw new KvError('BATON_ERR_KV_BAD_KEY', `bad bucket name "${opts.bucket}": use letters, digits, - and _`);
  const timeout = opts.timeoutMs ?? 5_000;
  const js = jetstream(nc, { timeout });
  const open = () =>
    new Kvm(js).create(opts.bucket, {
      history: opts.history ?? 1,
      ...(opts.ttlMs !== undefined ? { ttl: opts.ttlMs } : {}),
      timeout,
    });
  let kv: KV;
  try {
    kv = await open();
  } catch (e) {
    throw unreachable(opts.bucket, 'open', e);
  }
  return new NatsKvStore(opts.bucket, kv, timeout, open);
}

/** Opening the bucket again after a failure: at most this often. */
const REOPEN_EVERY_MS = 3_000;

/** A bucket as a {@link KvStore}. Its connection is the caller's to close. */
export class NatsKvStore implements KvStore {
  private reopenAfter = 0;

  constructor(
    readonly bucket: string,
    private kv: KV,
    /** Bound on a listing: its consumer can stall for good when the connection drops mid-way. */
    private readonly timeoutMs: number,
    /** Opens (creating when missing) the bucket again; undefined: never. */
    private readonly reopen?: () => Promise<KV>,
  ) {}

  /** The error for a failed operation; starts opening the bucket again (see the module doc). */
  private unreachable(what: string, cause: unknown): KvError {
    const now = Date.now();
    if (this.reopen !== undefined && now >= this.reopenAfter) {
      this.reopenAfter = now + REOPEN_EVERY_MS;
      this.reopen().then(
        (kv) => (this.kv = kv),
        () => undefined,
      );
    }
    return unreachable(this.bucket, what, cause);
  }

  async get(key: string): Promise<KvEntry | null> {
    checkKey(key);
    let e: NatsKvEntry | null;
    try {
      e = await this.kv.get(key);
    } catch (err) {
      throw this.unreachable(`get ${key}`, err);
    }
    if (e === null || e.operation !== 'PUT') return null;
    return { key, value: e.value, revision: e.revision };
  }

  async put(key: string, value: Uint8Array): Promise<number> {
    checkKey(key);
    try {
      return await this.kv.put(key, value);
    } catch (err) {
      throw this.unreachable(`put ${key}`, err);
    }
  }

  async create(key: string, value: Uint8Array): Promise<number | null> {
    checkKey(key);
    try {
      // The client's create also takes over a key whose last entry is a delete marker.
      return await this.kv.create(key, value);
    } catch (err) {
      if (isWrongLastSequence(err)) return null;
      throw this.unreachable(`create ${key}`, err);
    }
  }

  async update(key: string, value: Uint8Array, revision: number): Promise<number | null> {
    checkKey(key);
    checkRevision(revision);
    try {
      return await this.kv.update(key, value, revision);
    } catch (err) {
      if (isWrongLastSequence(err)) return null;
      throw this.unreachable(`update ${key}`, err);
    }
  }

  async delete(key: string, revision?: number): Promise<boolean> {
    checkKey(key);
    if (revision !== undefined) checkRevision(revision);
    try {
      // Without a revision, "this call deleted it" still needs the value to exist, and
      // the delete to land on the revision we saw (else someone else wrote or deleted it).
      const at = revision ?? (await this.get(key))?.revision;
      if (at === undefined) return false;
      await this.kv.delete(key, { previousSeq: at });
      return true;
    } catch (err) {
      if (err instanceof KvError) throw err;
      if (isWrongLastSequence(err)) return false;
      throw this.unreachable(`delete ${key}`, err);
    }
  }

  async keys(prefix: string): Promise<string[]> {
    const { filter, match } = prefixFilter(prefix);
    const out: string[] = [];
    let timer: NodeJS.Timeout | undefined;
    let stop: (() => void) | undefined;
    let late = false;
    try {
      // The whole listing is bounded, its consumer's creation included.
      const listed = (async () => {
        const it = await this.kv.keys(filter);
        stop = () => it.stop();
        if (late) stop();
        for await (const k of it) if (match(k)) out.push(k);
      })();
      const stalled = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          late = true;
          stop?.();
          reject(new Error(`no end of the listing within ${this.timeoutMs} ms`));
        }, this.timeoutMs);
      });
      listed.catch(() => undefined);
      await Promise.race([listed, stalled]);
    } catch (err) {
      throw this.unreachable(`keys ${prefix}*`, err);
    } finally {
      clearTimeout(timer);
    }
    return out.sort();
  }

  async watch(prefix: string, onChange: (change: KvChange) => void): Promise<() => Promise<void>> {
    const { filter, match } = prefixFilter(prefix);
    let it: Awaited<ReturnType<KV['watch']>>;
    try {
      it = await this.kv.watch({ key: filter, include: KvWatchInclude.UpdatesOnly });
    } catch (err) {
      throw this.unreachable(`watch ${prefix}*`, err);
    }
    const done = (async () => {
      for await (const e of it) {
        if (!match(e.key)) continue;
        const change: KvChange =
          e.operation === 'PUT'
            ? { kind: 'put', entry: { key: e.key, value: e.value, revision: e.revision } }
            : { kind: 'delete', key: e.key, revision: e.revision };
        try {
          onChange(change);
        } catch {
          // A faulty listener must not stop the changes for the next one.
        }
      }
    })().catch(() => undefined);
    return async () => {
      it.stop();
      await done;
    };
  }
}

/** The subject filter for keys starting with `prefix`, and the exact check behind it. */
function prefixFilter(prefix: string): { filter: string; match: (k: string) => boolean } {
  if (prefix === '') return { filter: '>', match: () => true };
  // A NATS filter matches whole tokens: "a.b." is "a.b.>"; a prefix ending mid-token
  // ("member") needs the wider filter and the check.
  if (prefix.endsWith('.') && KEY.test(prefix.slice(0, -1))) return { filter: `${prefix}>`, match: () => true };
  return { filter: '>', match: (k) => k.startsWith(prefix) };
}

function checkKey(key: string): void {
  if (!KEY.test(key)) throw new KvError('BATON_ERR_KV_BAD_KEY', `bad key "${key}": dot-separated tokens of letters, digits, - _ / =`);
}

function checkRevision(revision: number): void {
  if (!Number.isSafeInteger(revision) || revision < 1) throw new KvError('BATON_ERR_KV_BAD_KEY', `bad revision ${revision}: a whole number from 1`);
}

function isWrongLastSequence(e: unknown): boolean {
  return (
    e instanceof JetStreamApiError &&
    (e.code === JetStreamApiCodes.StreamWrongLastSequence || e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

function unreachable(bucket: string, what: string, cause: unknown): KvError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new KvError('BATON_ERR_KV_UNREACHABLE', `NATS key-value bucket ${bucket}: ${what} failed: ${why}`, { cause });
}
