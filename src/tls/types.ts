/**
 * The public face of the TLS 1.3 server engine: configuration, injected
 * dependencies, and what each call returns.
 */
import type { PrivateKey } from './crypto/private-key.js';
import type { Clock } from '../util/clock.js';
import type { RandomSource } from '../util/random.js';
import type { AlertName, TlsErrorCode, TlsLimit } from './errors.js';
import type { CipherSuiteName, GroupName, SignatureSchemeName } from './wire/constants.js';

export type { CipherSuiteName, GroupName, SignatureSchemeName };

/** The kind of a certificate's public key, which decides the signature schemes it can make. */
export type KeyKind = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa' | 'ed25519';

/**
 * A certificate chain with its private key and the server names it answers for.
 * Made by `loadCertifiedKey()` from PEM; holds a secret (the private key).
 */
export interface CertifiedKey {
  /** DER certificates, leaf first. */
  readonly chain: readonly Uint8Array[];
  readonly privateKey: PrivateKey;
  readonly keyKind: KeyKind;
  /** Exact names and `*.suffix` wildcards, lowercase, from the leaf's SANs unless given. */
  readonly names: readonly string[];
}

/** One ticket-sealing key: a public 16-byte id and a 32-byte secret. */
export interface TicketKey {
  readonly id: Uint8Array;
  readonly secret: Uint8Array;
}

/** Ticket keys: `current` seals new tickets; `current` and `previous` open them. */
export interface TicketKeys {
  readonly current: TicketKey;
  readonly previous?: readonly TicketKey[];
}

/** Static server configuration. Holds secrets (private keys, ticket keys); never logged. */
export interface TlsServerConfig {
  /** Candidate certificates; the first is the default for unknown or absent SNI. */
  readonly certificates: readonly CertifiedKey[];
  /** Server preference order. Default: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305. */
  readonly cipherSuites?: readonly CipherSuiteName[];
  /** Server preference order. Default: x25519, secp256r1, secp384r1. */
  readonly groups?: readonly GroupName[];
  /** Server preference order of ALPN protocols; empty or absent: ALPN is not negotiated. */
  readonly alpn?: readonly string[];
  /** Absent: no tickets are issued and no PSK is accepted. */
  readonly ticketKeys?: TicketKeys;
  /** NewSessionTickets sent after the handshake (default 2). */
  readonly ticketCount?: number;
  /** Ticket lifetime in seconds (default {@link DEFAULT_TICKET_LIFETIME_SECONDS}; RFC 8446 caps it at 604800). */
  readonly ticketLifetimeSeconds?: number;
  /**
   * 'stateless' (default): a ticket carries the sealed session state. 'stateful': a
   * ticket is an opaque id; the sealed state leaves as a `sessionIssued` event for
   * the caller to store, and comes back through `offerSession` before the ClientHello
   * that names it (single-use sessions). Stateless tickets are accepted either way.
   */
  readonly ticketMode?: TicketMode;
  /** Emit NSS key-log lines as `keyLog` events (debugging only: they are secrets). */
  readonly keyLog?: boolean;
  /**
   * Records protected under one key before a KeyUpdate is started (RFC 8446 section 5.5).
   * Default: 2^24 for every suite, below the AES-GCM limit of 2^24.5 full-size records.
   */
  readonly keyUpdateAfterRecords?: number;
  /**
   * NamedGroup code points listed in EncryptedExtensions' supported_groups, a hint
   * for the client's later connections (RFC 8446 section 4.2.7). Default: none.
   */
  readonly advertisedGroups?: readonly number[];
  /** Largest plaintext per outgoing record (default and maximum 2^14). */
  readonly maxRecordPlaintext?: number;
  /**
   * Dummy change_cipher_spec records (RFC 8446 appendix D.4) taken during a handshake;
   * the next one is unexpected_message. Default {@link DEFAULT_HANDSHAKE_NOISE_CAP}.
   */
  readonly maxHandshakeChangeCipherSpecs?: number;
  /**
   * Warning alerts (user_canceled, the only alert section 6 lets a connection go on
   * after) taken during a handshake; the next one is unexpected_message. Default
   * {@link DEFAULT_HANDSHAKE_NOISE_CAP}.
   */
  readonly maxHandshakeWarningAlerts?: number;
}

/** How session tickets carry their state (see {@link TlsServerConfig.ticketMode}). */
export type TicketMode = 'stateless' | 'stateful';

/** The ticket lifetime when the configuration names none. */
export const DEFAULT_TICKET_LIFETIME_SECONDS = 7200;

/** The default of both handshake caps: far above what any client sends (one CCS; no alert). */
export const DEFAULT_HANDSHAKE_NOISE_CAP = 32;

