/**
 * The sans-I/O TLS 1.3 server engine (RFC 8446): bytes from the client in,
 * records for the client, application plaintext and events out. No sockets, no
 * timers, no global state; randomness and time are injected. Its whole state
 * can be exported at any call boundary and an engine restored from it continues
 * with byte-identical output.
 */
import { copyBytes, empty, toHex } from '../util/bytes.js';
import { Reader } from '../util/reader.js';
import { signCertificateVerify } from './crypto/signature.js';
import { suiteById, suiteByName, type Suite } from './crypto/suites.js';
import { decodeSnapshot, encodeSnapshot } from './snapshot-codec.js';
import { AlertDescription, alertName, FAILURE_ALERTS, failureCode, failureReasonOf, SnapshotError, TlsError, TlsLimitError, type AlertName } from './errors.js';
import { handshakeDone, verifyClientFinished, type AwaitingClientFinished } from './handshake/client-finished.js';
import { helloRetryRequest, type ExpectRetriedClientHello } from './handshake/hello-retry.js';
import { chooseParameters, serverFlight, serverHello, type ExpectFinished } from './handshake/server-flight.js';
import { handshakeMessageEnd, RecordLayer, recordEnd, refuseSslv2Hello, trafficNow } from './record/record-layer.js';
import { newSessionTicket } from './session/new-session-ticket.js';
import {
  applyRecordState,
  badSnapshotField,
  OLDEST_SNAPSHOT_VERSION,
  RECORD_STATE_LENGTH,
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  upgradeSnapshot,
  writeRecordState,
  type ConnectionSettings,
  type EngineState,
  type HandshakeState,
  type Negotiated,
  type TlsSnapshot,
  type TrafficState,
} from './state.js';
import { DEFAULT_HANDSHAKE_NOISE_CAP, DEFAULT_TICKET_LIFETIME_SECONDS, type TlsCounters, type TlsDeps, type TlsEvent, type TlsOutput, type TlsServerConfig, type TlsSink, type TicketKeys } from './types.js';
import { parseClientHello, type ClientHello } from './wire/client-hello.js';
import { ContentType, HandshakeType, MAX_PLAINTEXT, RECORD_HEADER_LEN, type GroupName } from './wire/constants.js';
import * as msg from './wire/server-messages.js';

const DEFAULT_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const;
const DEFAULT_GROUPS: readonly GroupName[] = ['x25519', 'secp256r1', 'secp384r1'];
/** Below the AES-GCM confidentiality limit of 2^24.5 full-size records (section 5.5). */
const DEFAULT_KEY_UPDATE_AFTER = 1 << 24;
/** How much rejected 0-RTT data we skip before giving up (section 4.2.10). */
const EARLY_DATA_SKIP_LIMIT = 1 << 17;
/** Section 4.6.1: servers MUST NOT use a ticket lifetime above seven days. */
const MAX_TICKET_LIFETIME = 604_800;
const CCS_RECORD = Uint8Array.of(ContentType.change_cipher_spec, 3, 3, 0, 1, 1);
type Phase = 'handshaking' | 'established' | 'closed';

/**
 * The sink behind `receive()`, `send()`... : a fresh array per piece, so the
 * `TlsOutput` it collects owns its memory (one entry per record).
 */
class Collector implements TlsSink {
  readonly out: TlsOutput = { toClient: [], plaintext: [], events: [] };
  private view: Uint8Array = empty();

  reserve(n: number): Uint8Array {
    this.view = new Uint8Array(n);
    return this.view;
  }

  toClient(n: number): void {
    this.out.toClient.push(n === this.view.length ? this.view : this.view.subarray(0, n));
    this.view = empty();
  }

  toApplication(n: number): void {
    this.out.plaintext.push(n === this.view.length ? this.view : this.view.subarray(0, n));
    this.view = empty();
  }

  event(e: TlsEvent): void {
    this.out.events.push(e);
  }
}

/**
 * Settings resolved once from the configuration. Only the handshake's choices are read
 * from here; what shapes the records is copied into each new connection's state.
 */
interface Settings {
  readonly suites: readonly Suite[];
  readonly groups: readonly GroupName[];
  readonly alpn: readonly string[];
  /** What a connection created under this configuration keeps (`EngineState.settings`). */
  readonly connection: ConnectionSettings;
}

/** Settings per configuration, resolved once: every connection of a relay shares its configuration. */
const resolved = new WeakMap<TlsServerConfig, Settings>();

function settingsOf(config: TlsServerConfig): Settings {
  let s = resolved.get(config);
  if (s === undefined) resolved.set(config, (s = resolve(config)));
  return s;
}

