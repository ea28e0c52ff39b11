/**
 * NewSessionTicket (RFC 8446 section 4.6.1): a ticket whose nonce, age_add and IV derive
 * from the connection seed, so a connection's tickets are the same bytes wherever it runs.
 */
import { concat } from '../../util/bytes.js';
import { Writer } from '../../util/writer.js';
import { hmac } from '../crypto/hkdf.js';
import { ticketPsk } from '../crypto/key-schedule.js';
import type { Suite } from '../crypto/suites.js';
import { sealTicket } from '../crypto/ticket-aead.js';
import type { TicketKey } from '../types.js';
import * as msg from '../wire/server-messages.js';
import { encodeTicketContents } from './ticket.js';

/** The HMAC label a ticket's age_add and IV derive under (with the nonce, from the connection seed). */
const TICKET_LABEL = new Uint8Array(Buffer.from('ticket', 'latin1'));

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
}

/** The NewSessionTicket message (header included) for ticket number `t.index` of a connection. */
export function newSessionTicket(t: TicketInputs): Uint8Array {
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
  const ticket = sealTicket(t.key, derived.subarray(4, 16), contents);
  return msg.newSessionTicket({ lifetimeSeconds: t.lifetimeSeconds, ageAdd, nonce, ticket });
}
