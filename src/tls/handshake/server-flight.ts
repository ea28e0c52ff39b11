/**
 * The answer to a ClientHello that gets a ServerHello (RFC 8446 sections 4.1.3 to 4.4.4),
 * as the steps the engine takes in order:
 *
 * 1. {@link chooseParameters}: version, suite, group (or a HelloRetryRequest), PSK,
 *    certificate and ALPN; nothing drawn, nothing sent.
 * 2. {@link serverHello}: the connection's random draws, the ServerHello, and the key
 *    schedule up to the handshake traffic secrets.
 * 3. {@link serverFlight}: EncryptedExtensions, Certificate and CertificateVerify (full
 *    handshakes), Finished; the application traffic secrets, and what the client Finished
 *    must carry.
 *
 * Each step takes its inputs and returns its results; the engine writes the records
 * between steps (the ServerHello goes out before the flight is signed) and keeps the state.
 */
import { concat, copyBytes } from '../../util/bytes.js';
import type { RandomSource } from '../../util/random.js';
import type { Clock } from '../../util/clock.js';
import { pickCertificate } from '../certificates.js';
import { generateKeyShare, sharedSecret } from '../crypto/key-exchange.js';
import {
  applicationSecrets,
  earlySecret,
  finishedVerifyData,
  handshakeSecret,
  handshakeTrafficSecrets,
  masterSecret,
  resumptionMasterSecret,
  type HandshakeSecret,
} from '../crypto/key-schedule.js';
import { Transcript } from '../crypto/transcript.js';
import type { Suite } from '../crypto/suites.js';
import { TlsError } from '../errors.js';
import type { HandshakeState, Negotiated } from '../state.js';
import type { CertifiedKey, SignRequest, TicketKeys } from '../types.js';
import type { ClientHello } from '../wire/client-hello.js';
import { NamedGroup, SignatureScheme, type GroupName, type SignatureSchemeName } from '../wire/constants.js';
import * as msg from '../wire/server-messages.js';
import { checkRetriedClientHello, type ExpectRetriedClientHello } from './hello-retry.js';
import { checkVersion, pickAlpn, pickCipherSuite, pickGroup } from './negotiate.js';
import { selectPsk, type AcceptedPsk, type OfferedSessions } from './psk.js';

/** Section 4.4.3: what CertificateVerify signs, before the transcript hash. */
const CERTIFICATE_VERIFY_CONTEXT = concat([
  new Uint8Array(64).fill(0x20),
  new Uint8Array(Buffer.from('TLS 1.3, server CertificateVerify', 'latin1')),
  new Uint8Array(1),
]);
/** What precedes a first ClientHello in the transcript: nothing. */
const NO_PREFIX = new Uint8Array(0);

/** The server's preferences for a handshake (resolved once per configuration). */
export interface HandshakePreferences {
  readonly suites: readonly Suite[];
  readonly groups: readonly GroupName[];
  readonly alpn: readonly string[];
}

/** What the configuration offers a handshake beyond its preferences. */
export interface HandshakeCredentials {
  readonly certificates: readonly CertifiedKey[];
  readonly ticketKeys?: TicketKeys;
}

/** Everything the ServerHello and flight depend on, chosen from the ClientHello. */
export interface Parameters {
  readonly kind: 'serverHello';
  readonly suite: Suite;
  readonly group: GroupName;
  /** The client's key share of `group`. */
  readonly peerShare: Uint8Array;
  /** A resumption, or null for a full handshake. */
  readonly psk: AcceptedPsk | null;
  /** The certificate and scheme of a full handshake; null when resuming. */
  readonly signing: { readonly certificate: CertifiedKey; readonly scheme: SignatureSchemeName } | null;
  readonly alpn: string | null;
  /** The clock at this ClientHello: the handshake's time. */
  readonly nowMs: number;
  /** The state it answers (the retried ClientHello's), or null for a first ClientHello. */
  readonly retry: ExpectRetriedClientHello | null;
}

