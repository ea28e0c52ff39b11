/**
 * Server certificates: loading a PEM chain and key (RFC 8446 section 4.4.2),
 * choosing a certificate and signature scheme for a ClientHello (sections 4.2.3,
 * 4.4.2.2; RFC 6066 section 3), and the default CertificateVerify signer
 * (section 4.4.3).
 *
 * Error messages name what is wrong with the configuration, never key material.
 */
import { X509Certificate, constants, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { TlsConfigError, TlsError } from './errors.js';
import type { CertifiedKey, KeyKind, SignRequest } from './types.js';
import { SignatureScheme, type SignatureSchemeName } from './wire/constants.js';

/** Smallest RSA modulus we accept, in bits (what OpenSSL security level 2 requires). */
const MIN_RSA_BITS = 2048;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Loads a certificate chain and its private key (RFC 8446 section 4.4.2: the
 * sender's certificate MUST come first in the list).
 *
 * `cert` is a PEM chain, leaf first; `key` a PEM private key (PKCS#8, SEC1 or
 * PKCS#1, unencrypted). `names` defaults to the leaf's subjectAltName DNS entries,
 * or its subject CN when it has none; every name is lowercased and loses a
 * trailing dot.
 *
 * @throws TlsConfigError when the PEM holds no certificate, a certificate or the
 *   key cannot be parsed, the key kind is unsupported, or the key does not belong
 *   to the leaf.
 */
export function loadCertifiedKey(opts: { cert: string; key: string; names?: string[] }): CertifiedKey {
  const blocks = opts.cert.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    throw new TlsConfigError('certificate PEM holds no "BEGIN CERTIFICATE" block');
  }
  const certs = blocks.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (cause) {
      throw new TlsConfigError(`certificate ${i} of the chain cannot be parsed as X.509`, { cause });
    }
  });
  const leaf = certs[0]!;

  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(opts.key);
  } catch (cause) {
    // The cause is Node's decoder error; it names the failing decoder, not key bytes.
    throw new TlsConfigError(
      'private key cannot be parsed (expected an unencrypted PEM private key: PKCS#8, SEC1 or PKCS#1)',
      { cause },
    );
  }
  const keyKind = keyKindOf(privateKey);
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsConfigError(
      `private key does not match the leaf certificate (subject "${oneLine(leaf.subject)}")`,
    );
  }

  const names = (opts.names ?? namesOf(leaf)).map(normalizeName).filter((n) => n.length > 0);
  return {
    chain: certs.map((c) => new Uint8Array(c.raw)),
    privateKey,
    keyKind,
    names,
  };
}

/** The kind of a private key, or TlsConfigError for a kind TLS 1.3 signing here cannot use. */
function keyKindOf(key: KeyObject): KeyKind {
  const type = key.asymmetricKeyType;
  switch (type) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1' || curve === 'P-256' || curve === 'secp256r1') return 'ecdsa-p256';
      if (curve === 'secp384r1' || curve === 'P-384') return 'ecdsa-p384';
      throw new TlsConfigError(
        `unsupported ECDSA curve ${curve ?? '(unknown)'}: use P-256 or P-384`,
      );
    }
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) {
        throw new TlsConfigError(`RSA key of ${bits} bits is too small: use at least ${MIN_RSA_BITS}`);
      }
      return 'rsa';
    }
    case 'ed25519':
      return 'ed25519';
    case 'rsa-pss':
      // RFC 8446 section 4.2.3: rsa_pss_pss_* schemes, which this server does not offer.
      throw new TlsConfigError(
        'unsupported key type rsa-pss (RSASSA-PSS keys): use an rsaEncryption RSA key, ECDSA P-256/P-384 or Ed25519',
      );
    default:
      throw new TlsConfigError(
        `unsupported key type ${type ?? '(unknown)'}: use ECDSA P-256/P-384, RSA or Ed25519`,
      );
  }
}

