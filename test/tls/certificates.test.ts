import { X509Certificate, constants, createHash, generateKeyPairSync, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pickCertificate } from '../../src/tls/certificates.js';
import { loadCertifiedKey } from '../../src/tls/crypto/certified-key.js';
import { signCertificateVerify, signatureSchemesFor } from '../../src/tls/crypto/signature.js';
import { TlsConfigError, TlsError } from '../../src/tls/errors.js';
import type { CertifiedKey, KeyKind } from '../../src/tls/types.js';
import { SignatureScheme, type SignatureSchemeName } from '../../src/tls/wire/constants.js';

const dir = fileURLToPath(new URL('../fixtures/certs/', import.meta.url));
const pem = (f: string): string => readFileSync(dir + f, 'utf8');
const load = (name: string, names?: string[]): CertifiedKey =>
  loadCertifiedKey({ cert: pem(`${name}.pem`), key: pem(`${name}-key.pem`), ...(names ? { names } : {}) });

const ids = (...s: SignatureSchemeName[]): number[] => s.map((n) => SignatureScheme[n]);
const ALL = ids(
  'ecdsa_secp256r1_sha256',
  'ecdsa_secp384r1_sha384',
  'rsa_pss_rsae_sha256',
  'rsa_pss_rsae_sha384',
  'rsa_pss_rsae_sha512',
  'ed25519',
);

describe('loadCertifiedKey', () => {
  const cases: [string, KeyKind, string[]][] = [
    ['ecdsa-p256', 'ecdsa-p256', ['localhost', '*.example.test']],
    ['rsa', 'rsa', ['rsa.example.test', 'localhost']],
    ['ed25519', 'ed25519', ['ed.example.test']],
    ['ecdsa-p384', 'ecdsa-p384', ['p384.example.test']],
  ];
  for (const [file, kind, names] of cases) {
    it(`loads the ${file} fixture: key kind, SAN DNS names, DER leaf`, () => {
      const ck = load(file);
      expect(ck.keyKind).toBe(kind);
      expect(ck.names).toEqual(names);
      expect(ck.chain).toHaveLength(1);
      expect(ck.chain[0]).toBeInstanceOf(Uint8Array);
      const x = new X509Certificate(pem(`${file}.pem`));
      expect(Buffer.from(ck.chain[0]!).equals(x.raw)).toBe(true);
      expect(ck.privateKey.type).toBe('private');
    });
  }

  it('splits a chain into DER certificates, leaf first', () => {
    const ck = loadCertifiedKey({
      cert: `${pem('rsa.pem')}\n${pem('ca.pem')}`,
      key: pem('rsa-key.pem'),
    });
    expect(ck.chain).toHaveLength(2);
    expect(Buffer.from(ck.chain[0]!).equals(new X509Certificate(pem('rsa.pem')).raw)).toBe(true);
    expect(Buffer.from(ck.chain[1]!).equals(new X509Certificate(pem('ca.pem')).raw)).toBe(true);
  });

  it('falls back to the subject CN when the leaf has no subjectAltName', () => {
    // The CA certificate has no SAN; its CN is "Baton Test CA".
    const ck = loadCertifiedKey({ cert: pem('ca.pem'), key: pem('ca-key.pem') });
    expect(ck.names).toEqual(['baton test ca']);
  });

  it('uses the given names, lowercased and without a trailing dot', () => {
    const ck = load('ed25519', ['Api.Example.COM.', '*.Svc.Example.com']);
    expect(ck.names).toEqual(['api.example.com', '*.svc.example.com']);
  });

  it('rejects a key that does not belong to the leaf, without printing the key', () => {
    let err: unknown;
    try {
      loadCertifiedKey({ cert: pem('ecdsa-p256.pem'), key: pem('ecdsa-p384-key.pem') });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TlsConfigError);
    expect((err as TlsConfigError).code).toBe('TLS_ERR_CONFIG');
    expect((err as Error).message).toMatch(/does not match the leaf certificate/);
    expect((err as Error).message).not.toMatch(/PRIVATE KEY|MI/);
  });

  it('rejects a PEM without certificates', () => {
    expect(() => loadCertifiedKey({ cert: 'nothing here', key: pem('rsa-key.pem') })).toThrow(
      /no "BEGIN CERTIFICATE" block/,
    );
  });

  it('rejects a certificate block that is not X.509', () => {
    const bad = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    expect(() => loadCertifiedKey({ cert: bad, key: pem('rsa-key.pem') })).toThrow(TlsConfigError);
    expect(() => loadCertifiedKey({ cert: bad, key: pem('rsa-key.pem') })).toThrow(/certificate 0/);
  });

  it('rejects an unparsable key with a TlsConfigError', () => {
    expect(() => loadCertifiedKey({ cert: pem('rsa.pem'), key: 'not a key' })).toThrow(TlsConfigError);
    // A certificate where the key should be is not a private key either.
    expect(() => loadCertifiedKey({ cert: pem('rsa.pem'), key: pem('rsa.pem') })).toThrow(
      /private key cannot be parsed/,
    );
  });

  const unsupported: [string, () => string, RegExp][] = [
    [
      'ECDSA P-521',
      () => generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      /unsupported ECDSA curve secp521r1/,
    ],
    [
      'X25519 (not a signing key)',
      () => generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      /unsupported key type x25519/,
    ],
    [
      'Ed448',
      () => generateKeyPairSync('ed448').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      /unsupported key type ed448/,
    ],
    [
      'RSASSA-PSS',
      () => generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      /unsupported key type rsa-pss/,
    ],
    [
      'RSA 1024',
      () => generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      /RSA key of 1024 bits is too small/,
    ],
  ];
  for (const [what, key, message] of unsupported) {
    it(`rejects an unsupported key: ${what}`, () => {
      const k = key();
      expect(() => loadCertifiedKey({ cert: pem('rsa.pem'), key: k })).toThrow(TlsConfigError);
      expect(() => loadCertifiedKey({ cert: pem('rsa.pem'), key: k })).toThrow(message);
    });
  }
});

