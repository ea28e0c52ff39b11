/**
 * A self-signed server certificate made in memory, for `baton cluster` when no
 * `--cert`/`--key` is given: ECDSA P-256 (RFC 5480) with SHA-256, CN localhost,
 * subjectAltName DNS:localhost and IP:127.0.0.1 (RFC 5280 section 4.2.1.6),
 * valid for one year. Built with @peculiar/x509 over WebCrypto; nothing is
 * written to disk.
 */
import { KeyObject, webcrypto } from 'node:crypto';
import { certificateFacts, type CertificateFacts } from '../cluster/certificate-facts.js';
import type * as X509 from '@peculiar/x509';
import { systemClock, type Clock } from '../util/clock.js';
import { systemRandom, type RandomSource } from '../util/random.js';
import { toHex } from '../util/bytes.js';

const VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A certificate and its key, as PEM, and its public facts. */
export interface SelfSignedCertificate extends CertificateFacts {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM PKCS#8 private key: secret; goes to the relays and nowhere else. */
  readonly key: string;
}

export interface SelfSignedOptions {
  readonly clock?: Clock;
  readonly random?: RandomSource;
}

let x509Module: Promise<typeof X509> | undefined;

/**
 * @peculiar/x509, loaded on first use: it and its polyfill take about a quarter of a
 * second to load, which no command pays unless it makes a certificate.
 */
function loadX509(): Promise<typeof X509> {
  // tsyringe, which @peculiar/x509 uses inside, needs the Reflect metadata polyfill
  // loaded before it.
  x509Module ??= import('reflect-metadata').then(() => import('@peculiar/x509'));
  return x509Module;
}

/** Makes a fresh key pair and a self-signed certificate for localhost. */
export async function makeSelfSigned(opts: SelfSignedOptions = {}): Promise<SelfSignedCertificate> {
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? systemRandom;
  const x509 = await loadX509();
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  // Extractable: the relays load the key from PKCS#8 PEM.
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  // RFC 5280 section 4.1.2.2: a positive serial of at most 20 octets; 16 random
  // bytes with the top bit clear so the DER INTEGER stays positive.
  const serial = random.bytes(16);
  serial[0] = serial[0]! & 0x7f;
  const now = clock.now();
  const generated = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: toHex(serial),
    name: 'CN=localhost',
    notBefore: new Date(now),
    notAfter: new Date(now + VALIDITY_MS),
    signingAlgorithm: ALGORITHM,
    keys: keys as unknown as X509.X509CertificateCreateSelfSignedParams['keys'],
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as Parameters<typeof x509.SubjectKeyIdentifierExtension.create>[0]),
    ],
  });
  const cert = generated.toString('pem');
  const key = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }).toString();
  return { cert, key, ...certificateFacts(cert) };
}
