/**
 * What every relay of a cluster is started with: the TLS material (PEM, so it
 * crosses threads as text; it holds the private key and ticket keys: secret)
 * and the replication batch settings.
 */
import type { CertifiedKey, CipherSuiteName, GroupName, TicketKeys, TlsServerConfig } from '../tls/index.js';

export interface RelayCertificate {
  /** PEM chain, leaf first. */
  readonly cert: string;
  /** PEM private key: secret. */
  readonly key: string;
  readonly names?: string[];
}

export interface RelaySettings {
  readonly certificates: readonly RelayCertificate[];
  /** Shared by every relay, so a ticket from one resumes on any other. Secret. */
  readonly ticketKeys: TicketKeys;
  readonly alpn?: readonly string[];
  readonly cipherSuites?: readonly CipherSuiteName[];
  readonly groups?: readonly GroupName[];
  /** Records under one key before the relay starts a KeyUpdate (engine default when absent). */
  readonly keyUpdateAfterRecords?: number;
  /**
   * Reproducible runs (tests, debugging): each connection's randomness is a keystream
   * seeded from `seed` and its id, and the clock stands still at `clockMs`. Never in
   * production: it makes server randoms and ephemeral keys predictable.
   */
  readonly reproducible?: { readonly seed: string; readonly clockMs: number };
  readonly replication: {
    /** Replicate after this many inputs... */
    readonly batchInputs: number;
    /** ...or this long after the first unreplicated one, whichever comes first. */
    readonly batchDelayMs: number;
  };
}

export const DEFAULT_REPLICATION = { batchInputs: 32, batchDelayMs: 5 } as const;

/** The engine configuration a relay runs with. */
export function relayTlsConfig(
  settings: RelaySettings,
  load: (c: RelayCertificate) => CertifiedKey,
): TlsServerConfig {
  return {
    certificates: settings.certificates.map(load),
    ticketKeys: settings.ticketKeys,
    ...(settings.alpn ? { alpn: settings.alpn } : {}),
    ...(settings.cipherSuites ? { cipherSuites: settings.cipherSuites } : {}),
    ...(settings.groups ? { groups: settings.groups } : {}),
    ...(settings.keyUpdateAfterRecords ? { keyUpdateAfterRecords: settings.keyUpdateAfterRecords } : {}),
  };
}