function resolve(config: TlsServerConfig): Settings {
  return {
    suites: (config.cipherSuites ?? DEFAULT_SUITES).map(suiteByName),
    groups: config.groups ?? DEFAULT_GROUPS,
    alpn: config.alpn ?? [],
    connection: Object.freeze({
      keyUpdateAfterRecords: Math.max(1, config.keyUpdateAfterRecords ?? DEFAULT_KEY_UPDATE_AFTER),
      maxRecordPlaintext: Math.min(Math.max(1, config.maxRecordPlaintext ?? MAX_PLAINTEXT), MAX_PLAINTEXT),
      ticketCount: config.ticketKeys ? (config.ticketCount ?? 2) : 0,
      ticketLifetimeSeconds: Math.min(config.ticketLifetimeSeconds ?? DEFAULT_TICKET_LIFETIME_SECONDS, MAX_TICKET_LIFETIME),
      ...(config.ticketMode === 'stateful' ? { statefulTickets: true as const } : {}),
      handshakeCaps: Object.freeze([
        Math.max(0, config.maxHandshakeChangeCipherSpecs ?? DEFAULT_HANDSHAKE_NOISE_CAP),
        Math.max(0, config.maxHandshakeWarningAlerts ?? DEFAULT_HANDSHAKE_NOISE_CAP),
      ] as const),
    }),
  };
}

/** A connection before its ClientHello, with the record-shaping settings of its configuration. */
function freshState(settings: ConnectionSettings): EngineState {
  return {
    revision: 0,
    settings,
    handshake: { kind: 'expectClientHello' },
    negotiated: null,
    read: null,
    write: null,
    seed: null,
    resumptionMasterSecret: null,
    ticketsIssued: 0,
    handshakeTimeMs: 0,
    pendingRecord: empty(),
    pendingHandshake: empty(),
    earlyDataBudget: 0,
    pendingSend: [],
    readClosed: false,
    writeClosed: false,
    awaitingPeerKeyUpdate: false,
    counters: { bytesFromClient: 0, bytesToClient: 0, plaintextSent: 0, plaintextReceived: 0 },
    handshakeSeen: [0, 0],
  };
}

/**
 * The handshake state as the engine works with it: `s.handshake` (what a snapshot keeps)
 * itself, except that awaiting the client Finished it also holds the suite, negotiation
 * and seed, which the snapshot keeps beside it.
 */
type Stage = Exclude<HandshakeState, ExpectFinished> | AwaitingClientFinished;

/** A snapshot's `field` is inconsistent with the rest of it. */
function inconsistent(field: string): never {
  throw new SnapshotError(`snapshot field "${field}" is missing or malformed`);
}

/** The engine's stage for a state it is created with (a snapshot's, checked for what each stage needs). */
function stageOf(s: EngineState): Stage {
  const h = s.handshake;
  if (h.kind !== 'expectFinished') return h;
  const negotiated = s.negotiated ?? inconsistent('negotiated');
  return {
    kind: 'expectFinished',
    expected: h,
    suite: suiteById(negotiated.cipherSuite) ?? inconsistent('negotiated'),
    negotiated,
    seed: s.seed ?? inconsistent('seed'),
  };
}

/** A sink that keeps nothing (the warm-up's throwaway output). */
const DISCARD: TlsSink = (() => {
  let scratch = new Uint8Array(256);
  return {
    reserve: (n: number) => (scratch.length >= n ? scratch : (scratch = new Uint8Array(n))),
    toClient: () => {},
    toApplication: () => {},
    event: () => {},
  };
})();

/** A TLS 1.3 server connection. */
export class TlsServerEngine {
  /** The configuration's handshake choices; the record-shaping settings are the connection's (`s.settings`). */
  private readonly settings: Settings;
  /** Both directions' keys, reassembly rooms and records out. */
  private readonly records: RecordLayer;
  /** `s.handshake` with what its state works with (see {@link Stage}); changed only with it. */
  private stage: Stage;
  /**
   * Stateful sessions offered for the next ClientHello (see {@link offerSession}), by id
   * (hex). Not part of the state: the gateway retains the input that offered them and
   * replays it before the ClientHello after a takeover.
   */
  private readonly offered = new Map<string, Uint8Array>();

  private constructor(
    private readonly config: TlsServerConfig,
    private readonly deps: TlsDeps,
    private readonly s: EngineState,
  ) {
    this.settings = settingsOf(config);
    this.records = new RecordLayer(s.counters, s.settings.maxRecordPlaintext);
    this.stage = stageOf(s);
    const n = s.negotiated;
    if (n) {
      const suite = suiteById(n.cipherSuite) ?? inconsistent('negotiated');
      if (s.read) this.records.setRead(suite, s.read);
      if (s.write) this.records.setWrite(suite, s.write, n.maxRecordPlaintext);
    }
  }

  /** A new connection waiting for its ClientHello. */
  static create(config: TlsServerConfig, deps: TlsDeps): TlsServerEngine {
    return new TlsServerEngine(config, deps, freshState(settingsOf(config).connection));
  }

  /**
   * Continues a connection from `snapshot()`. Refuses a snapshot of another
   * format, or of a version this engine does not read, with a {@link SnapshotError}.
   * The connection keeps the record-shaping settings it began with (its snapshot's
   * `settings`), whatever `config` says of them.
   */
  static restore(snapshot: TlsSnapshot, config: TlsServerConfig, deps: TlsDeps): TlsServerEngine {
    return TlsServerEngine.adopt(structuredClone(snapshot), config, deps);
  }

