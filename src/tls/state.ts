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
