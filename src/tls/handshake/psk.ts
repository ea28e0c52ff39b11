/**
 * Choosing and verifying a resumption PSK offered in pre_shared_key
 * (RFC 8446 sections 4.2.9 to 4.2.11).
 */
import { constantTimeEqual } from '../crypto/constant-time.js';
import { hashOf } from '../crypto/hkdf.js';
import { earlySecret, finishedVerifyData, resumptionBinderKey, type EarlySecret } from '../crypto/key-schedule.js';
import type { Suite } from '../crypto/suites.js';
import { TlsError } from '../errors.js';
import { isSessionId, readSessionEntry, readTicket, type TicketContents } from '../session/ticket.js';
import { toHex } from '../../util/bytes.js';
import type { TicketKeys } from '../types.js';
import type { ClientHello } from '../wire/client-hello.js';
import { PskKeyExchangeMode } from '../wire/constants.js';
import { concat } from '../../util/bytes.js';

/**
 * Stateful sessions fetched from the cluster's store for this ClientHello, by ticket
 * id (hex): sealed entries, opened here. A stateful ticket without one is unknown (never
 * stored, already used, expired, or the store did not answer in time): a full handshake.
 */
export type OfferedSessions = ReadonlyMap<string, Uint8Array>;

const NO_SESSIONS: OfferedSessions = new Map();

/** What an offered identity stands for: a stateless ticket opened, or a stateful one's entry opened. */
function openIdentity(keys: TicketKeys, identity: Uint8Array, offered: OfferedSessions): TicketContents | null {
  if (!isSessionId(identity)) return readTicket(keys, identity);
  const entry = offered.get(toHex(identity));
  return entry ? readSessionEntry(keys, identity, entry) : null;
}

export interface AcceptedPsk {
  readonly index: number;
  readonly ticket: TicketContents;
  /** The Early Secret from the ticket's PSK, derived for the binder and kept for the key schedule. */
  readonly early: EarlySecret;
}

/**
 * The first offered ticket we can resume with the chosen suite, its binder
 * checked; null for a full handshake. `transcriptPrefix` holds what precedes this
 * ClientHello in the transcript (message_hash and HelloRetryRequest after a retry).
 */
export function selectPsk(
  ch: ClientHello,
  suite: Suite,
  keys: TicketKeys | undefined,
  nowMs: number,
  transcriptPrefix: Uint8Array,
  offered: OfferedSessions = NO_SESSIONS,
): AcceptedPsk | null {
  const offer = ch.preSharedKey;
  if (offer === null) return null;
  // Section 4.2.9: a client offering pre_shared_key MUST send psk_key_exchange_modes.
  if (ch.pskModes === null) throw new TlsError('psk_key_exchange_modes_missing', 'pre_shared_key without psk_key_exchange_modes');
  if (!keys || !ch.pskModes.includes(PskKeyExchangeMode.psk_dhe_ke)) return null;
  for (let index = 0; index < offer.identities.length; index++) {
    const ticket = openIdentity(keys, offer.identities[index]!.identity, offered);
    if (!ticket) continue;
    const ticketSuiteHash = ticket.cipherSuite === suite.id ? suite.hash : null;
    // Section 4.2.11: a PSK is usable only with a suite of the same hash; we keep the same suite.
    if (ticketSuiteHash === null) continue;
    const ageMs = nowMs - ticket.issuedAtMs;
    if (ageMs < 0 || ageMs > ticket.lifetimeSeconds * 1000) continue;
    if (ticket.serverName !== ch.serverName) continue;
    // Section 4.2.11.2: the binder MUST be validated before the PSK is accepted.
    const early = earlySecret(suite.hash, ticket.psk);
    const binderKey = resumptionBinderKey(early);
    const truncated = ch.raw.subarray(0, offer.truncatedLength);
    const partial = transcriptPrefix.length ? concat([transcriptPrefix, truncated]) : truncated;
    const expected = finishedVerifyData(suite.hash, binderKey, hashOf(suite.hash, partial));
    if (!constantTimeEqual(expected, offer.binders[index]!)) {
      throw new TlsError('psk_binder_invalid', 'PSK binder does not verify');
    }
    return { index, ticket, early };
  }
  return null;
}
