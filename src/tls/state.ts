/**
 * The engine's whole state as plain data: what `snapshot()` exports and
 * `restore()` continues from. Fields marked "secret" must only ever travel on
 * the replication channel: never to logs, errors, metrics or files.
 */
import { SnapshotError } from './errors.js';
import type { GroupName } from './wire/constants.js';

/** What the handshake settled; public. */
export interface Negotiated {
  readonly cipherSuite: number;
  readonly group: GroupName;
  readonly alpn: string | null;
  readonly serverName: string | null;
  readonly resumed: boolean;
  readonly helloRetry: boolean;
  readonly clientRandom: Uint8Array;
  /** Largest plaintext per protected record we send: ours, lowered by the client's record_size_limit. */
  readonly maxRecordPlaintext: number;
}

/** Handshake states, each named after what it waits for (RFC 8446 appendix A.2). */
export type HandshakeState =
  | { readonly kind: 'expectClientHello' }
  | {
      /** After a HelloRetryRequest (section 4.1.4). */
      readonly kind: 'expectRetriedClientHello';
      readonly cipherSuite: number;
      readonly group: GroupName;
      /** message_hash(ClientHello1) || HelloRetryRequest. */
      readonly transcript: Uint8Array;
      readonly sentChangeCipherSpec: boolean;
      /** The cookie the retried ClientHello must echo, if we sent one. */
      readonly cookie: Uint8Array | null;
      /**
       * Hash of `retryInvariant(ClientHello1)`: what the retried ClientHello must repeat.
       * Absent from a snapshot of an engine from before the check (the same snapshot
       * version: a takeover across that upgrade goes on, without the comparison).
       */
      readonly firstHello?: Uint8Array;
    }
  | {
      /**
       * The server flight is out. Only what the client Finished needs is kept (not
       * the transcript): its expected verify_data, the read key to switch to after it,
       * and the resumption master secret, whose input Hash(ClientHello..client
       * Finished) is known once the server flight is built, because a client
       * Finished that verifies is exactly the expected message.
       */
      readonly kind: 'expectFinished';
      /** Secret: HMAC(finished_key(client_handshake_traffic_secret), Hash(ClientHello..server Finished)). */
      readonly clientVerifyData: Uint8Array;
      /** Secret. */
      readonly clientApplicationSecret: Uint8Array;
      /** Secret: becomes `EngineState.resumptionMasterSecret` when the client Finished verifies. */
      readonly resumptionMasterSecret: Uint8Array;
    }
  | { readonly kind: 'established' }
  | { readonly kind: 'closed'; readonly error: boolean };

/** One direction's record protection: a traffic secret (secret) and the next sequence number. */
export interface TrafficState {
  readonly secret: Uint8Array;
  readonly seq: bigint;
  /** How many KeyUpdates produced this secret (0 for the handshake and first application secrets). */
  readonly generation: number;
  /** True for the application traffic secrets, false for the handshake ones. */
  readonly application: boolean;
}

/**
 * The settings that shape the connection's records, taken from the configuration
 * when the connection is created and kept with it: an engine restored on a relay
 * configured otherwise goes on as the connection began. Read from the restoring
 * engine's configuration, a KeyUpdate threshold of its own would seal data where
 * the old owner sealed a KeyUpdate, under the same key and sequence number (AES-GCM
 * nonce reuse); a ticket count or lifetime of its own, other bytes likewise.
 */
export interface ConnectionSettings {
  /** Records sealed (or opened) under one key before we start a KeyUpdate. */
  readonly keyUpdateAfterRecords: number;
  /** Our largest plaintext per record, before the client's record_size_limit lowers it (see `Negotiated`). */
  readonly maxRecordPlaintext: number;
  /** NewSessionTickets sent after the client Finished (0 without ticket keys). */
  readonly ticketCount: number;
  readonly ticketLifetimeSeconds: number;
  /**
   * Tickets are opaque ids, their state stored by the cluster (single-use sessions).
   * Absent: stateless tickets (and so in every snapshot made before this field).
   */
  readonly statefulTickets?: true;
  /**
   * Dummy change_cipher_spec records, and warning alerts (user_canceled), taken during the
   * handshake before the next is unexpected_message (a pair: snapshots stay small).
   * Absent from snapshots made before these caps; such a connection takes them from the
   * restoring configuration.
   */
  readonly handshakeCaps: readonly [changeCipherSpecs: number, warningAlerts: number];
}

