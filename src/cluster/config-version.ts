/**
 * Configuration versions: a number and a digest of the content, so two relays (or
 * two nodes) can tell whether they run the same settings without comparing keys.
 */
import { createHash } from 'node:crypto';
import type { ConfigVersion, TlsSettings } from '../relay/settings.js';

/** SHA-256 over the settings (bytes as hex): equal content, equal digest. */
function configDigest(tls: TlsSettings): string {
  const canonical = JSON.stringify(tls, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
  return createHash('sha256').update(canonical).digest('hex');
}

/** A version of `tls` numbered `version`. */
export function configVersion(version: number, tls: TlsSettings): ConfigVersion {
  return { version, digest: configDigest(tls), tls };
}

/** The first 12 hex digits of a configuration digest, as printed. */
export const shortDigest = (digest: string) => digest.slice(0, 12);
