/**
 * The engine's whole state as plain data: what `snapshot()` exports and
 * `restore()` continues from. Fields marked "secret" must only ever travel on
 * the replication channel: never to logs, errors, metrics or files.
 */
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
    }
  | {
      readonly kind: 'expectFinished';
      /** ClientHello .. server Finished. */
      readonly transcript: Uint8Array;
      /** Secret. */
      readonly clientHandshakeSecret: Uint8Array;
      /** Secret. */
      readonly masterSecret: Uint8Array;
      /** Secret. */
      readonly clientApplicationSecret: Uint8Array;
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

export interface Counters {
  bytesFromClient: number;
  bytesToClient: number;
  plaintextSent: number;
  plaintextReceived: number;
}

export interface EngineState {
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
}

export const SNAPSHOT_FORMAT = 'baton.tls13.server';
export const SNAPSHOT_VERSION = 1;

/**
 * A snapshot: `EngineState` tagged with its format and version. Secret fields:
 * `read.secret`, `write.secret`, `seed`, `resumptionMasterSecret`,
 * `handshake.clientHandshakeSecret`, `handshake.masterSecret`,
 * `handshake.clientApplicationSecret`; `pendingSend` holds application plaintext.
 */
export interface TlsSnapshot extends EngineState {
  readonly format: typeof SNAPSHOT_FORMAT;
  readonly version: number;
}

const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

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
      return isNum(x.cipherSuite) && typeof x.group === 'string' && isBytes(x.transcript) && isBool(x.sentChangeCipherSpec) && (x.cookie === null || isBytes(x.cookie));
    case 'expectFinished':
      return isBytes(x.transcript) && isBytes(x.clientHandshakeSecret) && isBytes(x.masterSecret) && isBytes(x.clientApplicationSecret);
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
  ];
  for (const [name, ok] of checks) if (!ok) return name;
  return null;
}