/**
 * The DNS names a leaf answers for: its subjectAltName DNS entries (RFC 6125
 * section 6.4.4: a present SAN takes precedence over the CN), else its subject CN.
 */
function namesOf(leaf: X509Certificate): string[] {
  const san = leaf.subjectAltName;
  if (san !== undefined && san.length > 0) {
    const dns: string[] = [];
    // Node prints "DNS:a, DNS:b, IP Address:1.2.3.4"; a value with special
    // characters is printed as a JSON string literal.
    const entry = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
    for (const m of san.matchAll(entry)) {
      if (m[1] !== 'DNS') continue;
      const raw = m[2]!;
      dns.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
    }
    if (dns.length > 0) return dns;
  }
  for (const line of leaf.subject.split('\n')) {
    if (line.startsWith('CN=')) {
      const raw = line.slice(3);
      return [raw.startsWith('"') ? (JSON.parse(raw) as string) : raw];
    }
  }
  return [];
}

function normalizeName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

function oneLine(s: string): string {
  return s.replace(/\n/g, ', ');
}

/**
 * The signature schemes a key kind can make for CertificateVerify, in server
 * preference order (RFC 8446 section 4.2.3: ECDSA schemes bind the curve, and
 * RSASSA-PKCS1-v1_5 MUST NOT be used for CertificateVerify in TLS 1.3).
 */
export function signatureSchemesFor(keyKind: KeyKind): SignatureSchemeName[] {
  switch (keyKind) {
    case 'ecdsa-p256':
      return ['ecdsa_secp256r1_sha256'];
    case 'ecdsa-p384':
      return ['ecdsa_secp384r1_sha384'];
    case 'rsa':
      return ['rsa_pss_rsae_sha256', 'rsa_pss_rsae_sha384', 'rsa_pss_rsae_sha512'];
    case 'ed25519':
      return ['ed25519'];
    default:
      return assertNever(keyKind);
  }
}

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

const HASH_OF: Record<SignatureSchemeName, { hash: string; bytes: number } | null> = {
  ecdsa_secp256r1_sha256: { hash: 'sha256', bytes: 32 },
  ecdsa_secp384r1_sha384: { hash: 'sha384', bytes: 48 },
  ecdsa_secp521r1_sha512: { hash: 'sha512', bytes: 64 },
  rsa_pss_rsae_sha256: { hash: 'sha256', bytes: 32 },
  rsa_pss_rsae_sha384: { hash: 'sha384', bytes: 48 },
  rsa_pss_rsae_sha512: { hash: 'sha512', bytes: 64 },
  ed25519: null,
};

/**
 * The default CertificateVerify signer (RFC 8446 section 4.4.3): signs
 * `req.data` (the full content: 64 spaces, context string, 0x00, transcript
 * hash) with the certificate's key. ECDSA uses the scheme's hash and a DER
 * signature; RSA uses RSASSA-PSS with MGF1 over the same hash and a salt as
 * long as the hash (RFC 8446 section 4.2.3); Ed25519 signs the data directly.
 *
 * @throws TlsError(internal_error) when the scheme does not fit the key kind:
 *   the caller picked it wrongly, a bug of ours.
 */
export function signCertificateVerify(req: SignRequest): Uint8Array {
  const { scheme, certificate, data } = req;
  if (!signatureSchemesFor(certificate.keyKind).includes(scheme)) {
    throw new TlsError('internal_error', `scheme ${scheme} cannot be made with a ${certificate.keyKind} key`);
  }
  const key = certificate.privateKey;
  const h = HASH_OF[scheme];
  let sig: Buffer;
  if (h === null) {
    sig = sign(null, data, key);
  } else if (certificate.keyKind === 'rsa') {
    sig = sign(h.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: h.bytes });
  } else {
    sig = sign(h.hash, data, { key, dsaEncoding: 'der' });
  }
  return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength);
}

function assertNever(x: never): never {
  throw new TlsError('internal_error', `unexpected value ${String(x)}`);
}