/** A first ClientHello without a usable share: a HelloRetryRequest asks for one of `group`. */
export interface RetryNeeded {
  readonly kind: 'helloRetryRequest';
  readonly suite: Suite;
  readonly group: GroupName;
}

/**
 * Section 4.1.1: what the server answers `ch` with. Throws a TlsError (its reason maps to
 * the alert the RFC names) when nothing acceptable is offered. The clock is read only when a ServerHello follows.
 */
export function chooseParameters(
  ch: ClientHello,
  retry: ExpectRetriedClientHello | null,
  preferences: HandshakePreferences,
  credentials: HandshakeCredentials,
  clock: Clock,
  offered?: OfferedSessions,
): Parameters | RetryNeeded {
  checkVersion(ch);
  let suite: Suite;
  let group: GroupName;
  let peerShare: Uint8Array;
  if (retry) {
    ({ suite, group, peerShare } = checkRetriedClientHello(ch, retry));
  } else {
    suite = pickCipherSuite(preferences.suites, ch.cipherSuites);
    const choice = pickGroup(preferences.groups, ch);
    if (choice.kind === 'retry') return { kind: 'helloRetryRequest', suite, group: choice.group };
    group = choice.group;
    peerShare = choice.peer;
  }
  const nowMs = clock.now();
  const psk = selectPsk(ch, suite, credentials.ticketKeys, nowMs, retry ? retry.transcript : NO_PREFIX, offered);
  let signing = null;
  if (!psk) {
    if (ch.signatureAlgorithms === null) throw new TlsError('signature_algorithms_missing', 'signature_algorithms is required');
    signing = pickCertificate(credentials.certificates, ch.serverName, ch.signatureAlgorithms);
    if (!signing) throw new TlsError('no_signature_scheme_in_common', 'no certificate can sign with an offered scheme');
  }
  // ALPN is negotiated afresh on resumption; only 0-RTT (never accepted) binds it to the ticket.
  const alpn = pickAlpn(preferences.alpn, ch.alpn);
  return { kind: 'serverHello', suite, group, peerShare, psk, signing, alpn, nowMs, retry };
}

/** The ServerHello and the key schedule through the handshake traffic secrets. */
export interface ServerHelloStep {
  readonly message: Uint8Array;
  readonly negotiated: Negotiated;
  /** Secret: the connection seed, drawn here (ticket nonces, age_add and IVs derive from it). */
  readonly seed: Uint8Array;
  /** Appendix D.4: the dummy change_cipher_spec of compatibility mode goes after the ServerHello. */
  readonly changeCipherSpec: boolean;
  /** Through the ServerHello; only valid until the flight is built (see Transcript). */
  readonly transcript: Transcript;
  readonly handshakeSecret: HandshakeSecret;
  /** Secret: the handshake traffic secrets (section 7.1). */
  readonly client: Uint8Array;
  readonly server: Uint8Array;
}

/**
 * Section 4.1.3: the ServerHello for `p`. Every random draw of the connection happens
 * here, in this order: server random, our key share, the seed. `maxRecordPlaintext` is
 * our own limit, which the client's record_size_limit may lower.
 */
export function serverHello(ch: ClientHello, p: Parameters, random: RandomSource, maxRecordPlaintext: number): ServerHelloStep {
  const { suite, group, psk, retry } = p;
  const serverRandom = random.bytes(32);
  const share = generateKeyShare(group, random);
  const seed = random.bytes(32);
  const ecdhe = sharedSecret(share, p.peerShare);
  const negotiated: Negotiated = {
    cipherSuite: suite.id,
    group,
    alpn: p.alpn,
    serverName: ch.serverName,
    resumed: psk !== null,
    helloRetry: retry !== null,
    clientRandom: copyBytes(ch.random),
    // RFC 8449 section 4: in TLS 1.3 the limit counts the inner content type byte.
    maxRecordPlaintext: Math.min(maxRecordPlaintext, (ch.recordSizeLimit ?? Infinity) - 1),
  };
  const message = msg.serverHello({
    random: serverRandom,
    legacySessionId: ch.legacySessionId,
    cipherSuite: suite.id,
    keyShare: { group: NamedGroup[group], publicKey: share.publicKey },
    selectedIdentity: psk ? psk.index : null,
  });
  // The transcript lives in a per-thread scratch while the flight is built; nothing of it is kept.
  const transcript = new Transcript(suite.hash)
    .update(retry ? retry.transcript : NO_PREFIX)
    .update(ch.raw)
    .update(message);
  const hsSecret = handshakeSecret(psk ? psk.early : earlySecret(suite.hash, null), ecdhe);
  const traffic = handshakeTrafficSecrets(hsSecret, transcript.digest());
  return {
    message,
    negotiated,
    seed,
    changeCipherSpec: ch.legacySessionId.length > 0 && !retry?.sentChangeCipherSpec,
    transcript,
    handshakeSecret: hsSecret,
    client: traffic.client,
    server: traffic.server,
  };
}

