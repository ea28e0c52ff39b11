/**
 * Shared pieces of the interop suites: the fixture certificates and the
 * key-log comparison (NSS key log format, as written by OpenSSL and by us).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadCertifiedKey } from '../../src/tls/crypto/certified-key.js';
import type { CertifiedKey } from '../../src/tls/types.js';

/** Absolute path of the fixture directory, with a trailing slash. */
export const certDir = fileURLToPath(new URL('../fixtures/certs/', import.meta.url));

export function fixture(file: string): string {
  return readFileSync(certDir + file, 'utf8');
}

/** The fixture CA certificate (PEM), the trust anchor for every client. */
export const caPem = fixture('ca.pem');

/** The four fixture leaves; the P-384 one is loaded with its CA appended, to send a chain. */
export function fixtureCertificates(): {
  p256: CertifiedKey;
  rsa: CertifiedKey;
  ed25519: CertifiedKey;
  p384: CertifiedKey;
} {
  return {
    p256: loadCertifiedKey({ cert: fixture('ecdsa-p256.pem'), key: fixture('ecdsa-p256-key.pem') }),
    rsa: loadCertifiedKey({ cert: fixture('rsa.pem'), key: fixture('rsa-key.pem') }),
    ed25519: loadCertifiedKey({ cert: fixture('ed25519.pem'), key: fixture('ed25519-key.pem') }),
    p384: loadCertifiedKey({
      cert: `${fixture('ecdsa-p384.pem')}\n${caPem}`,
      key: fixture('ecdsa-p384-key.pem'),
    }),
  };
}

/** The labels both sides must log for a TLS 1.3 handshake (NSS key log format). */
export const HANDSHAKE_LABELS = [
  'CLIENT_HANDSHAKE_TRAFFIC_SECRET',
  'SERVER_HANDSHAKE_TRAFFIC_SECRET',
  'CLIENT_TRAFFIC_SECRET_0',
  'SERVER_TRAFFIC_SECRET_0',
] as const;

function normalize(lines: readonly string[]): string[] {
  return lines
    .map((l) => l.trim().toLowerCase())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
}

/**
 * Compares key logs as sets over the labels that matter: the four handshake
 * labels plus any other label the engine emitted (e.g. EXPORTER_SECRET), so
 * lines only OpenSSL writes (EXPORTER_SECRET when we don't, its *_TRAFFIC_SECRET_N
 * after a KeyUpdate) are ignored. Hex compares case-insensitively.
 */
export function keyLogsForComparison(
  clientLines: readonly string[],
  engineLines: readonly string[],
): { client: string[]; engine: string[]; engineLabels: string[] } {
  const engine = normalize(engineLines);
  const labels = new Set<string>(HANDSHAKE_LABELS.map((l) => l.toLowerCase()));
  for (const l of engine) labels.add(l.split(' ')[0]!);
  const client = normalize(clientLines).filter((l) => labels.has(l.split(' ')[0]!));
  return {
    client: [...new Set(client)].sort(),
    engine: [...new Set(engine)].sort(),
    engineLabels: [...new Set(engine.map((l) => l.split(' ')[0]!.toUpperCase()))].sort(),
  };
}
