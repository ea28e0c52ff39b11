/**
 * HKDF (RFC 5869) and the TLS 1.3 labelled expansions (RFC 8446 section 7.1).
 */
import { createHash, createHmac } from 'node:crypto';
import { Writer } from '../../util/writer.js';

export type HashName = 'sha256' | 'sha384';

export function hmac(hash: HashName, key: Uint8Array, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac(hash, key).update(data).digest());
}

export function hashOf(hash: HashName, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash(hash).update(data).digest());
}

/** HKDF-Extract(salt, IKM); a zero-length salt means HashLen zero bytes. */
export function hkdfExtract(hash: HashName, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  const len = hash === 'sha256' ? 32 : 48;
  return hmac(hash, salt.length ? salt : new Uint8Array(len), ikm);
}

/** HKDF-Expand(PRK, info, L). */
export function hkdfExpand(hash: HashName, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let prev = new Uint8Array(0);
  let filled = 0;
  for (let i = 1; filled < length; i++) {
    const h = createHmac(hash, prk);
    h.update(prev);
    h.update(info);
    h.update(Uint8Array.of(i));
    prev = new Uint8Array(h.digest());
    const take = Math.min(prev.length, length - filled);
    out.set(prev.subarray(0, take), filled);
    filled += take;
  }
  return out;
}

const LABEL_PREFIX = Buffer.from('tls13 ', 'latin1');

/** The HkdfLabel structure of RFC 8446 section 7.1. */
export function hkdfLabel(label: string, context: Uint8Array, length: number): Uint8Array {
  return new Writer(64)
    .u16(length)
    .vec(1, (w) => w.bytes(LABEL_PREFIX).bytes(Buffer.from(label, 'latin1')))
    .vecBytes(1, context)
    .finish();
}

/** HKDF-Expand-Label(Secret, Label, Context, Length), RFC 8446 section 7.1. */
export function expandLabel(
  hash: HashName,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  return hkdfExpand(hash, secret, hkdfLabel(label, context, length), length);
}

/** Derive-Secret(Secret, Label, Messages) given Transcript-Hash(Messages), RFC 8446 section 7.1. */
export function deriveSecret(hash: HashName, secret: Uint8Array, label: string, transcriptHash: Uint8Array): Uint8Array {
  return expandLabel(hash, secret, label, transcriptHash, transcriptHash.length);
}
