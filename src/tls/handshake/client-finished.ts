/**
 * The client Finished (RFC 8446 section 4.4.4): the last message of the handshake. Its
 * expected verify_data was computed with the server flight (server-flight.ts).
 */
import { constantTimeEqual } from '../crypto/constant-time.js';
import type { Suite } from '../crypto/suites.js';
import { TlsError } from '../errors.js';
import type { Negotiated } from '../state.js';
import type { TlsEvent } from '../types.js';
import type { ExpectFinished } from './server-flight.js';

/**
 * The state awaiting the client Finished as the engine works with it: the snapshot's
 * `expectFinished` state, with what the Finished and the tickets after it need that a
 * snapshot keeps elsewhere (`negotiated`, `seed`).
 */
export interface AwaitingClientFinished {
  readonly kind: 'expectFinished';
  readonly expected: ExpectFinished;
  readonly suite: Suite;
  readonly negotiated: Negotiated;
  /** Secret: the connection seed (ticket nonces, age_add and IVs derive from it). */
  readonly seed: Uint8Array;
}

/** Checks the whole Finished message (header included) against the expected verify_data, in constant time. */
export function verifyClientFinished(message: Uint8Array, hs: ExpectFinished): void {
  const expected = hs.clientVerifyData;
  if (message.length - 4 !== expected.length) throw new TlsError('client_finished_wrong_length', 'Finished of the wrong length');
  if (!constantTimeEqual(message.subarray(4), expected)) {
    throw new TlsError('client_finished_invalid', 'client Finished does not verify');
  }
}

/** The event that reports a completed handshake. */
export function handshakeDone(suite: Suite, n: Negotiated): TlsEvent {
  return {
    type: 'handshakeDone',
    cipherSuite: suite.name,
    group: n.group,
    alpn: n.alpn,
    serverName: n.serverName,
    resumed: n.resumed,
    helloRetry: n.helloRetry,
  };
}
