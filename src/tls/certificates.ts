/**
 * Choosing a server certificate and signature scheme for a ClientHello (RFC 8446
 * sections 4.2.3, 4.4.2.2; RFC 6066 section 3). Loading and signing are in
 * crypto/certified-key.ts and crypto/signature.ts, the only places that touch keys.
 */
import { normalizeName } from './crypto/certified-key.js';
import { signatureSchemesFor } from './crypto/signature.js';
import type { CertifiedKey, KeyKind } from './types.js';
import { SignatureScheme, type SignatureSchemeName } from './wire/constants.js';

/**
 * Chooses the certificate and CertificateVerify scheme for a ClientHello
 * (RFC 8446 sections 4.2.3 and 4.4.2.2; RFC 6066 section 3 for server_name).
 *
 * Candidates, each group in config order: certificates with an exact name
 * match, then those with a wildcard match (`*.example.com` covers exactly one
 * further label), then every certificate (the first is the default for an
 * unknown or absent name). Names compare case-insensitively with a trailing dot
 * ignored. The first candidate that can sign with a scheme the client offers
 * wins; its scheme is chosen in the **client's** preference order (the order of
 * `clientSchemes`, its signature_algorithms list).
 *
 * @returns null when no certificate can sign with any offered scheme; the
 *   engine then answers handshake_failure.
 */
export function pickCertificate(
  certs: readonly CertifiedKey[],
  serverName: string | null,
  clientSchemes: readonly number[],
): { certificate: CertifiedKey; scheme: SignatureSchemeName } | null {
  const candidates: CertifiedKey[] = [];
  if (serverName !== null) {
    const name = normalizeName(serverName);
    for (const c of certs) if (c.names.includes(name)) candidates.push(c);
    for (const c of certs) {
      if (!candidates.includes(c) && c.names.some((n) => wildcardMatches(n, name))) candidates.push(c);
    }
  }
  for (const c of certs) if (!candidates.includes(c)) candidates.push(c);

  for (const certificate of candidates) {
    const scheme = schemeFor(certificate.keyKind, clientSchemes);
    if (scheme !== null) return { certificate, scheme };
  }
  return null;
}

/** The client's most preferred scheme that a key of this kind can make, or null. */
function schemeFor(keyKind: KeyKind, clientSchemes: readonly number[]): SignatureSchemeName | null {
  const ours = signatureSchemesFor(keyKind);
  for (const id of clientSchemes) {
    const hit = ours.find((s) => SignatureScheme[s] === id);
    if (hit !== undefined) return hit;
  }
  return null;
}

/** RFC 6125 section 6.4.3: `*.example.com` matches `a.example.com`, never `example.com` or `a.b.example.com`. */
function wildcardMatches(pattern: string, name: string): boolean {
  if (!pattern.startsWith('*.')) return false;
  const suffix = pattern.slice(1); // ".example.com"
  if (suffix.length < 2 || !name.endsWith(suffix)) return false;
  const label = name.slice(0, name.length - suffix.length);
  return label.length > 0 && !label.includes('.');
}