/** The state after the server flight: what the client Finished must carry, and the keys after it. */
export type ExpectFinished = Extract<HandshakeState, { readonly kind: 'expectFinished' }>;

/** The encrypted part of the server flight and the application traffic secrets. */
export interface ServerFlight {
  /** EncryptedExtensions, [Certificate, CertificateVerify,] Finished. */
  readonly messages: Uint8Array[];
  /** Secret (section 7.1). */
  readonly serverApplicationSecret: Uint8Array;
  readonly exporterSecret: Uint8Array;
  readonly next: ExpectFinished;
}

/** What shapes EncryptedExtensions beyond the negotiation. */
export interface FlightOptions {
  /** supported_groups to advertise (RFC 8446 section 4.2.7), ids as sent. */
  readonly advertisedGroups: readonly number[];
  /** Our own record size limit (plaintext bytes), announced + 1 when the client sent one (RFC 8449). */
  readonly maxRecordPlaintext: number;
  readonly sign: (req: SignRequest) => Uint8Array;
}

/**
 * Sections 4.3.1 to 4.4.4: the server flight after `hello`, and the key schedule through
 * the master secret. A client Finished that verifies is exactly the expected message, so
 * the transcript through it, and the resumption master secret over that, are known now.
 */
export function serverFlight(ch: ClientHello, p: Parameters, hello: ServerHelloStep, options: FlightOptions): ServerFlight {
  const { suite, signing } = p;
  const transcript = hello.transcript;
  const encryptedExtensions = msg.encryptedExtensions({
    groups: options.advertisedGroups,
    recordSizeLimit: ch.recordSizeLimit === null ? null : options.maxRecordPlaintext + 1,
    acknowledgeServerName: ch.serverName !== null && !p.psk,
    alpn: p.alpn,
  });
  const messages: Uint8Array[] = [encryptedExtensions];
  transcript.update(encryptedExtensions);
  if (signing) {
    const certificate = msg.certificate(signing.certificate.chain);
    messages.push(certificate);
    transcript.update(certificate);
    const data = concat([CERTIFICATE_VERIFY_CONTEXT, transcript.digest()]);
    const signature = options.sign({ scheme: signing.scheme, certificate: signing.certificate, data });
    const verify = msg.certificateVerify(SignatureScheme[signing.scheme], signature);
    messages.push(verify);
    transcript.update(verify);
  }
  const serverFinished = msg.finished(finishedVerifyData(suite.hash, hello.server, transcript.digest()));
  messages.push(serverFinished);
  transcript.update(serverFinished);

  const serverFinishedHash = transcript.digest();
  const master = masterSecret(hello.handshakeSecret);
  const app = applicationSecrets(master, serverFinishedHash);
  // Section 4.4.4: what the client's Finished must carry.
  const clientVerifyData = finishedVerifyData(suite.hash, hello.client, serverFinishedHash);
  transcript.update(msg.finished(clientVerifyData));
  return {
    messages,
    serverApplicationSecret: app.server,
    exporterSecret: app.exporter,
    next: {
      kind: 'expectFinished',
      clientVerifyData,
      clientApplicationSecret: app.client,
      resumptionMasterSecret: resumptionMasterSecret(master, transcript.digest()),
    },
  };
}
