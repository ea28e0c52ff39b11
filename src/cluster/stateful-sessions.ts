/**
 * Single-use session state in the cluster's key-value store (Samar et al.; issue 15):
 * the {@link SessionStore} the gateway keeps stateful tickets in. Each entry lives
 * under `session.<id in hex>` in a bucket whose TTL is the ticket lifetime (an
 * in-memory one for a node alone, a JetStream bucket shared by every node), and is
 * taken by a get then a delete compared against the revision read: of two nodes
 * resuming the same ticket at once, one deletes it and resumes, the other finds the
 * revision moved and falls back to a full handshake.
 *
 * Entries are sealed by the relays under the cluster's ticket keys (AES-256-GCM, the
 * id as AAD; tls/crypto/ticket-aead.ts), which reach each node only in its own sealed
 * configuration block: the store never holds session state or a key in clear, and an
 * entry tampered with or moved to another id does not open (a full handshake).
 */
import { toHex } from '../util/bytes.js';
import type { SessionStore, StoredSession } from '../relay/session-lookup.js';
import type { KvStore } from './kv.js';

/** The bucket name suffix of a cluster's sessions (`baton_<cluster>_sessions` on NATS). */
export const SESSIONS_BUCKET = 'sessions';

const keyOf = (id: Uint8Array) => `session.${toHex(id)}`;

export class KvSessionStore implements SessionStore {
  /** Writes that failed (the store unreachable): those tickets resume with a full handshake. */
  storeFailures = 0;
  /** Takes that failed (unreachable), besides ids simply not there. */
  takeFailures = 0;

  constructor(private readonly kv: KvStore) {}

  store(session: StoredSession): void {
    this.kv.put(keyOf(session.id), session.entry).catch(() => {
      this.storeFailures++;
    });
  }

  async take(ids: readonly Uint8Array[]): Promise<StoredSession[]> {
    const taken = await Promise.all(ids.map((id) => this.takeOne(id)));
    return taken.filter((s): s is StoredSession => s !== null);
  }

  /** The entry of `id` if this call deleted it (compare-and-delete on the revision read). */
  private async takeOne(id: Uint8Array): Promise<StoredSession | null> {
    const key = keyOf(id);
    try {
      const entry = await this.kv.get(key);
      if (entry === null) return null;
      return (await this.kv.delete(key, entry.revision)) ? { id, entry: entry.value } : null;
    } catch {
      this.takeFailures++;
      return null;
    }
  }
}
