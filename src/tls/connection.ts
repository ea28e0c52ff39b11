/**
 * The sans-I/O TLS 1.3 server engine (RFC 8446): bytes from the client in,
 * records for the client, application plaintext and events out. No sockets, no
 * timers, no global state; randomness and time are injected. Its whole state
 * can be exported at any call boundary and an engine restored from it continues
 * with byte-identical output.
 */
import { createHmac } from 'node:crypto';
import { concat, copyBytes, empty, toHex } from '../util/bytes.js';
import { Reader } from '../util/reader.js';
import { Writer } from '../util/writer.js';
import { pickCertificate, signCertificateVerify } from './certificates.js';
import { constantTimeEqual } from './crypto/constant-time.js';
import { hashOf } from './crypto/hkdf.js';
import { generateKeyShare, sharedSecret } from './crypto/key-exchange.js';
import {
  applicationSecrets,
  earlySecret,
  finishedVerifyData,
  handshakeSecret,
  handshakeTrafficSecrets,
  masterSecret,
  nextTrafficSecret,
  resumptionMasterSecret,
  ticketPsk,
  type MasterSecret,
} from './crypto/key-schedule.js';
import { RecordOpener, RecordSealer } from './crypto/record-protection.js';
import { sealTicket } from './crypto/ticket-aead.js';
import { suiteById, suiteByName, type Suite } from './crypto/suites.js';
import { AlertDescription, alertFor, alertName, SnapshotError, TlsError, type AlertName } from './errors.js';
import { checkVersion, pickAlpn, pickCipherSuite, pickGroup, retriedShare } from './handshake/negotiate.js';
import { selectPsk } from './handshake/psk.js';
import { encodeTicketContents } from './session/ticket.js';
import {
  badSnapshotField,
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  type EngineState,
  type HandshakeState,
  type Negotiated,
  type TlsSnapshot,
  type TrafficState,
} from './state.js';
import type { TlsCounters, TlsDeps, TlsEvent, TlsOutput, TlsServerConfig } from './types.js';
import { parseClientHello, type ClientHello } from './wire/client-hello.js';
import {
  ContentType,
  HandshakeType,
  MAX_CIPHERTEXT,
  MAX_PLAINTEXT,
  NamedGroup,
  RECORD_HEADER_LEN,
  SignatureScheme,
  type GroupName,
} from './wire/constants.js';
import * as msg from './wire/server-messages.js';

const DEFAULT_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const;
const DEFAULT_GROUPS: readonly GroupName[] = ['x25519', 'secp256r1', 'secp384r1'];
/** Below the AES-GCM confidentiality limit of 2^24.5 full-size records (section 5.5). */
const DEFAULT_KEY_UPDATE_AFTER = 1 << 24;
/** The largest handshake message we buffer; ClientHellos are far smaller. */
const MAX_HANDSHAKE_MESSAGE = 1 << 17;
/** How much rejected 0-RTT data we skip before giving up (section 4.2.10). */
const EARLY_DATA_SKIP_LIMIT = 1 << 17;
/** Section 4.6.1: servers MUST NOT use a ticket lifetime above seven days. */
const MAX_TICKET_LIFETIME = 604_800;
const CCS_RECORD = Uint8Array.of(ContentType.change_cipher_spec, 3, 3, 0, 1, 1);
const CERTIFICATE_VERIFY_CONTEXT = concat([
  new Uint8Array(64).fill(0x20),
  new Uint8Array(Buffer.from('TLS 1.3, server CertificateVerify', 'latin1')),
  new Uint8Array(1),
]);

type Phase = 'handshaking' | 'established' | 'closed';

/** Collects what one call produces. */
class Output implements TlsOutput {
  readonly toClient: Uint8Array[] = [];
  readonly plaintext: Uint8Array[] = [];
  readonly events: TlsEvent[] = [];
}

/** Settings resolved once from the configuration. */
interface Settings {
  readonly suites: readonly Suite[];
  readonly groups: readonly GroupName[];
  readonly alpn: readonly string[];
  readonly ticketCount: number;
  readonly ticketLifetime: number;
  readonly keyUpdateAfter: number;
  readonly maxRecord: number;
}

