/**
 * Session ticket keys of a cluster: made here, rotated here, and shared by every
 * relay, so a ticket sealed by one relay opens on any other. Secret: never logged.
 */
import { randomBytes } from 'node:crypto';
import type { TicketKeys } from '../tls/index.js';

/** A new random ticket key set: a 16-byte id and a 32-byte secret (secret). */
export function freshTicketKeys(): TicketKeys {
  return { current: { id: new Uint8Array(randomBytes(16)), secret: new Uint8Array(randomBytes(32)) } };
}

/** The next rotation: a fresh current key; the old current is still accepted; older ones retire. */
export function rotateTicketKeys(keys: TicketKeys): TicketKeys {
  return { current: freshTicketKeys().current, previous: [keys.current] };
}