  /**
   * Continues a connection from snapshot bytes (`encodedSnapshot()`) and a record state
   * taken after them (`recordState()`): what a relay does at a takeover. The bytes are
   * the caller's to give away (the engine keeps views into them), so nothing is copied.
   */
  static restoreEncoded(bytes: Uint8Array, record: Float64Array, config: TlsServerConfig, deps: TlsDeps): TlsServerEngine {
    return TlsServerEngine.adopt(applyRecordState(decodeSnapshot(bytes), record), config, deps);
  }

  /**
   * Runs the takeover path (`restoreEncoded` of an established connection) a few times
   * on throwaway state, so that a relay's first real takeover runs compiled code rather
   * than the interpreter (cold, it costs ten times as much). Touches no real secret.
   */
  static warmUp(config: TlsServerConfig, deps: TlsDeps, rounds = 64): void {
    const state: EngineState = {
      ...freshState(settingsOf(config).connection),
      handshake: { kind: 'established' },
      negotiated: {
        cipherSuite: suiteByName('TLS_AES_128_GCM_SHA256').id,
        group: 'x25519',
        alpn: null,
        serverName: null,
        resumed: false,
        helloRetry: false,
        clientRandom: new Uint8Array(32),
        maxRecordPlaintext: MAX_PLAINTEXT,
      },
      read: { secret: new Uint8Array(32), seq: 0n, generation: 0, application: true },
      write: { secret: new Uint8Array(32), seq: 0n, generation: 0, application: true },
      seed: new Uint8Array(32),
      resumptionMasterSecret: new Uint8Array(32),
    };
    const warm = new TlsServerEngine(config, deps, state);
    const bytes = warm.encodedSnapshot();
    const record = new Float64Array(RECORD_STATE_LENGTH);
    warm.recordState(record);
    warm.abortInto('warm-up', DISCARD);
    for (let i = 0; i < rounds; i++) TlsServerEngine.restoreEncoded(bytes.slice(), record, config, deps).abortInto('warm-up', DISCARD);
  }

  /** Checks a snapshot the engine may keep as it is, and continues from it. */
  private static adopt(snapshot: TlsSnapshot, config: TlsServerConfig, deps: TlsDeps): TlsServerEngine {
    if (snapshot === null || typeof snapshot !== 'object' || snapshot.format !== SNAPSHOT_FORMAT) {
      throw new SnapshotError('not a TLS server engine snapshot');
    }
    const current = upgradeSnapshot(snapshot, settingsOf(config).connection);
    if (current === null) {
      throw new SnapshotError(
        `snapshot format version ${String(snapshot.version)} is not supported (this engine reads versions ${OLDEST_SNAPSHOT_VERSION} to ${SNAPSHOT_VERSION})`,
      );
    }
    const { format: _f, version: _v, ...state } = current;
    const bad = badSnapshotField(state as unknown as Record<string, unknown>);
    if (bad) throw new SnapshotError(`snapshot field "${bad}" is missing or malformed`);
    return new TlsServerEngine(config, deps, state as EngineState);
  }

  /** The engine's state as plain data (see {@link TlsSnapshot} for which fields are secret). */
  snapshot(): TlsSnapshot {
    return structuredClone(this.snapshotView());
  }

  /**
   * The snapshot already encoded (`encodeSnapshot(snapshot())`), without the deep copy
   * `snapshot()` makes: what the relay commits after a batch. Secret, like the snapshot.
   */
  encodedSnapshot(): Uint8Array {
    return encodeSnapshot(this.snapshotView());
  }

  /** The state as a snapshot that shares the engine's arrays: encode it at once or copy it. */
  private snapshotView(): TlsSnapshot {
    const s = this.s;
    return {
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      ...s,
      read: trafficNow(this.records.read),
      write: trafficNow(this.records.write),
      pendingSend: [...s.pendingSend],
      counters: { ...s.counters },
    };
  }

  /**
   * Changes whenever the state changes in anything but its record state (see
   * {@link recordState}): while it stays put, `applyRecordState(base, recordState())`
   * on a snapshot of the same revision is the whole state. Ordinary established
   * traffic (whole records in, application data both ways) leaves it alone.
   */
  get revision(): number {
    return this.s.revision;
  }

  /**
   * Client bytes held until they form a whole record or handshake message: a lower
   * bound on the size of {@link encodedSnapshot}, read without encoding it.
   */
  get bufferedBytes(): number {
    return this.s.pendingRecord.length + this.s.pendingHandshake.length;
  }

