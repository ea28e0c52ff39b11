/**
 * NewSessionTicket (RFC 8446 section 4.6.1): a ticket whose nonce, age_add and IV derive
 * from the connection seed, so a connection's tickets are the same bytes wherever it runs.
 * A stateful ticket's id derives from the seed too, so a replay after a takeover issues
 * (and stores) the same id and entry again rather than a second session.
 */
import { concat } from '../../util/bytes.js';
import { Writer } from '../../util/writer.js';
import { hmac } from '../crypto/hkdf.js';
import { ticketPsk } from '../crypto/key-schedule.js';
import type { Suite } from '../crypto/suites.js';
import { sealSession, sealTicket } from '../crypto/ticket-aead.js';
import type { TicketKey } from '../types.js';
import * as msg from '../wire/server-messages.js';
import { encodeTicketContents, SESSION_ID_LEN } from './ticket.js';

/** The HMAC label a ticket's age_add and IV derive under (with the nonce, from the connection seed). */
const TICKET_LABEL = new Uint8Array(Buffer.from('ticket', 'latin1'));
/** The HMAC label a stateful ticket's id derives under. */
const SESSION_ID_LABEL = new Uint8Array(Buffer.from('ticket id', 'latin1'));

/** What one ticket of a connection is made of. */
export interface TicketInputs {
  readonly suite: Suite;
  /** The ticket key to seal under (the cluster's current one). */
  readonly key: TicketKey;
  /** Secret: the connection seed. */
  readonly seed: Uint8Array;
  /** Secret. */
  readonly resumptionMasterSecret: Uint8Array;
  /** How many tickets the connection issued before this one: its nonce. */
  readonly index: number;
  /** The handshake's time: a ticket's age counts from it. */
  readonly issuedAtMs: number;
  readonly lifetimeSeconds: number;
  readonly serverName: string | null;
  /** Stateful: the ticket is an opaque id, and the sealed state goes to the cluster's store. */
  readonly stateful: boolean;
}

/** A stateful ticket's session entry: what the store keeps under `id` (sealed; never the state in clear). */
export interface SessionEntry {
  readonly id: Uint8Array;
  readonly entry: Uint8Array;
}

/** One ticket: its NewSessionTicket message, and the entry to store when it is stateful. */
export interface IssuedTicket {
  readonly message: Uint8Array;
  readonly stored: SessionEntry | null;
}

/** The NewSessionTicket message (header included) for ticket number `t.index` of a connection. */
export function newSessionTicket(t: TicketInputs): IssuedTicket {
  const nonce = new Writer(2).u16(t.index).finish();
  const derived = hmac('sha256', t.seed, concat([TICKET_LABEL, nonce]));
  const ageAdd = ((derived[0]! << 24) | (derived[1]! << 16) | (derived[2]! << 8) | derived[3]!) >>> 0;
  const contents = encodeTicketContents({
    cipherSuite: t.suite.id,
    psk: ticketPsk(t.suite.hash, t.resumptionMasterSecret, nonce),
    issuedAtMs: t.issuedAtMs,
    lifetimeSeconds: t.lifetimeSeconds,
    ageAdd,
    serverName: t.serverName,
  });
  const iv = derived.subarray(4, 16);
  if (!t.stateful) {
    const ticket = sealTicket(t.key, iv, contents);
    return { message: msg.newSessionTicket({ lifetimeSeconds: t.lifetimeSeconds, ageAdd, nonce, ticket }), stored: null };
  }
  const id = hmac('sha256', t.seed, concat([SESSION_ID_LABEL, nonce])).subarray(0, SESSION_ID_LEN);
  const entry = sealSession(t.key, iv, id, contents);
  return { message: msg.newSessionTicket({ lifetimeSeconds: t.lifetimeSeconds, ageAdd, nonce, ticket: id }), stored: { id, entry } };
}