function resolve(config: TlsServerConfig): Settings {
  return {
    suites: (config.cipherSuites ?? DEFAULT_SUITES).map(suiteByName),
    groups: config.groups ?? DEFAULT_GROUPS,
    alpn: config.alpn ?? [],
    ticketCount: config.ticketKeys ? (config.ticketCount ?? 2) : 0,
    ticketLifetime: Math.min(config.ticketLifetimeSeconds ?? 7200, MAX_TICKET_LIFETIME),
    keyUpdateAfter: Math.max(1, config.keyUpdateAfterRecords ?? DEFAULT_KEY_UPDATE_AFTER),
    maxRecord: Math.min(Math.max(1, config.maxRecordPlaintext ?? MAX_PLAINTEXT), MAX_PLAINTEXT),
  };
}

function freshState(): EngineState {
  return {
    handshake: { kind: 'expectClientHello' },
    negotiated: null,
    read: null,
    write: null,
    seed: null,
    resumptionMasterSecret: null,
    ticketsIssued: 0,
    handshakeTimeMs: 0,
    pendingRecord: new Uint8Array(0),
    pendingHandshake: new Uint8Array(0),
    earlyDataBudget: 0,
    pendingSend: [],
    readClosed: false,
    writeClosed: false,
    awaitingPeerKeyUpdate: false,
    counters: { bytesFromClient: 0, bytesToClient: 0, plaintextSent: 0, plaintextReceived: 0 },
  };
}

/** A TLS 1.3 server connection. */
export class TlsServerEngine {
  private readonly settings: Settings;
  private sealer: RecordSealer | null = null;
  private opener: RecordOpener | null = null;

  private constructor(
    private readonly config: TlsServerConfig,
    private readonly deps: TlsDeps,
    private readonly s: EngineState,
  ) {
    this.settings = resolve(config);
    if (s.read) this.opener = new RecordOpener(this.suite(), s.read.secret, Number(s.read.seq));
    if (s.write) this.sealer = new RecordSealer(this.suite(), s.write.secret, Number(s.write.seq));
  }

  /** A new connection waiting for its ClientHello. */
  static create(config: TlsServerConfig, deps: TlsDeps): TlsServerEngine {
    return new TlsServerEngine(config, deps, freshState());
  }

  /**
   * Continues a connection from `snapshot()`. Refuses a snapshot of another
   * format or version with a {@link SnapshotError}.
   */
  static restore(snapshot: TlsSnapshot, config: TlsServerConfig, deps: TlsDeps): TlsServerEngine {
    if (snapshot === null || typeof snapshot !== 'object' || snapshot.format !== SNAPSHOT_FORMAT) {
      throw new SnapshotError('not a TLS server engine snapshot');
    }
    if (snapshot.version !== SNAPSHOT_VERSION) {
      throw new SnapshotError(
        `snapshot format version ${String(snapshot.version)} is not supported (this engine reads version ${SNAPSHOT_VERSION})`,
      );
    }
    const { format: _f, version: _v, ...state } = structuredClone(snapshot);
    const bad = badSnapshotField(state as unknown as Record<string, unknown>);
    if (bad) throw new SnapshotError(`snapshot field "${bad}" is missing or malformed`);
    return new TlsServerEngine(config, deps, state as EngineState);
  }

  /** The engine's state as plain data (see {@link TlsSnapshot} for which fields are secret). */
  snapshot(): TlsSnapshot {
    const s = this.s;
    const state: EngineState = {
      ...s,
      read: s.read && { ...s.read, seq: BigInt(this.opener!.seq) },
      write: s.write && { ...s.write, seq: BigInt(this.sealer!.seq) },
      pendingSend: [...s.pendingSend],
      counters: { ...s.counters },
    };
    return structuredClone({ format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION, ...state });
  }

  get phase(): Phase {
    switch (this.s.handshake.kind) {
      case 'expectClientHello':
      case 'expectRetriedClientHello':
      case 'expectFinished':
        return 'handshaking';
      case 'established':
        return 'established';
      case 'closed':
        return 'closed';
    }
  }

  get counters(): TlsCounters {
    return { ...this.s.counters };
  }

