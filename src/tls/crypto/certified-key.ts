/**
 * Loading a server certificate chain and its private key (RFC 8446 section 4.4.2):
 * X.509 parsing and key import through node:crypto, the key kind, and the names the
 * leaf answers for.
 *
 * Error messages name what is wrong with the configuration, never key material.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { TlsConfigError } from '../errors.js';
import type { CertifiedKey, KeyKind } from '../types.js';

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

export function normalizeName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

function oneLine(s: string): string {
  return s.replace(/\n/g, ', ');
}