describe('signatureSchemesFor', () => {
  it('maps each key kind to its TLS 1.3 schemes (no PKCS#1 v1.5)', () => {
    expect(signatureSchemesFor('ecdsa-p256')).toEqual(['ecdsa_secp256r1_sha256']);
    expect(signatureSchemesFor('ecdsa-p384')).toEqual(['ecdsa_secp384r1_sha384']);
    expect(signatureSchemesFor('rsa')).toEqual(['rsa_pss_rsae_sha256', 'rsa_pss_rsae_sha384', 'rsa_pss_rsae_sha512']);
    expect(signatureSchemesFor('ed25519')).toEqual(['ed25519']);
  });
});

describe('pickCertificate', () => {
  const p256 = load('ecdsa-p256');
  const rsa = load('rsa');
  const ed = load('ed25519');
  const p384 = load('ecdsa-p384');
  const all = [p256, rsa, ed, p384];

  it('picks the exact name match', () => {
    expect(pickCertificate(all, 'rsa.example.test', ALL)).toEqual({ certificate: rsa, scheme: 'rsa_pss_rsae_sha256' });
    expect(pickCertificate(all, 'ed.example.test', ALL)).toEqual({ certificate: ed, scheme: 'ed25519' });
    expect(pickCertificate(all, 'p384.example.test', ALL)).toEqual({ certificate: p384, scheme: 'ecdsa_secp384r1_sha384' });
  });

  it('prefers an exact match over an earlier wildcard match', () => {
    // p256 holds *.example.test and comes first; rsa holds rsa.example.test exactly.
    expect(pickCertificate(all, 'rsa.example.test', ALL)?.certificate).toBe(rsa);
  });

  it('matches a wildcard for exactly one label', () => {
    expect(pickCertificate([rsa, p256], 'www.example.test', ALL)?.certificate).toBe(p256);
    // Two labels and the bare suffix fall back to the default (first) certificate.
    expect(pickCertificate([rsa, p256], 'a.b.example.test', ALL)?.certificate).toBe(rsa);
    expect(pickCertificate([rsa, p256], 'example.test', ALL)?.certificate).toBe(rsa);
  });

  it('ignores case and a trailing dot', () => {
    expect(pickCertificate(all, 'ED.Example.TEST.', ALL)?.certificate).toBe(ed);
    expect(pickCertificate([rsa, p256], 'WWW.EXAMPLE.test.', ALL)?.certificate).toBe(p256);
  });

  it('falls back to config order for an unknown or absent name', () => {
    expect(pickCertificate(all, 'unknown.invalid', ALL)?.certificate).toBe(p256);
    expect(pickCertificate(all, null, ALL)?.certificate).toBe(p256);
    expect(pickCertificate([ed, rsa], null, ALL)?.certificate).toBe(ed);
  });

  it('skips a name match that cannot sign with any offered scheme', () => {
    // localhost is on p256 (first) and rsa; a client offering only RSA-PSS gets rsa.
    expect(pickCertificate(all, 'localhost', ids('rsa_pss_rsae_sha384'))).toEqual({
      certificate: rsa,
      scheme: 'rsa_pss_rsae_sha384',
    });
    // ed.example.test is only on ed; with no Ed25519 offered, the default order applies.
    expect(pickCertificate(all, 'ed.example.test', ids('ecdsa_secp384r1_sha384'))?.certificate).toBe(p384);
  });

  it('chooses the scheme in client preference order', () => {
    const r = pickCertificate([rsa], null, ids('ed25519', 'rsa_pss_rsae_sha512', 'rsa_pss_rsae_sha256'));
    expect(r?.scheme).toBe('rsa_pss_rsae_sha512');
  });

  it('binds ECDSA schemes to the curve', () => {
    expect(pickCertificate([p256], null, ids('ecdsa_secp384r1_sha384'))).toBeNull();
    expect(pickCertificate([p384], null, ids('ecdsa_secp256r1_sha256'))).toBeNull();
  });

  it('returns null when nothing can sign with an offered scheme', () => {
    expect(pickCertificate(all, 'localhost', [0x0401 /* rsa_pkcs1_sha256 */, 0x0201])).toBeNull();
    expect(pickCertificate(all, 'localhost', [])).toBeNull();
    expect(pickCertificate([], 'localhost', ALL)).toBeNull();
  });
});