  /** What the handshake settled, once the ServerHello is chosen. */
  get negotiated(): Readonly<Negotiated> | null {
    return this.s.negotiated;
  }

  /** Takes bytes from the client, in any chunking. Never throws: failures become a fatal alert. */
  receive(bytes: Uint8Array): TlsOutput {
    const out = new Output();
    const s = this.s;
    if (s.handshake.kind === 'closed') return out;
    s.counters.bytesFromClient += bytes.length;
    let buf = s.pendingRecord.length ? concat([s.pendingRecord, bytes]) : bytes;
    try {
      while (buf.length >= RECORD_HEADER_LEN && this.s.handshake.kind !== 'closed') {
        const length = (buf[3]! << 8) | buf[4]!;
        // Section 5.2: a record longer than 2^14 + 256 is record_overflow.
        if (length > MAX_CIPHERTEXT) throw new TlsError('record_overflow', 'record longer than 2^14 + 256 bytes');
        if (buf.length < RECORD_HEADER_LEN + length) break;
        const header = buf.subarray(0, RECORD_HEADER_LEN);
        const body = buf.subarray(RECORD_HEADER_LEN, RECORD_HEADER_LEN + length);
        buf = buf.subarray(RECORD_HEADER_LEN + length);
        this.onRecord(header, body, out);
      }
      s.pendingRecord = this.s.handshake.kind === 'closed' || buf.length === 0 ? empty() : copyBytes(buf);
    } catch (err) {
      this.fail(err, out);
    }
    return out;
  }

  /** Queues application data for the client; sealed at once when established, else after the handshake. */
  send(plaintext: Uint8Array): TlsOutput {
    const out = new Output();
    const s = this.s;
    if (s.writeClosed || s.handshake.kind === 'closed' || plaintext.length === 0) return out;
    try {
      if (s.handshake.kind !== 'established') {
        s.pendingSend.push(copyBytes(plaintext));
        return out;
      }
      this.sealApplicationData(plaintext, out);
    } catch (err) {
      this.fail(err, out);
    }
    return out;
  }

  /** Sends close_notify (section 6.1); the client may still send until it closes too. */
  close(): TlsOutput {
    const out = new Output();
    const s = this.s;
    if (s.writeClosed || s.handshake.kind === 'closed') return out;
    try {
      this.sendAlert(out, 'close_notify', 1);
      s.writeClosed = true;
      if (s.readClosed || s.handshake.kind !== 'established') this.finish(out, false);
    } catch (err) {
      this.fail(err, out);
    }
    return out;
  }

  /** Starts a KeyUpdate (section 4.6.3), optionally asking the client to update too. */
  keyUpdate(requestPeer = false): TlsOutput {
    const out = new Output();
    if (this.s.handshake.kind !== 'established' || this.s.writeClosed) return out;
    try {
      this.updateWriteKey(requestPeer, out);
    } catch (err) {
      this.fail(err, out);
    }
    return out;
  }

  /**
   * Ends the connection now with a fatal alert (default internal_error), for a
   * reason outside the protocol: a quarantined connection, a backend failure.
   */
  abort(alert: AlertName = 'internal_error', reason = 'aborted by the application'): TlsOutput {
    const out = new Output();
    this.fail(new TlsError(alert, reason), out);
    return out;
  }

  // ---- records in ----