export interface Counters {
  bytesFromClient: number;
  bytesToClient: number;
  plaintextSent: number;
  plaintextReceived: number;
}

export interface EngineState {
  /**
   * Changes whenever any field other than the record state (see
   * {@link RecordStateIndex}) changes: two states with the same revision differ at
   * most in their record state.
   */
  revision: number;
  /** Fixed for the connection's life (see {@link ConnectionSettings}). */
  readonly settings: ConnectionSettings;
  handshake: HandshakeState;
  negotiated: Negotiated | null;
  /** Null while the direction is unprotected. */
  read: TrafficState | null;
  write: TrafficState | null;
  /** Secret: drawn with the ServerHello; ticket nonces, age_add and IVs derive from it. */
  seed: Uint8Array | null;
  /** Secret. */
  resumptionMasterSecret: Uint8Array | null;
  ticketsIssued: number;
  /** The clock at the ClientHello that got a ServerHello; later steps never read the clock. */
  handshakeTimeMs: number;
  /** Client bytes not yet forming a whole record. */
  pendingRecord: Uint8Array;
  /** Handshake bytes not yet forming a whole message. */
  pendingHandshake: Uint8Array;
  /** Bytes of rejected early data we may still skip (section 4.2.10). */
  earlyDataBudget: number;
  /** Application data handed to send() before the handshake completed. */
  pendingSend: Uint8Array[];
  readClosed: boolean;
  writeClosed: boolean;
  /** We asked the client for a KeyUpdate and have not seen it yet. */
  awaitingPeerKeyUpdate: boolean;
  counters: Counters;
  /** Dummy change_cipher_spec records and warning alerts taken so far during the handshake (capped by `settings.handshakeCaps`). */
  handshakeSeen: [changeCipherSpecs: number, warningAlerts: number];
}

export const SNAPSHOT_FORMAT = 'baton.tls13.server';
/**
 * 2: `revision`; `expectFinished` keeps the client's verify_data instead of the transcript.
 * 3: `settings`, the connection's own record-shaping settings.
 */
export const SNAPSHOT_VERSION = 3;
/** The oldest version `restore` still reads (see {@link upgradeSnapshot}). */
export const OLDEST_SNAPSHOT_VERSION = 2;

/**
 * A snapshot: `EngineState` tagged with its format and version. Secret fields:
 * `read.secret`, `write.secret`, `seed`, `resumptionMasterSecret`,
 * `handshake.clientVerifyData`, `handshake.clientApplicationSecret`,
 * `handshake.resumptionMasterSecret`; `pendingSend` holds application plaintext.
 */