describe('signCertificateVerify', () => {
  // RFC 8446 section 4.4.3: 64 spaces, context, 0x00, transcript hash.
  const content = Buffer.concat([
    Buffer.alloc(64, 0x20),
    Buffer.from('TLS 1.3, server CertificateVerify'),
    Buffer.from([0]),
    createHash('sha256').update('transcript').digest(),
  ]);
  const hashOf = (s: SignatureSchemeName): string | null =>
    s === 'ed25519' ? null : s.endsWith('sha256') ? 'sha256' : s.endsWith('sha384') ? 'sha384' : 'sha512';

  for (const file of ['ecdsa-p256', 'ecdsa-p384', 'rsa', 'ed25519']) {
    const ck = load(file);
    for (const scheme of signatureSchemesFor(ck.keyKind)) {
      it(`signs ${scheme} verifiably with the ${file} leaf's public key`, () => {
        const sig = signCertificateVerify({ scheme, certificate: ck, data: content });
        expect(sig).toBeInstanceOf(Uint8Array);
        const pub = new X509Certificate(pem(`${file}.pem`)).publicKey;
        const h = hashOf(scheme);
        if (ck.keyKind === 'rsa') {
          expect(sig.length).toBe(256);
          // Salt length is exactly the hash length: verify with that fixed length.
          const saltLength = h === 'sha256' ? 32 : h === 'sha384' ? 48 : 64;
          expect(
            verify(h, content, { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, sig),
          ).toBe(true);
          // And it is not PKCS#1 v1.5.
          expect(verify(h, content, { key: pub, padding: constants.RSA_PKCS1_PADDING }, sig)).toBe(false);
        } else if (ck.keyKind === 'ed25519') {
          expect(sig.length).toBe(64);
          expect(verify(null, content, pub, sig)).toBe(true);
        } else {
          expect(sig[0]).toBe(0x30); // DER SEQUENCE
          expect(verify(h, content, { key: pub, dsaEncoding: 'der' }, sig)).toBe(true);
        }
      });
    }
  }

  it('refuses a scheme that does not fit the key (a caller bug: internal_error)', () => {
    const err = (() => {
      try {
        signCertificateVerify({ scheme: 'ecdsa_secp384r1_sha384', certificate: load('ecdsa-p256'), data: content });
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(TlsError);
    expect((err as TlsError).alert).toBe('internal_error');
  });
});