  private onRecord(header: Uint8Array, body: Uint8Array, out: Output): void {
    const type = header[0]!;
    const s = this.s;
    if (type === ContentType.change_cipher_spec) return this.onChangeCipherSpec(body);
    if (this.opener === null) {
      // Section 5.1: unprotected records hold at most 2^14 bytes.
      if (body.length > MAX_PLAINTEXT) throw new TlsError('record_overflow', 'plaintext record longer than 2^14');
      switch (type) {
        case ContentType.handshake:
          return this.onHandshakeFragment(body, out);
        case ContentType.alert:
          return this.onAlert(body, out);
        case ContentType.application_data:
          // Section 4.1.4/4.2.10: after a HelloRetryRequest, 0-RTT records may arrive before ClientHello2.
          if (s.handshake.kind === 'expectRetriedClientHello' && s.earlyDataBudget >= body.length) {
            s.earlyDataBudget -= body.length;
            return;
          }
          throw new TlsError('unexpected_message', 'application data before the handshake');
        default:
          throw new TlsError('unexpected_message', `unknown record type ${type}`);
      }
    }
    if (type === ContentType.alert && s.handshake.kind !== 'established') {
      // A client that could not process our ServerHello alerts without protection.
      return this.onAlert(body, out);
    }
    if (type !== ContentType.application_data) {
      throw new TlsError('unexpected_message', `unprotected record of type ${type} after keys changed`);
    }
    let record;
    try {
      record = this.opener.open(header, body);
    } catch (err) {
      // Section 4.2.10: skip rejected early data that fails to deprotect, up to a limit.
      if (err instanceof TlsError && err.alert === 'bad_record_mac' && s.earlyDataBudget >= body.length) {
        s.earlyDataBudget -= body.length;
        return;
      }
      throw err;
    }
    s.earlyDataBudget = 0;
    switch (record.type) {
      case ContentType.handshake:
        if (record.content.length === 0) throw new TlsError('unexpected_message', 'empty handshake record');
        this.onHandshakeFragment(record.content, out);
        break;
      case ContentType.alert:
        this.onAlert(record.content, out);
        break;
      case ContentType.application_data:
        if (s.handshake.kind !== 'established') {
          throw new TlsError('unexpected_message', 'application data before the client Finished');
        }
        if (s.pendingHandshake.length) throw new TlsError('unexpected_message', 'application data inside a handshake message');
        // Section 6.1: data after close_notify MUST be ignored.
        if (!s.readClosed && record.content.length) {
          s.counters.plaintextReceived += record.content.length;
          out.plaintext.push(record.content);
        }
        break;
      default:
        throw new TlsError('unexpected_message', `unknown inner content type ${record.type}`);
    }
    if (this.opener && this.opener.seq >= this.settings.keyUpdateAfter && !s.awaitingPeerKeyUpdate) {
      if (s.handshake.kind === 'established' && !s.writeClosed) this.updateWriteKey(true, out);
    }
  }

  /** Appendix D.4: one dummy change_cipher_spec is dropped during the handshake; otherwise unexpected. */
  private onChangeCipherSpec(body: Uint8Array): void {
    const k = this.s.handshake.kind;
    if ((k === 'expectRetriedClientHello' || k === 'expectFinished') && body.length === 1 && body[0] === 1) return;
    throw new TlsError('unexpected_message', 'change_cipher_spec outside the handshake');
  }

  private onAlert(body: Uint8Array, out: Output): void {
    if (body.length !== 2) throw new TlsError('decode_error', 'alert record is not two bytes');
    const description = body[1]!;
    const s = this.s;
    if (description === AlertDescription.close_notify) {
      if (s.readClosed) return;
      s.readClosed = true;
      out.events.push({ type: 'peerClosed' });
      if (s.writeClosed || s.handshake.kind !== 'established') this.finish(out, s.handshake.kind !== 'established');
      return;
    }
    out.events.push({ type: 'alertReceived', alert: alertName(description) });
    // Section 6: user_canceled is followed by close_notify; every other alert is fatal.
    if (description === AlertDescription.user_canceled) return;
    this.finish(out, true);
  }

