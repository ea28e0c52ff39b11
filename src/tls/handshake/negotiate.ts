/**
 * Server-side choices for a ClientHello (RFC 8446 section 4.1.1): version,
 * cipher suite, key-exchange group and ALPN protocol. Pure functions; each
 * failure is a TlsError whose reason maps to the alert the RFC names.
 */
import { TlsError } from '../errors.js';
import { groupName } from '../crypto/key-exchange.js';
import type { Suite } from '../crypto/suites.js';
import type { ClientHello, KeyShareEntry } from '../wire/client-hello.js';
import { NamedGroup, SSL30, TLS13, type GroupName } from '../wire/constants.js';

/** Section 4.2.1: TLS 1.3 is chosen only through supported_versions; anything else is protocol_version. */
export function checkVersion(ch: ClientHello): void {
  // Appendix D.5: a legacy_version of SSL 3.0 or below MUST be refused with protocol_version,
  // whatever supported_versions says; a major other than 3 is no version of TLS at all.
  if (ch.legacyVersion >>> 8 !== 3) throw new TlsError('legacy_version_not_tls', 'legacy_version is not a version of TLS');
  if (ch.legacyVersion <= SSL30) throw new TlsError('legacy_version_too_old', 'legacy_version is SSL 3.0 or below');
  if (ch.supportedVersions === null || !ch.supportedVersions.includes(TLS13)) {
    throw new TlsError('tls13_not_offered', 'client does not offer TLS 1.3');
  }
  if (!ch.nullCompressionOnly) {
    throw new TlsError('legacy_compression_not_null', 'legacy_compression_methods is not the single null method');
  }
}

/** The first suite in server preference that the client offers. */
export function pickCipherSuite(preference: readonly Suite[], offered: readonly number[]): Suite {
  const s = preference.find((p) => offered.includes(p.id));
  if (!s) throw new TlsError('no_cipher_suite_in_common', 'no cipher suite in common');
  return s;
}

export type GroupChoice =
  | { readonly kind: 'share'; readonly group: GroupName; readonly peer: Uint8Array }
  | { readonly kind: 'retry'; readonly group: GroupName };

/**
 * Picks the key-exchange group: a group the client already sent a share for
 * (in server preference), else the preferred group of its supported_groups,
 * which costs a HelloRetryRequest (section 4.1.4).
 */
export function pickGroup(preference: readonly GroupName[], ch: ClientHello): GroupChoice {
  // Section 9.2: supported_groups and key_share come together.
  if (ch.keyShares === null || ch.supportedGroups === null) {
    throw new TlsError('key_share_or_supported_groups_missing', 'key_share and supported_groups are both required');
  }
  // A set: shares times groups would be quadratic in a hello of thousands of entries.
  const supported = new Set(ch.supportedGroups);
  for (const share of ch.keyShares) {
    if (!supported.has(share.group)) {
      throw new TlsError('key_share_group_not_offered', 'key share for a group not in supported_groups');
    }
  }
  for (const g of preference) {
    const share = ch.keyShares.find((s) => s.group === NamedGroup[g]);
    if (share) return { kind: 'share', group: g, peer: share.keyExchange };
  }
  for (const g of preference) {
    if (supported.has(NamedGroup[g])) return { kind: 'retry', group: g };
  }
  throw new TlsError('no_group_in_common', 'no key exchange group in common');
}

/** Section 4.1.4: the retried ClientHello MUST carry exactly one share, for the group we asked for. */
export function retriedShare(ch: ClientHello, group: GroupName): KeyShareEntry {
  const shares = ch.keyShares ?? [];
  if (shares.length !== 1 || shares[0]!.group !== NamedGroup[group]) {
    throw new TlsError('hrr_key_share_not_requested_group', 'retried ClientHello lacks the single requested key share');
  }
  return shares[0]!;
}

/** RFC 7301 section 3.2: server preference; no overlap is no_application_protocol. */
export function pickAlpn(preference: readonly string[], offered: readonly string[] | null): string | null {
  if (offered === null || preference.length === 0) return null;
  const p = preference.find((x) => offered.includes(x));
  if (p === undefined) throw new TlsError('no_application_protocol_in_common', 'no ALPN protocol in common');
  return p;
}

export function groupNameOf(id: number): GroupName {
  const g = groupName(id);
  if (!g) throw new TlsError('unknown_group', 'unknown group');
  return g;
}
