/**
 * Stateful session tickets, as the gateway sees them (single-use sessions, DESIGN.md
 * "Across machines"). The engine runs synchronously in a relay and the store lives on
 * the main thread, so the gateway resolves a ticket before the relay sees it: a
 * ClientHello naming stateful ticket ids waits in the gateway while the store is asked
 * for them (taken and deleted in one step, so each resumes once), then goes to the
 * owner behind a session input holding what came back. That input is retained and
 * replayed like any other, so a relay that dies at any point loses nothing; and while
 * the lookup is out no relay holds anything of the connection. A lookup that fails or
 * outlasts its deadline brings nothing: the ClientHello gets a full handshake.
 *
 * The gateway never opens an entry: it is sealed under the ticket key (the relays
 * hold it) with its id as AAD, and only moves between the store and the relays.
 */
import { isSessionId } from '../tls/index.js';
import { parseClientHello } from '../tls/wire/client-hello.js';
import { ContentType, HandshakeType, RECORD_HEADER_LEN } from '../tls/wire/constants.js';

/** A stateful ticket's id and the sealed entry stored for it. */
export interface StoredSession {
  readonly id: Uint8Array;
  readonly entry: Uint8Array;
}

/** Where stateful sessions are kept (cluster/stateful-sessions.ts over the cluster's KV store). */
export interface SessionStore {
  /** Keeps `entry` under `id` for the ticket's lifetime. Never rejects: a failed write only costs that ticket its resumption. */
  store(session: StoredSession): void;
  /**
   * Takes the entries of `ids` that are there: each read and deleted in one
   * compare-and-delete, so a second take of the same id finds nothing. Never rejects:
   * a failure (store unreachable, timeout) is no entry.
   */
  take(ids: readonly Uint8Array[]): Promise<StoredSession[]>;
}

/** How long a ClientHello waits for its sessions before the full handshake goes ahead. */
export const DEFAULT_LOOKUP_DEADLINE_MS = 200;

/** Stateful ids looked up per ClientHello, at most (a client offers one or two tickets). */
const MAX_IDS = 4;

/**
 * The stateful ticket ids the ClientHello in `records` offers (copies), or none: when
 * the first record is not a plaintext handshake record holding a whole ClientHello
 * (one split over records, or malformed, is left to the engine, which then finds no
 * session for it).
 */
export function offeredSessionIds(records: Uint8Array): Uint8Array[] {
  if (records.length < RECORD_HEADER_LEN + 4 || records[0] !== ContentType.handshake) return [];
  const body = records.subarray(RECORD_HEADER_LEN, RECORD_HEADER_LEN + ((records[3]! << 8) | records[4]!));
  if (body.length < 4 || body[0] !== HandshakeType.client_hello) return [];
  const end = 4 + ((body[1]! << 16) | (body[2]! << 8) | body[3]!);
  if (end > body.length) return [];
  try {
    const offer = parseClientHello(body.subarray(0, end)).preSharedKey;
    if (offer === null) return [];
    return offer.identities
      .map((i) => i.identity)
      .filter(isSessionId)
      .slice(0, MAX_IDS)
      .map((id) => id.slice());
  } catch {
    return [];
  }
}

/** `take` bounded by `deadlineMs`: after it, no entry (what the store answers later is dropped). */
export function takeWithin(store: SessionStore, ids: readonly Uint8Array[], deadlineMs: number): Promise<StoredSession[]> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve([]), deadlineMs);
    timer.unref();
    store.take(ids).then(
      (found) => {
        clearTimeout(timer);
        resolve(found);
      },
      () => {
        clearTimeout(timer);
        resolve([]);
      },
    );
  });
}