  private onHandshakeFragment(fragment: Uint8Array, out: Output): void {
    const s = this.s;
    let buf = s.pendingHandshake.length ? concat([s.pendingHandshake, fragment]) : fragment;
    while (buf.length >= 4) {
      const length = (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!;
      if (length > MAX_HANDSHAKE_MESSAGE) throw new TlsError('unexpected_message', 'handshake message too large');
      if (buf.length < 4 + length) break;
      const message = buf.subarray(0, 4 + length);
      buf = buf.subarray(4 + length);
      const keysChange = this.onHandshakeMessage(message, out);
      // Section 5.1: handshake messages MUST NOT span a key change.
      if (keysChange && buf.length) throw new TlsError('unexpected_message', 'handshake data across a key change');
      if (this.s.handshake.kind === 'closed') return;
    }
    s.pendingHandshake = buf.length === 0 ? empty() : copyBytes(buf);
  }

  /** Handles one whole handshake message; returns true when the read key changed after it. */
  private onHandshakeMessage(message: Uint8Array, out: Output): boolean {
    const type = message[0]!;
    const hs = this.s.handshake;
    switch (hs.kind) {
      case 'expectClientHello':
        if (type !== HandshakeType.client_hello) throw new TlsError('unexpected_message', 'expected ClientHello');
        return this.onClientHello(parseClientHello(message), null, out);
      case 'expectRetriedClientHello':
        if (type !== HandshakeType.client_hello) throw new TlsError('unexpected_message', 'expected ClientHello');
        return this.onClientHello(parseClientHello(message), hs, out);
      case 'expectFinished':
        if (type !== HandshakeType.finished) throw new TlsError('unexpected_message', 'expected client Finished');
        this.onClientFinished(message, hs, out);
        return true;
      case 'established':
        if (type !== HandshakeType.key_update) {
          throw new TlsError('unexpected_message', `handshake message ${type} after the handshake`);
        }
        this.onKeyUpdate(message, out);
        return true;
      case 'closed':
        return false;
    }
  }

  // ---- the handshake ----

  /** Section 4.1.2: answers a ClientHello with a HelloRetryRequest or the server flight. */
  private onClientHello(
    ch: ClientHello,
    retry: Extract<HandshakeState, { kind: 'expectRetriedClientHello' }> | null,
    out: Output,
  ): boolean {
    const { settings, config } = this;
    checkVersion(ch);
    let suite: Suite;
    let group: GroupName;
    let peerShare: Uint8Array;
    if (retry) {
      suite = suiteById(retry.cipherSuite)!;
      if (!ch.cipherSuites.includes(suite.id)) throw new TlsError('illegal_parameter', 'retried ClientHello changed cipher suites');
      // Section 4.2.10: a client MUST NOT offer early data after a HelloRetryRequest.
      if (ch.earlyData) throw new TlsError('illegal_parameter', 'early_data offered after a HelloRetryRequest');
      group = retry.group;
      // Section 4.2.2: the retried ClientHello MUST echo the cookie.
      if (retry.cookie && !(ch.cookie && constantTimeEqual(ch.cookie, retry.cookie))) {
        throw new TlsError('illegal_parameter', 'retried ClientHello does not echo the cookie');
      }
      peerShare = retriedShare(ch, group).keyExchange;
    } else {
      suite = pickCipherSuite(settings.suites, ch.cipherSuites);
      const choice = pickGroup(settings.groups, ch);
      if (choice.kind === 'retry') return this.sendHelloRetryRequest(ch, suite, choice.group, out);
      group = choice.group;
      peerShare = choice.peer;
    }
    const nowMs = this.deps.clock.now();
    const prefix = retry ? retry.transcript : new Uint8Array(0);
    const psk = selectPsk(ch, suite, config.ticketKeys, nowMs, prefix);
    let signing = null;
    if (!psk) {
      if (ch.signatureAlgorithms === null) throw new TlsError('missing_extension', 'signature_algorithms is required');
      signing = pickCertificate(config.certificates, ch.serverName, ch.signatureAlgorithms);
      if (!signing) throw new TlsError('handshake_failure', 'no certificate can sign with an offered scheme');
    }
    const alpn = pickAlpn(settings.alpn, ch.alpn);
    // ALPN is negotiated afresh on resumption; only 0-RTT (never accepted) binds it to the ticket.

    // Every random draw of the connection happens here, in this order.
    const serverRandom = this.deps.random.bytes(32);
    const share = generateKeyShare(group, this.deps.random);
    const seed = this.deps.random.bytes(32);
    const ecdhe = sharedSecret(share, peerShare);

    const s = this.s;
    s.seed = seed;
    s.handshakeTimeMs = nowMs;
    s.earlyDataBudget = ch.earlyData ? EARLY_DATA_SKIP_LIMIT : 0;
    const negotiated: Negotiated = {
      cipherSuite: suite.id,
      group,
      alpn,
      serverName: ch.serverName,
      resumed: psk !== null,
      helloRetry: retry !== null,
      clientRandom: copyBytes(ch.random),
      // RFC 8449 section 4: in TLS 1.3 the limit counts the inner content type byte.
      maxRecordPlaintext: Math.min(settings.maxRecord, (ch.recordSizeLimit ?? Infinity) - 1),
    };
    s.negotiated = negotiated;

    const serverHello = msg.serverHello({
      random: serverRandom,
      legacySessionId: ch.legacySessionId,
      cipherSuite: suite.id,
      keyShare: { group: NamedGroup[group], publicKey: share.publicKey },
      selectedIdentity: psk ? psk.index : null,
    });
    let transcript = concat([prefix, ch.raw, serverHello]);
    this.writeHandshake([serverHello], out);
    // Appendix D.4: in compatibility mode the server's first flight carries one dummy change_cipher_spec.
    if (ch.legacySessionId.length > 0 && !retry?.sentChangeCipherSpec) this.emit(CCS_RECORD, out);

    const early = earlySecret(suite.hash, psk ? psk.ticket.psk : null);
    const hsSecret = handshakeSecret(early, ecdhe);
    const hsTraffic = handshakeTrafficSecrets(hsSecret, hashOf(suite.hash, transcript));
    this.keyLog(out, 'CLIENT_HANDSHAKE_TRAFFIC_SECRET', hsTraffic.client);
    this.keyLog(out, 'SERVER_HANDSHAKE_TRAFFIC_SECRET', hsTraffic.server);
    this.setWrite({ secret: hsTraffic.server, seq: 0n, generation: 0, application: false });

    const flight: Uint8Array[] = [
      msg.encryptedExtensions({
        groups: config.advertisedGroups ?? [],
        recordSizeLimit: ch.recordSizeLimit === null ? null : settings.maxRecord + 1,
        acknowledgeServerName: ch.serverName !== null && !psk,
        alpn,
      }),
    ];
    if (signing) {
      const certificate = msg.certificate(signing.certificate.chain);
      flight.push(certificate);
      transcript = concat([transcript, flight[0]!, certificate]);
      const data = concat([CERTIFICATE_VERIFY_CONTEXT, hashOf(suite.hash, transcript)]);
      const sign = this.deps.sign ?? signCertificateVerify;
      const signature = sign({ scheme: signing.scheme, certificate: signing.certificate, data });
      const verify = msg.certificateVerify(SignatureScheme[signing.scheme], signature);
      flight.push(verify);
      transcript = concat([transcript, verify]);
    } else {
      transcript = concat([transcript, flight[0]!]);
    }
    const serverFinished = msg.finished(finishedVerifyData(suite.hash, hsTraffic.server, hashOf(suite.hash, transcript)));
    flight.push(serverFinished);
    transcript = concat([transcript, serverFinished]);
    this.writeHandshake(flight, out);

    const master: MasterSecret = masterSecret(hsSecret);
    const app = applicationSecrets(master, hashOf(suite.hash, transcript));
    this.keyLog(out, 'CLIENT_TRAFFIC_SECRET_0', app.client);
    this.keyLog(out, 'SERVER_TRAFFIC_SECRET_0', app.server);
    this.keyLog(out, 'EXPORTER_SECRET', app.exporter);
    this.setWrite({ secret: app.server, seq: 0n, generation: 0, application: true });
    this.setRead({ secret: hsTraffic.client, seq: 0n, generation: 0, application: false });
    s.handshake = {
      kind: 'expectFinished',
      transcript,
      clientHandshakeSecret: hsTraffic.client,
      masterSecret: master.secret,
      clientApplicationSecret: app.client,
    };
    return true;
  }

  /** Section 4.1.4: asks for a share of `group`; the transcript restarts with message_hash. */
  private sendHelloRetryRequest(ch: ClientHello, suite: Suite, group: GroupName, out: Output): boolean {
    const cookie = this.deps.helloRetryCookie?.() ?? null;
    const hrr = msg.helloRetryRequest(ch.legacySessionId, suite.id, NamedGroup[group], cookie);
    this.writeHandshake([hrr], out);
    const compat = ch.legacySessionId.length > 0;
    if (compat) this.emit(CCS_RECORD, out);
    this.s.earlyDataBudget = ch.earlyData ? EARLY_DATA_SKIP_LIMIT : 0;
    this.s.handshake = {
      kind: 'expectRetriedClientHello',
      cipherSuite: suite.id,
      group,
      transcript: concat([msg.messageHash(hashOf(suite.hash, ch.raw)), hrr]),
      sentChangeCipherSpec: compat,
      cookie,
    };
    return false;
  }

  /** Section 4.4.4: checks the client Finished in constant time, then issues tickets and flushes data. */
  private onClientFinished(
    message: Uint8Array,
    hs: Extract<HandshakeState, { kind: 'expectFinished' }>,
    out: Output,
  ): void {
    const suite = this.suite();
    const expected = finishedVerifyData(suite.hash, hs.clientHandshakeSecret, hashOf(suite.hash, hs.transcript));
    if (message.length - 4 !== expected.length) throw new TlsError('decode_error', 'Finished of the wrong length');
    if (!constantTimeEqual(message.subarray(4), expected)) {
      throw new TlsError('decrypt_error', 'client Finished does not verify');
    }
    const s = this.s;
    const transcript = concat([hs.transcript, message]);
    s.resumptionMasterSecret = resumptionMasterSecret(
      { stage: 'master', hash: suite.hash, secret: hs.masterSecret },
      hashOf(suite.hash, transcript),
    );
    this.setRead({ secret: hs.clientApplicationSecret, seq: 0n, generation: 0, application: true });
    s.handshake = { kind: 'established' };
    const n = s.negotiated!;
    out.events.push({
      type: 'handshakeDone',
      cipherSuite: suite.name,
      group: n.group,
      alpn: n.alpn,
      serverName: n.serverName,
      resumed: n.resumed,
      helloRetry: n.helloRetry,
    });
    if (!s.writeClosed) {
      for (let i = 0; i < this.settings.ticketCount; i++) this.writeHandshake([this.newSessionTicket()], out);
      const pending = s.pendingSend;
      s.pendingSend = [];
      for (const data of pending) this.sealApplicationData(data, out);
    }
    if (s.readClosed && s.writeClosed) this.finish(out, false);
  }

  /** Section 4.6.1: a ticket whose nonce, age_add and IV derive from the connection seed. */
  private newSessionTicket(): Uint8Array {
    const s = this.s;
    const suite = this.suite();
    const nonce = new Writer(2).u16(s.ticketsIssued++).finish();
    const derived = createHmac('sha256', s.seed!).update('ticket').update(nonce).digest();
    const ageAdd = derived.readUInt32BE(0);
    const keys = this.config.ticketKeys!;
    const contents = encodeTicketContents({
      cipherSuite: suite.id,
      psk: ticketPsk(suite.hash, s.resumptionMasterSecret!, nonce),
      issuedAtMs: s.handshakeTimeMs,
      lifetimeSeconds: this.settings.ticketLifetime,
      ageAdd,
      serverName: s.negotiated!.serverName,
    });
    const ticket = sealTicket(keys.current, derived.subarray(4, 16), contents);
    return msg.newSessionTicket({ lifetimeSeconds: this.settings.ticketLifetime, ageAdd, nonce, ticket });
  }

  /** Section 4.6.3: the client's KeyUpdate; answered with ours when it asks. */
  private onKeyUpdate(message: Uint8Array, out: Output): void {
    const r = new Reader(message.subarray(4));
    const request = r.u8('request_update');
    r.end('KeyUpdate');
    if (request > 1) throw new TlsError('illegal_parameter', 'request_update is neither 0 nor 1');
    const s = this.s;
    const read = s.read!;
    this.setRead({
      secret: nextTrafficSecret(this.suite().hash, read.secret),
      seq: 0n,
      generation: read.generation + 1,
      application: true,
    });
    s.awaitingPeerKeyUpdate = false;
    out.events.push({ type: 'keyUpdated', direction: 'read' });
    if (request === 1 && !s.writeClosed) this.updateWriteKey(false, out);
  }

  private updateWriteKey(requestPeer: boolean, out: Output): void {
    const s = this.s;
    this.writeHandshake([msg.keyUpdate(requestPeer)], out);
    const write = s.write!;
    this.setWrite({
      secret: nextTrafficSecret(this.suite().hash, write.secret),
      seq: 0n,
      generation: write.generation + 1,
      application: true,
    });
    if (requestPeer) s.awaitingPeerKeyUpdate = true;
    out.events.push({ type: 'keyUpdated', direction: 'write' });
  }

  // ---- records out ----

  /** Fragments `data` into records of at most the configured size (deterministically) and seals them. */
  private sealApplicationData(data: Uint8Array, out: Output): void {
    const max = this.s.negotiated!.maxRecordPlaintext;
    for (let at = 0; at < data.length; at += max) {
      if (this.sealer!.seq >= this.settings.keyUpdateAfter) this.updateWriteKey(false, out);
      const chunk = data.subarray(at, Math.min(at + max, data.length));
      this.emit(this.sealer!.seal(ContentType.application_data, chunk), out);
    }
    this.s.counters.plaintextSent += data.length;
  }

  /** Packs handshake messages into as few records as the size limit allows. */
  private writeHandshake(messages: readonly Uint8Array[], out: Output): void {
    const data = concat(messages);
    const max = this.sealer ? this.s.negotiated!.maxRecordPlaintext : this.settings.maxRecord;
    for (let at = 0; at < data.length; at += max) {
      this.writeRecord(ContentType.handshake, data.subarray(at, Math.min(at + max, data.length)), out);
    }
  }

  private writeRecord(type: number, content: Uint8Array, out: Output): void {
    if (this.sealer) {
      this.emit(this.sealer.seal(type, content), out);
      return;
    }
    const header = Uint8Array.of(type, 3, 3, content.length >>> 8, content.length & 0xff);
    this.emit(concat([header, content]), out);
  }

  /** Hands bytes to the client: a whole plaintext record, or the pieces of a sealed one. */
  private emit(record: Uint8Array | readonly Uint8Array[], out: Output): void {
    if (record instanceof Uint8Array) {
      this.s.counters.bytesToClient += record.length;
      out.toClient.push(record);
      return;
    }
    for (const piece of record) {
      this.s.counters.bytesToClient += piece.length;
      out.toClient.push(piece);
    }
  }

  private sendAlert(out: Output, alert: AlertName, level: 1 | 2): void {
    this.writeRecord(ContentType.alert, Uint8Array.of(level, AlertDescription[alert]), out);
  }

  /** Ends the connection with the fatal alert for `err` (sent at most once). */
  private fail(err: unknown, out: Output): void {
    if (this.s.handshake.kind === 'closed') return;
    const alert = alertFor(err);
    const reason = err instanceof TlsError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : 'failure';
    if (!this.s.writeClosed) {
      try {
        this.sendAlert(out, alert, 2);
      } catch {
        // The alert is a courtesy; the connection is over either way.
      }
    }
    out.events.push({ type: 'alertSent', alert, reason });
    this.finish(out, true);
  }

  private finish(out: Output, error: boolean): void {
    const s = this.s;
    s.handshake = { kind: 'closed', error };
    s.readClosed = true;
    s.writeClosed = true;
    s.pendingRecord = new Uint8Array(0);
    s.pendingHandshake = new Uint8Array(0);
    s.pendingSend = [];
    out.events.push({ type: 'closed', error });
  }

  // ---- keys ----

  private suite(): Suite {
    return suiteById(this.s.negotiated!.cipherSuite)!;
  }

  private setWrite(t: TrafficState): void {
    this.s.write = t;
    this.sealer = new RecordSealer(this.suite(), t.secret, Number(t.seq));
  }

  private setRead(t: TrafficState): void {
    this.s.read = t;
    this.opener = new RecordOpener(this.suite(), t.secret, Number(t.seq));
  }

  /** NSS key-log line (SSLKEYLOGFILE format), only when configured: it exposes traffic secrets. */
  private keyLog(out: Output, label: string, secret: Uint8Array): void {
    if (!this.config.keyLog) return;
    out.events.push({ type: 'keyLog', line: `${label} ${toHex(this.s.negotiated!.clientRandom)} ${toHex(secret)}` });
  }
}
