/**
 * A versioned key-value store: where the cluster across nodes keeps membership,
 * configuration versions, ticket keys and stateful sessions (a JetStream key-value
 * bucket on NATS; an in-memory one for a node alone and for tests). The shape is that
 * of a JetStream bucket, so the NATS one is a thin adapter: every write returns the
 * key's new revision, and the compare-and-set writes name the revision they expect,
 * which is how a rollout stages once and a session ticket resumes once.
 *
 * A store that cannot be reached rejects with a {@link KvError} of code
 * `BATON_ERR_KV_UNREACHABLE`; callers keep serving on what they have.
 */

export interface KvEntry {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of this write; revisions only grow, per bucket. */
  readonly revision: number;
}

/** What a watch reports: a write, or a delete (purge included) of `key`. */
export type KvChange =
  | { readonly kind: 'put'; readonly entry: KvEntry }
  | { readonly kind: 'delete'; readonly key: string; readonly revision: number };

export interface KvStore {
  /** The key's current value, or null when it has none (never written, deleted or expired). */
  get(key: string): Promise<KvEntry | null>;
  /** Writes unconditionally; the new revision. */
  put(key: string, value: Uint8Array): Promise<number>;
  /** Writes only when the key has no value; the new revision, or null when it has one. */
  create(key: string, value: Uint8Array): Promise<number | null>;
  /** Writes only when the key is still at `revision`; the new revision, or null when it moved. */
  update(key: string, value: Uint8Array, revision: number): Promise<number | null>;
  /**
   * Deletes the key; with `revision`, only when it is still at that revision (the
   * compare-and-delete of a single-use session). True when this call deleted it.
   */
  delete(key: string, revision?: number): Promise<boolean>;
  /** The keys that have a value and start with `prefix` (the dot-separated NATS style). */
  keys(prefix: string): Promise<string[]>;
  /**
   * Calls `onChange` for every later change of a key starting with `prefix`, in revision
   * order, until the returned stop is called.
   */
  watch(prefix: string, onChange: (change: KvChange) => void): Promise<() => Promise<void>>;
}

export type KvErrorCode = 'BATON_ERR_KV_UNREACHABLE' | 'BATON_ERR_KV_BAD_KEY';

/** The one error class of the stores; `code` is stable, `message` is for humans. */
export class KvError extends Error {
  override readonly name = 'KvError';
  constructor(
    readonly code: KvErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
