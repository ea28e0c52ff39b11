/**
 * The HelloRetryRequest round (RFC 8446 section 4.1.4): asking for a key share of
 * another group, and checking that the retried ClientHello is the first one changed
 * only as section 4.1.2 allows. Pure: the engine writes the records and keeps the state.
 */
import { concat } from '../../util/bytes.js';
import { constantTimeEqual } from '../crypto/constant-time.js';
import { hashOf } from '../crypto/hkdf.js';
import { suiteById, type Suite } from '../crypto/suites.js';
import { TlsError } from '../errors.js';
import type { HandshakeState } from '../state.js';
import { retryInvariant, type ClientHello } from '../wire/client-hello.js';
import { NamedGroup, type GroupName } from '../wire/constants.js';
import * as msg from '../wire/server-messages.js';
import { retriedShare } from './negotiate.js';

/** The state after a HelloRetryRequest: what the retried ClientHello must repeat. */
export type ExpectRetriedClientHello = Extract<HandshakeState, { readonly kind: 'expectRetriedClientHello' }>;

/** What the HelloRetryRequest settled, which the retried ClientHello cannot change. */
export interface RetriedChoice {
  readonly suite: Suite;
  readonly group: GroupName;
  /** The client's share of `group`. */
  readonly peerShare: Uint8Array;
}

/** The HelloRetryRequest message and the state that waits for the retried ClientHello. */
export interface HelloRetry {
  readonly message: Uint8Array;
  /** Appendix D.4: in compatibility mode a dummy change_cipher_spec follows it. */
  readonly changeCipherSpec: boolean;
  readonly next: ExpectRetriedClientHello;
}

/** Section 4.1.4: asks for a share of `group`; the transcript restarts with message_hash(ClientHello1). */
export function helloRetryRequest(ch: ClientHello, suite: Suite, group: GroupName, cookie: Uint8Array | null): HelloRetry {
  const message = msg.helloRetryRequest(ch.legacySessionId, suite.id, NamedGroup[group], cookie);
  const changeCipherSpec = ch.legacySessionId.length > 0;
  return {
    message,
    changeCipherSpec,
    next: {
      kind: 'expectRetriedClientHello',
      cipherSuite: suite.id,
      group,
      transcript: concat([msg.messageHash(hashOf(suite.hash, ch.raw)), message]),
      sentChangeCipherSpec: changeCipherSpec,
      cookie,
      firstHello: hashOf(suite.hash, retryInvariant(ch.raw)),
    },
  };
}

/**
 * Sections 4.1.2, 4.1.4, 4.2.2, 4.2.10: the retried ClientHello keeps the suite, echoes
 * the cookie, offers no early data, carries the one share asked for, and is otherwise the
 * first ClientHello unchanged.
 */
export function checkRetriedClientHello(ch: ClientHello, retry: ExpectRetriedClientHello): RetriedChoice {
  const suite = suiteById(retry.cipherSuite);
  if (!suite) throw new TlsError('retry_state_unknown_cipher_suite', 'retry state names an unknown cipher suite');
  if (!ch.cipherSuites.includes(suite.id)) throw new TlsError('hrr_cipher_suite_changed', 'retried ClientHello changed cipher suites');
  // Section 4.2.10: a client MUST NOT offer early data after a HelloRetryRequest.
  if (ch.earlyData) throw new TlsError('hrr_early_data_offered', 'early_data offered after a HelloRetryRequest');
  const group = retry.group;
  // Section 4.2.2: the retried ClientHello MUST echo the cookie.
  if (retry.cookie && !(ch.cookie && constantTimeEqual(ch.cookie, retry.cookie))) {
    throw new TlsError('hrr_cookie_not_echoed', 'retried ClientHello does not echo the cookie');
  }
  const peerShare = retriedShare(ch, group).keyExchange;
  // Section 4.1.2: beyond those, the retried ClientHello is the first one, unchanged.
  if (retry.firstHello && !constantTimeEqual(hashOf(suite.hash, retryInvariant(ch.raw)), retry.firstHello)) {
    throw new TlsError('hrr_client_hello_mismatch', 'retried ClientHello differs from the first beyond what section 4.1.2 allows');
  }
  return { suite, group, peerShare };
}