  /**
   * Writes the record state (sequence numbers, counters, early-data budget, close
   * flags; layout `RecordStateIndex`, `RECORD_STATE_LENGTH` entries) into `into`.
   * Allocates nothing.
   */
  recordState(into: Float64Array): void {
    const { read, write } = this.records;
    writeRecordState(this.s, read ? read.cipher.seq : -1, write ? write.cipher.seq : -1, into);
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

  /** Record bytes produced for the client so far (`counters.bytesToClient`), without a copy. */
  get clientOffset(): number {
    return this.s.counters.bytesToClient;
  }

  /** Application bytes delivered from the client so far (`counters.plaintextReceived`), without a copy. */
  get applicationOffset(): number {
    return this.s.counters.plaintextReceived;
  }

  /** What the handshake settled, once the ServerHello is chosen. */
  get negotiated(): Readonly<Negotiated> | null {
    return this.s.negotiated;
  }

  /**
   * Offers the stored entry of stateful ticket `id` (sealed; the engine opens it) for
   * the next ClientHello: what the cluster's store held under an id that ClientHello
   * names. Kept through a HelloRetryRequest, dropped once a ServerHello is chosen. An
   * entry that does not open, or names another id, is ignored (a full handshake).
   */
  offerSession(id: Uint8Array, entry: Uint8Array): void {
    if (this.s.handshake.kind === 'expectClientHello' || this.s.handshake.kind === 'expectRetriedClientHello') this.offered.set(toHex(id), entry);
  }

  /** Takes bytes from the client, in any chunking. Never throws: failures become a fatal alert. */
  receive(bytes: Uint8Array): TlsOutput {
    const c = new Collector();
    this.receiveInto(bytes, c);
    return c.out;
  }

  /** Queues application data for the client; sealed at once when established, else after the handshake. */
  send(plaintext: Uint8Array): TlsOutput {
    const c = new Collector();
    this.sendInto(plaintext, c);
    return c.out;
  }

  /** Sends close_notify (section 6.1); the client may still send until it closes too. */
  close(): TlsOutput {
    const c = new Collector();
    this.closeInto(c);
    return c.out;
  }

  /** Starts a KeyUpdate (section 4.6.3), optionally asking the client to update too. */
  keyUpdate(requestPeer = false): TlsOutput {
    const c = new Collector();
    this.keyUpdateInto(requestPeer, c);
    return c.out;
  }

  /**
   * Ends the connection now with a fatal alert (internal_error, reason
   * `aborted_by_application`), for a cause outside the protocol that `detail` names:
   * a quarantined connection, a backend failure.
   */
  abort(detail = 'aborted by the application'): TlsOutput {
    const c = new Collector();
    this.abortInto(detail, c);
    return c.out;
  }

  /**
   * {@link receive} into `sink`: application data is opened straight into the
   * sink's views. `bytes` may be reused by the caller once this returns (nothing
   * keeps a reference to it), but must not overlap a view the sink hands out.
   */
  receiveInto(bytes: Uint8Array, sink: TlsSink): void {
    const s = this.s;
    if (s.handshake.kind === 'closed') return;
    s.counters.bytesFromClient += bytes.length;
    const appended = s.pendingRecord.length > 0;
    const buf = appended ? this.records.appendToPendingRecord(s.pendingRecord, bytes) : bytes;
    let at = 0;
    try {
      while (buf.length - at >= RECORD_HEADER_LEN && this.s.handshake.kind !== 'closed') {
        if (this.s.handshake.kind === 'expectClientHello') refuseSslv2Hello(buf, at, this.s.pendingHandshake.length);
        const end = recordEnd(buf, at);
        if (buf.length < end) break;
        // One whole record per call (what the gateway's framing delivers) takes no view.
        // Records handed on may be views into the room (a ClientHello): it is not written again.
        this.records.releaseRecordRoom();
        this.onRecord(at === 0 && end === buf.length ? buf : buf.subarray(at, end), sink);
        at = end;
      }
      // A partial record still in the room stays there, a view, and grows in place.
      const rest = this.s.handshake.kind === 'closed' || at === buf.length ? empty() : appended && at === 0 ? buf : copyBytes(buf.subarray(at));
      this.setPendingRecord(rest);
    } catch (err) {
      this.fail(err, sink);
    }
  }

  /**
   * {@link send} into `sink`: each record is sealed straight into a
   * `reserve(5 + length + 1 + 16)` view. `plaintext` must not overlap a view the
   * sink hands out; it is copied when held for the end of the handshake.
   */
  sendInto(plaintext: Uint8Array, sink: TlsSink): void {
    const s = this.s;
    if (s.writeClosed || s.handshake.kind === 'closed' || plaintext.length === 0) return;
    try {
      if (s.handshake.kind !== 'established') {
        s.pendingSend.push(copyBytes(plaintext));
        this.touch();
        return;
      }
      this.sealApplicationData(plaintext, sink);
    } catch (err) {
      this.fail(err, sink);
    }
  }

  /** {@link close} into `sink`. */
  closeInto(sink: TlsSink): void {
    const s = this.s;
    if (s.writeClosed || s.handshake.kind === 'closed') return;
    try {
      this.sendAlert(sink, 'close_notify', 1);
      s.writeClosed = true;
      if (s.readClosed || s.handshake.kind !== 'established') this.finish(sink, false);
    } catch (err) {
      this.fail(err, sink);
    }
  }

  /** {@link keyUpdate} into `sink`. */
  keyUpdateInto(requestPeer: boolean, sink: TlsSink): void {
    if (this.s.handshake.kind !== 'established' || this.s.writeClosed) return;
    try {
      this.updateWriteKey(requestPeer, sink);
    } catch (err) {
      this.fail(err, sink);
    }
  }

  /** {@link abort} into `sink`. */
  abortInto(detail: string, sink: TlsSink): void {
    this.fail(new TlsError('aborted_by_application', detail), sink);
  }

  // ---- records in ----

  /** One whole record (header and body); `record` is the caller's memory, never kept. */
  private onRecord(record: Uint8Array, sink: TlsSink): void {
    const type = record[0]!;
    const s = this.s;
    const opener = this.records.opener;
    // A protected record's true type is known once it is open (checked there).
    if (type !== ContentType.application_data || opener === null) this.refuseInsideHandshakeMessage(type);
    if (type === ContentType.change_cipher_spec) return this.onChangeCipherSpec(record);
    if (opener === null) {
      const body = record.subarray(RECORD_HEADER_LEN);
      // Section 5.1: unprotected records hold at most 2^14 bytes.
      if (body.length > MAX_PLAINTEXT) throw new TlsError('record_overflow_plaintext', 'plaintext record longer than 2^14');
      switch (type) {
        case ContentType.handshake:
          return this.onHandshakeFragment(body, sink);
        case ContentType.alert:
          return this.onAlert(body, sink);
        case ContentType.application_data:
          // Section 4.1.4/4.2.10: after a HelloRetryRequest, 0-RTT records may arrive before ClientHello2.
          if (s.handshake.kind === 'expectRetriedClientHello' && s.earlyDataBudget >= body.length) {
            s.earlyDataBudget -= body.length;
            return;
          }
          throw new TlsError('application_data_before_handshake', 'application data before the handshake');
        default:
          throw new TlsError('unknown_record_type', `unknown record type ${type}`);
      }
    }
    if (type === ContentType.alert && s.handshake.kind !== 'established') {
      // A client that could not process our ServerHello alerts without protection.
      return this.onAlert(record.subarray(RECORD_HEADER_LEN), sink);
    }
    if (type !== ContentType.application_data) {
      throw new TlsError('unprotected_record_after_key_change', `unprotected record of type ${type} after keys changed`);
    }
    const bodyLength = record.length - RECORD_HEADER_LEN;
    // Opened in place in the sink's memory: application data stays there.
    const view = sink.reserve(bodyLength);
    let n: number;
    try {
      n = opener.openInto(record, view, 0);
    } catch (err) {
      // Section 4.2.10: skip rejected early data that fails to deprotect, up to a limit.
      if (err instanceof TlsError && err.alert === 'bad_record_mac' && s.earlyDataBudget >= bodyLength) {
        s.earlyDataBudget -= bodyLength;
        return;
      }
      throw err;
    }
    s.earlyDataBudget = 0;
    const inner = opener.contentType;
    this.refuseInsideHandshakeMessage(inner);
    if (inner === ContentType.application_data) {
      if (s.handshake.kind !== 'established') {
        throw new TlsError('application_data_before_client_finished', 'application data before the client Finished');
      }
      // Section 6.1: data after close_notify MUST be ignored.
      if (!s.readClosed && n) {
        sink.toApplication(n);
        s.counters.plaintextReceived += n;
      }
    } else {
      // Not application data: copied out before parsing, since the next reserve() reuses the view.
      const content = copyBytes(view.subarray(0, n));
      switch (inner) {
        case ContentType.handshake:
          if (content.length === 0) throw new TlsError('empty_handshake_record', 'empty handshake record');
          this.onHandshakeFragment(content, sink);
          break;
        case ContentType.alert:
          this.onAlert(content, sink);
          break;
        default:
          throw new TlsError('unknown_inner_content_type', `unknown inner content type ${inner}`);
      }
    }
    if (this.records.readLimitReached(s.settings.keyUpdateAfterRecords) && !s.awaitingPeerKeyUpdate) {
      if (s.handshake.kind === 'established' && !s.writeClosed) this.updateWriteKey(true, sink);
    }
  }

  /**
   * Section 5.1: handshake messages MUST NOT be interleaved with other record types; any
   * record but a handshake one while part of a handshake message is buffered is
   * unexpected_message (a dummy change_cipher_spec or a warning alert included).
   */
  private refuseInsideHandshakeMessage(type: number): void {
    if (type !== ContentType.handshake && this.s.pendingHandshake.length) {
      throw new TlsError('record_inside_handshake_message', `record of type ${type} inside a handshake message`);
    }
  }

  /**
   * Appendix D.4: a dummy change_cipher_spec is dropped during the handshake, up to the
   * connection's cap (a client sends one: more is a flood costing us a record each);
   * otherwise unexpected.
   */
  private onChangeCipherSpec(record: Uint8Array): void {
    const s = this.s;
    const k = s.handshake.kind;
    const dummy = record.length === RECORD_HEADER_LEN + 1 && record[RECORD_HEADER_LEN] === 1;
    if (!((k === 'expectRetriedClientHello' || k === 'expectFinished') && dummy)) {
      throw new TlsError('unexpected_change_cipher_spec', 'change_cipher_spec outside the handshake');
    }
    const cap = s.settings.handshakeCaps[0];
    if (s.handshakeSeen[0] >= cap) {
      throw new TlsLimitError('handshakeChangeCipherSpecs', 'too_many_change_cipher_specs', `more than ${cap} change_cipher_spec records during the handshake`);
    }
    s.handshakeSeen = [s.handshakeSeen[0] + 1, s.handshakeSeen[1]];
    this.touch();
  }

  private onAlert(body: Uint8Array, sink: TlsSink): void {
    // Section 5.4: an alert record with no content (padded or not) is unexpected_message,
    // not a malformed alert; a plaintext one is refused alike.
    if (body.length === 0) throw new TlsError('empty_alert_record', 'empty alert record');
    if (body.length !== 2) throw new TlsError('alert_record_wrong_length', 'alert record is not two bytes');
    const description = body[1]!;
    const s = this.s;
    if (description === AlertDescription.close_notify) {
      if (s.readClosed) return;
      s.readClosed = true;
      sink.event({ type: 'peerClosed' });
      if (s.writeClosed || s.handshake.kind !== 'established') this.finish(sink, s.handshake.kind !== 'established');
      return;
    }
    if (description === AlertDescription.user_canceled && s.handshake.kind !== 'established') {
      // A warning alert costs us a record each and moves nothing: capped during the handshake.
      const cap = s.settings.handshakeCaps[1];
      if (s.handshakeSeen[1] >= cap) {
        throw new TlsLimitError('handshakeWarningAlerts', 'too_many_warning_alerts', `more than ${cap} warning alerts during the handshake`);
      }
      s.handshakeSeen = [s.handshakeSeen[0], s.handshakeSeen[1] + 1];
      this.touch();
    }
    sink.event({ type: 'alertReceived', alert: alertName(description) });
    // Section 6: user_canceled is followed by close_notify; every other alert is fatal.
    if (description === AlertDescription.user_canceled) return;
    this.finish(sink, true);
  }

  private onHandshakeFragment(fragment: Uint8Array, sink: TlsSink): void {
    const s = this.s;
    const appended = s.pendingHandshake.length > 0;
    let buf = appended ? this.records.appendToPendingHandshake(s.pendingHandshake, fragment) : fragment;
    const whole = buf;
    while (buf.length >= 4) {
      const end = handshakeMessageEnd(buf);
      if (buf.length < end) break;
      const message = buf.subarray(0, end);
      buf = buf.subarray(end);
      // The message may keep views into the room (a parsed ClientHello): never written again.
      this.records.releaseAssembly();
      const keysChange = this.onHandshakeMessage(message, sink);
      // Section 5.1: handshake messages MUST NOT span a key change.
      if (keysChange && buf.length) throw new TlsError('handshake_data_across_key_change', 'handshake data across a key change');
      if (this.s.handshake.kind === 'closed') return;
    }
    // Still one partial message in the room: it stays there, a view, and grows in place.
    const inRoom = appended && buf === whole;
    this.setPendingHandshake(buf.length === 0 ? empty() : inRoom ? buf : copyBytes(buf));
  }

  /** Handles one whole handshake message; returns true when the read key changed after it. */
  private onHandshakeMessage(message: Uint8Array, sink: TlsSink): boolean {
    const type = message[0]!;
    const hs = this.stage;
    switch (hs.kind) {
      case 'expectClientHello':
        if (type !== HandshakeType.client_hello) throw new TlsError('expected_client_hello', 'expected ClientHello');
        return this.onClientHello(parseClientHello(message), null, sink);
      case 'expectRetriedClientHello':
        if (type !== HandshakeType.client_hello) throw new TlsError('expected_client_hello', 'expected ClientHello');
        return this.onClientHello(parseClientHello(message), hs, sink);
      case 'expectFinished':
        if (type !== HandshakeType.finished) throw new TlsError('expected_client_finished', 'expected client Finished');
        this.onClientFinished(message, hs, sink);
        return true;
      case 'established':
        if (type !== HandshakeType.key_update) {
          throw new TlsError('unexpected_post_handshake_message', `handshake message ${type} after the handshake`);
        }
        this.onKeyUpdate(message, sink);
        return true;
      case 'closed':
        return false;
    }
  }

  // ---- the handshake ----

  /** Section 4.1.2: answers a ClientHello with a HelloRetryRequest or the server flight (handshake/server-flight.ts). */
  private onClientHello(ch: ClientHello, retry: ExpectRetriedClientHello | null, sink: TlsSink): boolean {
    const { config, deps } = this;
    const s = this.s;
    const p = chooseParameters(ch, retry, this.settings, config, deps.clock, this.offered);
    if (p.kind === 'helloRetryRequest') return this.sendHelloRetryRequest(ch, p.suite, p.group, sink);
    this.offered.clear();

    const { suite } = p;
    const hello = serverHello(ch, p, deps.random, s.settings.maxRecordPlaintext);
    const n = hello.negotiated;
    s.seed = hello.seed;
    s.handshakeTimeMs = p.nowMs;
    s.earlyDataBudget = ch.earlyData ? EARLY_DATA_SKIP_LIMIT : 0;
    s.negotiated = n;
    this.touch();
    this.records.writeHandshake([hello.message], sink);
    if (hello.changeCipherSpec) this.records.writePlain(CCS_RECORD, sink);
    this.keyLog(sink, n, 'CLIENT_HANDSHAKE_TRAFFIC_SECRET', hello.client);
    this.keyLog(sink, n, 'SERVER_HANDSHAKE_TRAFFIC_SECRET', hello.server);
    this.setWrite(suite, { secret: hello.server, seq: 0n, generation: 0, application: false }, n.maxRecordPlaintext);

    // The ServerHello is out before the flight is signed: a failing signer ends the connection under the handshake key.
    const flight = serverFlight(ch, p, hello, {
      advertisedGroups: config.advertisedGroups ?? [],
      maxRecordPlaintext: s.settings.maxRecordPlaintext,
      sign: deps.sign ?? signCertificateVerify,
    });
    this.records.writeHandshake(flight.messages, sink);
    const next = flight.next;
    this.keyLog(sink, n, 'CLIENT_TRAFFIC_SECRET_0', next.clientApplicationSecret);
    this.keyLog(sink, n, 'SERVER_TRAFFIC_SECRET_0', flight.serverApplicationSecret);
    this.keyLog(sink, n, 'EXPORTER_SECRET', flight.exporterSecret);
    this.setWrite(suite, { secret: flight.serverApplicationSecret, seq: 0n, generation: 0, application: true }, n.maxRecordPlaintext);
    this.setRead(suite, { secret: hello.client, seq: 0n, generation: 0, application: false });
    this.setStage({ kind: 'expectFinished', expected: next, suite, negotiated: n, seed: hello.seed });
    return true;
  }

  /** Section 4.1.4: asks for a share of `group` (handshake/hello-retry.ts). */
  private sendHelloRetryRequest(ch: ClientHello, suite: Suite, group: GroupName, sink: TlsSink): boolean {
    const retry = helloRetryRequest(ch, suite, group, this.deps.helloRetryCookie?.() ?? null);
    this.records.writeHandshake([retry.message], sink);
    if (retry.changeCipherSpec) this.records.writePlain(CCS_RECORD, sink);
    this.s.earlyDataBudget = ch.earlyData ? EARLY_DATA_SKIP_LIMIT : 0;
    this.setStage(retry.next);
    return false;
  }

  /** Section 4.4.4: checks the client Finished, then issues tickets and flushes data. */
  private onClientFinished(message: Uint8Array, awaiting: AwaitingClientFinished, sink: TlsSink): void {
    const hs = awaiting.expected;
    verifyClientFinished(message, hs);
    const s = this.s;
    const { suite, negotiated: n } = awaiting;
    s.resumptionMasterSecret = hs.resumptionMasterSecret;
    this.setRead(suite, { secret: hs.clientApplicationSecret, seq: 0n, generation: 0, application: true });
    this.setStage({ kind: 'established' });
    sink.event(handshakeDone(suite, n));
    if (!s.writeClosed) {
      // Without ticket keys here (a relay configured without them took over) none can be sealed.
      const keys = this.config.ticketKeys;
      if (keys) this.issueTickets(awaiting, keys, sink);
      const pending = s.pendingSend;
      if (pending.length) {
        s.pendingSend = [];
        this.touch();
        for (const data of pending) this.sealApplicationData(data, sink);
      }
    }
    if (s.readClosed && s.writeClosed) this.finish(sink, false);
  }

  /** Section 4.6.1: the connection's tickets (session/new-session-ticket.ts), one record each. */
  private issueTickets(awaiting: AwaitingClientFinished, keys: TicketKeys, sink: TlsSink): void {
    const s = this.s;
    for (let i = 0; i < s.settings.ticketCount; i++) {
      const ticket = newSessionTicket({
        stateful: s.settings.statefulTickets === true,
        suite: awaiting.suite,
        key: keys.current,
        seed: awaiting.seed,
        resumptionMasterSecret: awaiting.expected.resumptionMasterSecret,
        index: s.ticketsIssued++,
        issuedAtMs: s.handshakeTimeMs,
        lifetimeSeconds: s.settings.ticketLifetimeSeconds,
        serverName: awaiting.negotiated.serverName,
      });
      this.touch();
      this.records.writeHandshake([ticket.message], sink);
      if (ticket.stored) sink.event({ type: 'sessionIssued', id: ticket.stored.id, entry: ticket.stored.entry });
    }
  }

  /** Section 4.6.3: the client's KeyUpdate; answered with ours when it asks. */
  private onKeyUpdate(message: Uint8Array, sink: TlsSink): void {
    const r = new Reader(message.subarray(4));
    const request = r.u8('request_update');
    r.end('KeyUpdate');
    if (request > 1) throw new TlsError('key_update_request_invalid', 'request_update is neither 0 nor 1');
    const s = this.s;
    s.read = this.records.updateReadKey();
    this.touch();
    s.awaitingPeerKeyUpdate = false;
    sink.event({ type: 'keyUpdated', direction: 'read' });
    if (request === 1 && !s.writeClosed) this.updateWriteKey(false, sink, true);
  }

  private updateWriteKey(requestPeer: boolean, sink: TlsSink, answer = false): void {
    const s = this.s;
    this.records.writeHandshake([msg.keyUpdate(requestPeer)], sink);
    s.write = this.records.updateWriteKey();
    this.touch();
    if (requestPeer) s.awaitingPeerKeyUpdate = true;
    sink.event(answer ? { type: 'keyUpdated', direction: 'write', answer } : { type: 'keyUpdated', direction: 'write' });
  }

  // ---- records out ----

  /** Fragments `data` into records of at most the negotiated size (deterministically) and seals them. */
  private sealApplicationData(data: Uint8Array, sink: TlsSink): void {
    const max = this.records.recordPlaintextLimit;
    const length = data.length;
    if (length <= max) {
      this.sealApplicationRecord(data, sink);
    } else {
      for (let at = 0; at < length; at += max) this.sealApplicationRecord(data.subarray(at, Math.min(at + max, length)), sink);
    }
    this.s.counters.plaintextSent += length;
  }

  /** Section 5.5: a KeyUpdate first when the write key has sealed its share of records. */
  private sealApplicationRecord(chunk: Uint8Array, sink: TlsSink): void {
    if (this.records.writeLimitReached(this.s.settings.keyUpdateAfterRecords)) this.updateWriteKey(false, sink);
    this.records.writeRecord(ContentType.application_data, chunk, sink);
  }

  private sendAlert(sink: TlsSink, alert: AlertName, level: 1 | 2): void {
    this.records.writeRecord(ContentType.alert, Uint8Array.of(level, AlertDescription[alert]), sink);
  }

  /** Ends the connection with the fatal alert for `err` (sent at most once). */
  private fail(err: unknown, sink: TlsSink): void {
    if (this.s.handshake.kind === 'closed') return;
    const failure = failureReasonOf(err);
    const alert = FAILURE_ALERTS[failure];
    const reason = err instanceof TlsError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : 'failure';
    if (!this.s.writeClosed) {
      try {
        this.sendAlert(sink, alert, 2);
      } catch {
        // The alert is a courtesy; the connection is over either way.
      }
    }
    if (err instanceof TlsLimitError) sink.event({ type: 'limitExceeded', limit: err.limit });
    sink.event({ type: 'alertSent', alert, code: failureCode(failure), reason });
    this.finish(sink, true);
  }

  private finish(sink: TlsSink, error: boolean): void {
    const s = this.s;
    this.setStage({ kind: 'closed', error });
    s.readClosed = true;
    s.writeClosed = true;
    s.pendingRecord = empty();
    s.pendingHandshake = empty();
    s.pendingSend = [];
    // Nothing is sealed or opened again; the sequence numbers stay readable for snapshot().
    this.records.free();
    sink.event({ type: 'closed', error });
  }

  // ---- state changes beyond the record state ----

  /** Marks a change outside the record state (see {@link revision}). */
  private touch(): void {
    this.s.revision++;
  }

  /** The next handshake state; the snapshot's `handshake` is its part that a snapshot keeps. */
  private setStage(stage: Stage): void {
    this.stage = stage;
    this.s.handshake = stage.kind === 'expectFinished' ? stage.expected : stage;
    this.touch();
  }

  private setPendingRecord(b: Uint8Array): void {
    if (b.length === 0 && this.s.pendingRecord.length === 0) return;
    this.s.pendingRecord = b;
    this.touch();
  }

  private setPendingHandshake(b: Uint8Array): void {
    if (b.length === 0 && this.s.pendingHandshake.length === 0) return;
    this.s.pendingHandshake = b;
    this.touch();
  }

  // ---- keys ----

  /** A new write key, whose records hold at most `maxPlaintext` bytes (the negotiated limit). */
  private setWrite(suite: Suite, t: TrafficState, maxPlaintext: number): void {
    this.s.write = t;
    this.touch();
    this.records.setWrite(suite, t, maxPlaintext);
  }

  private setRead(suite: Suite, t: TrafficState): void {
    this.s.read = t;
    this.touch();
    this.records.setRead(suite, t);
  }

  /** NSS key-log line (SSLKEYLOGFILE format), only when configured: it exposes traffic secrets. */
  private keyLog(sink: TlsSink, n: Negotiated, label: string, secret: Uint8Array): void {
    if (!this.config.keyLog) return;
    sink.event({ type: 'keyLog', line: `${label} ${toHex(n.clientRandom)} ${toHex(secret)}` });
  }
}