export interface TlsSnapshot extends EngineState {
  readonly format: typeof SNAPSHOT_FORMAT;
  readonly version: number;
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

const isPositiveInt = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1;
const isCountValue = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isCountPair = (v: unknown): boolean => Array.isArray(v) && v.length === 2 && v.every(isCountValue);

function settingsOk(v: unknown): boolean {
  const x = v as ConnectionSettings | null;
  return (
    !!x &&
    typeof x === 'object' &&
    isPositiveInt(x.keyUpdateAfterRecords) &&
    isPositiveInt(x.maxRecordPlaintext) &&
    x.maxRecordPlaintext <= 1 << 14 &&
    isCountValue(x.ticketCount) &&
    isCountValue(x.ticketLifetimeSeconds) &&
    isCountPair(x.handshakeCaps) &&
    (x.statefulTickets === undefined || x.statefulTickets === true)
  );
}

/**
 * A snapshot of an older version readable as the current one, or null for a version
 * this engine does not read. Version 2 predates `settings`: a connection from before
 * the upgrade takes them from the restoring engine's configuration (`fill`), as the
 * engine that wrote it would have on restore. Only sound when both relays agree on
 * them, as they did for that engine; every snapshot written since carries its own.
 */
export function upgradeSnapshot(snapshot: TlsSnapshot, fill: ConnectionSettings): TlsSnapshot | null {
  switch (snapshot.version) {
    case SNAPSHOT_VERSION:
      return withHandshakeCaps(snapshot, fill);
    case 2:
      return withHandshakeCaps({ ...snapshot, version: SNAPSHOT_VERSION, settings: fill }, fill);
    default:
      return null;
  }
}

/**
 * The handshake caps and counts, added to version 3 without a new version: a snapshot
 * made before them has none, and takes the caps from `fill` (as version 2 takes every
 * setting) with nothing counted yet. Every snapshot written since carries its own.
 */
function withHandshakeCaps(snapshot: TlsSnapshot, fill: ConnectionSettings): TlsSnapshot {
  const s = snapshot as Partial<TlsSnapshot> & TlsSnapshot;
  const settings = s.settings as Partial<ConnectionSettings> | undefined;
  if (!settings || typeof settings !== 'object' || (settings.handshakeCaps !== undefined && s.handshakeSeen !== undefined)) return snapshot;
  return {
    ...snapshot,
    settings: { ...(settings as ConnectionSettings), handshakeCaps: settings.handshakeCaps ?? fill.handshakeCaps },
    handshakeSeen: s.handshakeSeen ?? [0, 0],
  };
}

function trafficOk(t: unknown): boolean {
  if (t === null) return true;
  const x = t as TrafficState;
  return typeof x === 'object' && isBytes(x.secret) && typeof x.seq === 'bigint' && isNum(x.generation) && isBool(x.application);
}

function handshakeOk(h: unknown): boolean {
  const x = h as Record<string, unknown> | null;
  if (!x || typeof x !== 'object') return false;
  switch (x.kind) {
    case 'expectClientHello':
    case 'established':
      return true;
    case 'closed':
      return isBool(x.error);
    case 'expectRetriedClientHello':
      return isNum(x.cipherSuite) && typeof x.group === 'string' && isBytes(x.transcript) && isBool(x.sentChangeCipherSpec) && (x.cookie === null || isBytes(x.cookie)) && (x.firstHello === undefined || isBytes(x.firstHello));
    case 'expectFinished':
      return isBytes(x.clientVerifyData) && isBytes(x.clientApplicationSecret) && isBytes(x.resumptionMasterSecret);
    default:
      return false;
  }
}

/**
 * Checks that a decoded snapshot has the shape of {@link EngineState}, so a
 * corrupt one is refused at restore rather than failing later inside receive().
 * Returns the name of the first bad field, or null.
 */
export function badSnapshotField(s: Record<string, unknown>): string | null {
  const n = s.negotiated as Negotiated | null;
  const c = s.counters as Counters | undefined;
  const checks: [string, boolean][] = [
    ['revision', isNum(s.revision)],
    ['settings', settingsOk(s.settings)],
    ['handshake', handshakeOk(s.handshake)],
    ['negotiated', n === null || (typeof n === 'object' && isNum(n.cipherSuite) && isBytes(n.clientRandom) && isNum(n.maxRecordPlaintext))],
    ['read', trafficOk(s.read) && (s.read === null || n !== null)],
    ['write', trafficOk(s.write) && (s.write === null || n !== null)],
    ['seed', s.seed === null || isBytes(s.seed)],
    ['resumptionMasterSecret', s.resumptionMasterSecret === null || isBytes(s.resumptionMasterSecret)],
    ['ticketsIssued', isNum(s.ticketsIssued)],
    ['handshakeTimeMs', isNum(s.handshakeTimeMs)],
    ['pendingRecord', isBytes(s.pendingRecord)],
    ['pendingHandshake', isBytes(s.pendingHandshake)],
    ['earlyDataBudget', isNum(s.earlyDataBudget)],
    ['pendingSend', Array.isArray(s.pendingSend) && s.pendingSend.every(isBytes)],
    ['readClosed', isBool(s.readClosed)],
    ['writeClosed', isBool(s.writeClosed)],
    ['awaitingPeerKeyUpdate', isBool(s.awaitingPeerKeyUpdate)],
    ['counters', !!c && typeof c === 'object' && isNum(c.bytesFromClient) && isNum(c.bytesToClient) && isNum(c.plaintextSent) && isNum(c.plaintextReceived)],
    ['handshakeSeen', isCountPair(s.handshakeSeen)],
  ];
  for (const [name, ok] of checks) if (!ok) return name;
  return null;
}

// ---- the record state: what moves with ordinary traffic ----

/**
 * The fixed layout of `TlsServerEngine.recordState()`: every part of the state that
 * ordinary traffic moves without changing `revision`. A delta commit is these
 * numbers; {@link applyRecordState} puts them back on the full snapshot of the same
 * revision. Sequence numbers are -1 while that direction has no key.
 */
export const RecordStateIndex = {
  /** The revision these values belong to (`applyRecordState` checks it). */
  revision: 0,
  readSeq: 1,
  writeSeq: 2,
  bytesFromClient: 3,
  bytesToClient: 4,
  plaintextSent: 5,
  plaintextReceived: 6,
  earlyDataBudget: 7,
  /** {@link RecordStateFlag} bits. */
  flags: 8,
} as const;

/** Entries of a record state (the length of the `Float64Array` it is written into). */
export const RECORD_STATE_LENGTH = 9;

/** Bits of `RecordStateIndex.flags`. */
export const RecordStateFlag = {
  readClosed: 1,
  writeClosed: 2,
  awaitingPeerKeyUpdate: 4,
} as const;

/** The record state of `s`, with the sequence numbers of its live sealer and opener. */
export function writeRecordState(s: EngineState, readSeq: number, writeSeq: number, into: Float64Array): void {
  if (into.length < RECORD_STATE_LENGTH) throw new RangeError(`a record state needs ${RECORD_STATE_LENGTH} entries`);
  const c = s.counters;
  into[RecordStateIndex.revision] = s.revision;
  into[RecordStateIndex.readSeq] = s.read ? readSeq : -1;
  into[RecordStateIndex.writeSeq] = s.write ? writeSeq : -1;
  into[RecordStateIndex.bytesFromClient] = c.bytesFromClient;
  into[RecordStateIndex.bytesToClient] = c.bytesToClient;
  into[RecordStateIndex.plaintextSent] = c.plaintextSent;
  into[RecordStateIndex.plaintextReceived] = c.plaintextReceived;
  into[RecordStateIndex.earlyDataBudget] = s.earlyDataBudget;
  into[RecordStateIndex.flags] =
    (s.readClosed ? RecordStateFlag.readClosed : 0) |
    (s.writeClosed ? RecordStateFlag.writeClosed : 0) |
    (s.awaitingPeerKeyUpdate ? RecordStateFlag.awaitingPeerKeyUpdate : 0);
}

const isCount = (v: number | undefined): v is number => v !== undefined && Number.isSafeInteger(v) && v >= 0;

/**
 * The snapshot `snapshot` with the record state `values` (from `recordState()` of
 * the same revision) applied: deep-equal to what `snapshot()` returned when the
 * values were written. Pure: a new object (new `read`, `write` and `counters`), the
 * input untouched; unchanged fields (byte strings) are shared with the input.
 * Throws a {@link SnapshotError} for values of another revision or out of shape.
 */
export function applyRecordState(snapshot: TlsSnapshot, values: Float64Array): TlsSnapshot {
  const I = RecordStateIndex;
  if (values.length < RECORD_STATE_LENGTH) throw new SnapshotError(`a record state has ${RECORD_STATE_LENGTH} entries, not ${values.length}`);
  if (values[I.revision] !== snapshot.revision) {
    throw new SnapshotError(`record state of revision ${values[I.revision]} does not apply to a snapshot of revision ${String(snapshot.revision)}`);
  }
  const seq = (t: TrafficState | null, v: number | undefined, name: string): TrafficState | null => {
    if (t === null) {
      if (v !== -1) throw new SnapshotError(`record state has a ${name} sequence number for a direction without a key`);
      return null;
    }
    if (!isCount(v)) throw new SnapshotError(`record state ${name} sequence number is malformed`);
    return { ...t, seq: BigInt(v) };
  };
  const read = seq(snapshot.read, values[I.readSeq], 'read');
  const write = seq(snapshot.write, values[I.writeSeq], 'write');
  const counts = [I.bytesFromClient, I.bytesToClient, I.plaintextSent, I.plaintextReceived, I.earlyDataBudget, I.flags] as const;
  for (const i of counts) if (!isCount(values[i])) throw new SnapshotError(`record state entry ${i} is malformed`);
  const flags = values[I.flags]!;
  return {
    ...snapshot,
    read,
    write,
    earlyDataBudget: values[I.earlyDataBudget]!,
    readClosed: (flags & RecordStateFlag.readClosed) !== 0,
    writeClosed: (flags & RecordStateFlag.writeClosed) !== 0,
    awaitingPeerKeyUpdate: (flags & RecordStateFlag.awaitingPeerKeyUpdate) !== 0,
    counters: {
      bytesFromClient: values[I.bytesFromClient]!,
      bytesToClient: values[I.bytesToClient]!,
      plaintextSent: values[I.plaintextSent]!,
      plaintextReceived: values[I.plaintextReceived]!,
    },
  };
}
