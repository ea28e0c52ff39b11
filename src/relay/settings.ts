/**
 * What every relay of a cluster is started with: the TLS material (PEM, so it
 * crosses threads as text; it holds the private key and ticket keys: secret)
 * and how reproducible its runs are, and how a relay turns it into its engine's
 * configuration. Only the shapes the relay reads live here; making, numbering and
 * rotating versions of them is the cluster's job (src/cluster/config-version.ts,
 * ticket-keys.ts, rollout.ts).
 */
import type { CertifiedKey, CipherSuiteName, GroupName, TicketKeys, TicketMode, TlsServerConfig } from '../tls/index.js';

export interface RelayCertificate {
  /** PEM chain, leaf first. */
  readonly cert: string;
  /** PEM private key: secret. */
  readonly key: string;
  readonly names?: string[];
}

/**
 * The part of a relay's settings that a configuration version changes at run time
 * (staged, then activated on every relay). Secret: private keys and ticket keys.
 */
export interface TlsSettings {
  readonly certificates: readonly RelayCertificate[];
  /** Shared by every relay, so a ticket from one resumes on any other. Secret. */
  readonly ticketKeys: TicketKeys;
  /**
   * 'stateful': tickets are opaque ids, their state sealed in the cluster's store and
   * taken once (gateway/session-lookup.ts). Absent: 'stateless'.
   */
  readonly ticketMode?: TicketMode;
  readonly alpn?: readonly string[];
  readonly cipherSuites?: readonly CipherSuiteName[];
  readonly groups?: readonly GroupName[];
  /** Records under one key before the relay starts a KeyUpdate (engine default when absent). */
  readonly keyUpdateAfterRecords?: number;
  /** Dummy change_cipher_spec records and warning alerts taken during a handshake (engine default 32 each when absent). */
  readonly maxHandshakeChangeCipherSpecs?: number;
  readonly maxHandshakeWarningAlerts?: number;
}

/** A numbered configuration version with the digest that identifies its content. */
export interface ConfigVersion {
  readonly version: number;
  readonly digest: string;
  readonly tls: TlsSettings;
}

export interface RelaySettings {
  /** The configuration the relay starts on (the cluster re-sends the active one after a restart). */
  readonly config: ConfigVersion;
  /**
   * Reproducible runs (tests, debugging): each connection's randomness is a keystream
   * seeded from `seed` and its id, and the clock stands still at `clockMs`. Never in
   * production: it makes server randoms and ephemeral keys predictable.
   */
  readonly reproducible?: { readonly seed: string; readonly clockMs: number };
}

/** The engine configuration a relay runs with. */
export function relayTlsConfig(settings: TlsSettings, load: (c: RelayCertificate) => CertifiedKey): TlsServerConfig {
  return {
    certificates: settings.certificates.map(load),
    ticketKeys: settings.ticketKeys,
    ...(settings.ticketMode === 'stateful' ? { ticketMode: settings.ticketMode } : {}),
    ...(settings.alpn ? { alpn: settings.alpn } : {}),
    ...(settings.cipherSuites ? { cipherSuites: settings.cipherSuites } : {}),
    ...(settings.groups ? { groups: settings.groups } : {}),
    ...(settings.keyUpdateAfterRecords ? { keyUpdateAfterRecords: settings.keyUpdateAfterRecords } : {}),
    ...(settings.maxHandshakeChangeCipherSpecs !== undefined ? { maxHandshakeChangeCipherSpecs: settings.maxHandshakeChangeCipherSpecs } : {}),
    ...(settings.maxHandshakeWarningAlerts !== undefined ? { maxHandshakeWarningAlerts: settings.maxHandshakeWarningAlerts } : {}),
  };
}