export type { TlsLimit } from './errors.js';

/** A signature request: CertificateVerify content signed with the chosen certificate's key. */
export interface SignRequest {
  readonly scheme: SignatureSchemeName;
  readonly certificate: CertifiedKey;
  readonly data: Uint8Array;
}

/** Injected dependencies: everything nondeterministic comes from here. */
export interface TlsDeps {
  readonly random: RandomSource;
  readonly clock: Clock;
  /** Signs CertificateVerify; default: `node:crypto` sign with the scheme's parameters. */
  readonly sign?: (req: SignRequest) => Uint8Array;
  /**
   * An opaque cookie for HelloRetryRequest (RFC 8446 section 4.2.2), which the
   * client must echo; default: none (the retry state is kept, and replicated).
   */
  readonly helloRetryCookie?: () => Uint8Array;
}

/** What the engine reports besides bytes. */
export type TlsEvent =
  | {
      readonly type: 'handshakeDone';
      readonly cipherSuite: CipherSuiteName;
      /** Absent for a PSK resumption without key exchange (never: we require psk_dhe_ke). */
      readonly group: GroupName;
      readonly alpn: string | null;
      readonly serverName: string | null;
      readonly resumed: boolean;
      readonly helloRetry: boolean;
    }
  | { readonly type: 'keyLog'; readonly line: string }
  /** `answer`: our write-key update answers the client's update_requested (section 4.6.3). */
  | { readonly type: 'keyUpdated'; readonly direction: 'read' | 'write'; readonly answer?: true }
  /** The client sent close_notify: no more plaintext will arrive; we may still send. */
  | { readonly type: 'peerClosed' }
  | { readonly type: 'alertReceived'; readonly alert: string }
  /**
   * We sent a fatal alert: `code` names why (`TLS_ERR_<REASON>`, see FAILURE_ALERTS in
   * errors.ts), `reason` is the readable message (`<alert>: <detail>`, never a secret).
   */
  | { readonly type: 'alertSent'; readonly alert: AlertName; readonly code: TlsErrorCode; readonly reason: string }
  /** A cap was exceeded (just before the alertSent it causes). */
  | { readonly type: 'limitExceeded'; readonly limit: TlsLimit }
  /**
   * A stateful ticket was issued: store `entry` under `id` for one resumption, for the
   * ticket's lifetime. `entry` is sealed under the ticket key with `id` bound to it
   * (never the state in clear); `id` is the ticket the client holds.
   */
  | { readonly type: 'sessionIssued'; readonly id: Uint8Array; readonly entry: Uint8Array }
  /** The connection is over: after a fatal alert either way, or close_notify both ways. */
  | { readonly type: 'closed'; readonly error: boolean };

/**
 * Where the engine writes what one call produces, in order, into memory of the
 * caller's (the relay's shared ring): no allocation per record.
 *
 * Per piece the engine calls `reserve(n)`, writes into the view, then commits a
 * prefix with `toClient` or `toApplication`, or commits nothing (a record that did
 * not authenticate, or one that is not application data: the engine copies that out
 * before parsing it). It never touches a view after the next call on the sink or
 * after the call into the engine returns, and keeps no reference to one. Inside
 * `toClient(n)` / `toApplication(n)`, `engine.clientOffset` / `engine.applicationOffset`
 * is the stream offset of the piece's first byte. A sink must not throw.
 */
export interface TlsSink {
  /** A writable view of at least `n` bytes for the next piece; valid until the next call on this sink. */
  reserve(n: number): Uint8Array;
  /** The first `n` bytes of the view last reserved are bytes for the client (a record, or part of one). */
  toClient(n: number): void;
  /** The first `n` bytes of the view last reserved are application plaintext (the content of a record). */
  toApplication(n: number): void;
  /** An event, in order with the pieces. */
  event(e: TlsEvent): void;
}

/** The result of one call into the engine (the collecting form of {@link TlsSink}). */
export interface TlsOutput {
  /**
   * Bytes for the client, in order; write them all, as they are. Each entry is one
   * whole record today, but entries are not promised to mark record boundaries.
   */
  readonly toClient: Uint8Array[];
  /** Application data from the client, in order. */
  readonly plaintext: Uint8Array[];
  readonly events: TlsEvent[];
}

/** Running byte counts, part of the snapshot; the relay uses them to skip replayed output. */
export interface TlsCounters {
  /** Ciphertext bytes taken from the client (including bytes still buffered). */
  readonly bytesFromClient: number;
  /** Record bytes produced for the client. */
  readonly bytesToClient: number;
  /** Application bytes accepted by `send()`. */
  readonly plaintextSent: number;
  /** Application bytes delivered from the client. */
  readonly plaintextReceived: number;
}
