/**
 * Sealing of session tickets under a ticket key (AES-256-GCM): the ticket is
 * key id (16) || iv (12) || ciphertext || tag (16), with the key id as AAD so a
 * ticket opens only under the key that sealed it.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { equalBytes } from '../../util/bytes.js';
import type { TicketKey, TicketKeys } from '../types.js';

const ID_LEN = 16;
const IV_LEN = 12;
const TAG_LEN = 16;

export function sealTicket(key: TicketKey, iv: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-256-gcm', key.secret, iv, { authTagLength: TAG_LEN });
  c.setAAD(key.id);
  return new Uint8Array(Buffer.concat([key.id, iv, c.update(plaintext), c.final(), c.getAuthTag()]));
}

/** Opens a ticket under the current or a previous key; null when none opens it. */
export function openTicket(keys: TicketKeys, ticket: Uint8Array): Uint8Array | null {
  if (ticket.length < ID_LEN + IV_LEN + TAG_LEN) return null;
  const id = ticket.subarray(0, ID_LEN);
  const key = [keys.current, ...(keys.previous ?? [])].find((k) => equalBytes(k.id, id));
  if (!key) return null;
  try {
    const d = createDecipheriv('aes-256-gcm', key.secret, ticket.subarray(ID_LEN, ID_LEN + IV_LEN), {
      authTagLength: TAG_LEN,
    });
    d.setAAD(id);
    d.setAuthTag(ticket.subarray(ticket.length - TAG_LEN));
    return new Uint8Array(Buffer.concat([d.update(ticket.subarray(ID_LEN + IV_LEN, ticket.length - TAG_LEN)), d.final()]));
  } catch {
    return null;
  }
}

/**
 * Sealing of a stateful session's state, kept in the cluster's store under the
 * ticket's opaque `id`: the same layout as a ticket (key id || iv || ciphertext ||
 * tag), with key id || `id` as AAD, so an entry opens only under the id it was
 * sealed for (one moved to another id is refused like a tampered one).
 */
export function sealSession(key: TicketKey, iv: Uint8Array, id: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const c = createCipheriv('aes-256-gcm', key.secret, iv, { authTagLength: TAG_LEN });
  c.setAAD(Buffer.concat([key.id, id]));
  return new Uint8Array(Buffer.concat([key.id, iv, c.update(plaintext), c.final(), c.getAuthTag()]));
}

/** Opens a stateful session's entry sealed for `id`, under the current or a previous key; null when none opens it. */
export function openSession(keys: TicketKeys, id: Uint8Array, entry: Uint8Array): Uint8Array | null {
  if (entry.length < ID_LEN + IV_LEN + TAG_LEN) return null;
  const keyId = entry.subarray(0, ID_LEN);
  const key = [keys.current, ...(keys.previous ?? [])].find((k) => equalBytes(k.id, keyId));
  if (!key) return null;
  try {
    const d = createDecipheriv('aes-256-gcm', key.secret, entry.subarray(ID_LEN, ID_LEN + IV_LEN), { authTagLength: TAG_LEN });
    d.setAAD(Buffer.concat([keyId, id]));
    d.setAuthTag(entry.subarray(entry.length - TAG_LEN));
    return new Uint8Array(Buffer.concat([d.update(entry.subarray(ID_LEN + IV_LEN, entry.length - TAG_LEN)), d.final()]));
  } catch {
    return null;
  }
}
