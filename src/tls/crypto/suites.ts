/**
 * The TLS 1.3 cipher suites we implement (RFC 8446 appendix B.4), as a plain table.
 */
import { CipherSuite, type CipherSuiteName } from '../wire/constants.js';

export interface Suite {
  readonly name: CipherSuiteName;
  readonly id: number;
  /** `node:crypto` AEAD name. */
  readonly aead: 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';
  /** `node:crypto` hash name for HKDF and the transcript. */
  readonly hash: 'sha256' | 'sha384';
  readonly hashLen: number;
  readonly keyLen: number;
  readonly ivLen: 12;
  readonly tagLen: 16;
}

export const SUITES: readonly Suite[] = [
  { name: 'TLS_AES_128_GCM_SHA256', id: CipherSuite.TLS_AES_128_GCM_SHA256, aead: 'aes-128-gcm', hash: 'sha256', hashLen: 32, keyLen: 16, ivLen: 12, tagLen: 16 },
  { name: 'TLS_AES_256_GCM_SHA384', id: CipherSuite.TLS_AES_256_GCM_SHA384, aead: 'aes-256-gcm', hash: 'sha384', hashLen: 48, keyLen: 32, ivLen: 12, tagLen: 16 },
  { name: 'TLS_CHACHA20_POLY1305_SHA256', id: CipherSuite.TLS_CHACHA20_POLY1305_SHA256, aead: 'chacha20-poly1305', hash: 'sha256', hashLen: 32, keyLen: 32, ivLen: 12, tagLen: 16 },
];

export function suiteById(id: number): Suite | undefined {
  return SUITES.find((s) => s.id === id);
}

export function suiteByName(name: CipherSuiteName): Suite {
  const s = SUITES.find((x) => x.name === name);
  if (!s) throw new TypeError(`unknown cipher suite ${name}`);
  return s;
}
