/**
 * HKDF (RFC 5869) and the TLS 1.3 labelled expansions (RFC 8446 section 7.1).
 *
 * HMAC is built here from two one-shot `crypto.hash` calls (RFC 2104: H(K^opad ||
 * H(K^ipad || m))) over one scratch buffer per thread, with latin1 strings for the
 * digests. A `createHmac` object is a stream whose construction costs three times
 * the hashing and leaves ~0.7 KiB of garbage, and a full handshake computes about
 * thirty HMACs; a Buffer digest costs more than the hash itself. The bytes are those
 * of `createHmac` (tested against it and RFC 8448).
 */
import { hash as oneShotHash } from 'node:crypto';
import { Writer } from '../../util/writer.js';

/** `crypto.hash` takes any Buffer encoding at run time; its types list only the text ones. */
const hashToLatin1 = oneShotHash as unknown as (algorithm: string, data: Uint8Array, encoding: 'latin1') => string;

export type HashName = 'sha256' | 'sha384';

const BLOCK_LEN: Record<HashName, number> = { sha256: 64, sha384: 128 };
const OUT_LEN: Record<HashName, number> = { sha256: 32, sha384: 48 };
const IPAD = 0x36;
const OPAD = 0x5c;

/** Block, then the message (HkdfLabel at most 2 + 256 + 256 + 1 bytes); grown for longer ones. */
let scratch = Buffer.alloc(1024);

function room(n: number): Buffer {
  if (scratch.length < n) scratch = Buffer.alloc(Math.max(n, scratch.length * 2));
  return scratch;
}

/** Writes `key` XOR `pad`, zero-extended to the block, at the start of the scratch. */
function keyBlock(buf: Buffer, key: Uint8Array, block: number, pad: number): void {
  for (let i = 0; i < block; i++) buf[i] = (i < key.length ? key[i]! : 0) ^ pad;
}

/**
 * HMAC of the `msgLen` bytes already at `scratch[block..]`, written into `out` at `at`.
 * `key` must not alias the scratch.
 */
function hmacOfScratch(hash: HashName, key: Uint8Array, msgLen: number, out: Uint8Array, at: number, take: number): void {
  const block = BLOCK_LEN[hash];
  if (key.length > block) key = hashOf(hash, key);
  const buf = scratch;
  keyBlock(buf, key, block, IPAD);
  const inner = hashToLatin1(hash, buf.subarray(0, block + msgLen), 'latin1');
  keyBlock(buf, key, block, OPAD);
  const outLen = buf.write(inner, block, 'latin1');
  const digest = hashToLatin1(hash, buf.subarray(0, block + outLen), 'latin1');
  for (let i = 0; i < take; i++) out[at + i] = digest.charCodeAt(i);
}

export function hmac(hash: HashName, key: Uint8Array, data: Uint8Array): Uint8Array {
  const block = BLOCK_LEN[hash];
  room(block + data.length).set(data, block);
  const out = new Uint8Array(OUT_LEN[hash]);
  hmacOfScratch(hash, key, data.length, out, 0, out.length);
  return out;
}

/** A one-shot digest into an on-heap array (no Hash object, no Buffer backing store to sweep). */
export function hashOf(hash: HashName, data: Uint8Array): Uint8Array {
  return latin1Bytes(hashToLatin1(hash, data, 'latin1'));
}

/** The bytes of a latin1 string (a digest) in a fresh Uint8Array. */
export function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** HKDF-Extract(salt, IKM); a zero-length salt means HashLen zero bytes (the same key to HMAC). */
export function hkdfExtract(hash: HashName, salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmac(hash, salt, ikm);
}

/**
 * T(i) = HMAC(PRK, T(i-1) | info | i) for the `infoLen` bytes of info written by
 * `writeInfo` at the scratch offset it is given; returns the first `length` bytes.
 */
function expand(hash: HashName, prk: Uint8Array, infoLen: number, writeInfo: (buf: Buffer, at: number) => void, length: number): Uint8Array {
  const block = BLOCK_LEN[hash];
  const hashLen = OUT_LEN[hash];
  if (length > 255 * hashLen) throw new RangeError('HKDF-Expand output longer than 255 blocks');
  const out = new Uint8Array(length);
  room(block + hashLen + infoLen + 1);
  for (let i = 1, filled = 0; filled < length; i++) {
    // T(i-1) sits in `out` (the previous block, whole unless it was the last).
    const prevLen = i === 1 ? 0 : hashLen;
    if (prevLen) scratch.set(out.subarray(filled - hashLen, filled), block);
    writeInfo(scratch, block + prevLen);
    scratch[block + prevLen + infoLen] = i;
    const take = Math.min(hashLen, length - filled);
    if (take === hashLen) {
      hmacOfScratch(hash, prk, prevLen + infoLen + 1, out, filled, take);
    } else {
      // The last block is cut short, but the next one (if any) would chain from all of it.
      const whole = new Uint8Array(hashLen);
      hmacOfScratch(hash, prk, prevLen + infoLen + 1, whole, 0, hashLen);
      out.set(whole.subarray(0, take), filled);
    }
    filled += take;
  }
  return out;
}

/** HKDF-Expand(PRK, info, L). */
export function hkdfExpand(hash: HashName, prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return expand(hash, prk, info.length, (buf, at) => buf.set(info, at), length);
}

/** "tls13 " + label, as bytes, per label (the labels are a small fixed set). */
const labelBytes = new Map<string, Buffer>();
function fullLabel(label: string): Buffer {
  let b = labelBytes.get(label);
  if (!b) {
    b = Buffer.from(`tls13 ${label}`, 'latin1');
    if (b.length > 255) throw new RangeError('HKDF label longer than 255 bytes');
    labelBytes.set(label, b);
  }
  return b;
}

/** The HkdfLabel structure of RFC 8446 section 7.1. */
export function hkdfLabel(label: string, context: Uint8Array, length: number): Uint8Array {
  return new Writer(64).u16(length).vecBytes(1, fullLabel(label)).vecBytes(1, context).finish();
}

/** HKDF-Expand-Label(Secret, Label, Context, Length), RFC 8446 section 7.1. */
export function expandLabel(
  hash: HashName,
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const name = fullLabel(label);
  if (context.length > 255) throw new RangeError('HKDF context longer than 255 bytes');
  // HkdfLabel written in place: u16 length, <label>, <context>.
  const infoLen = 2 + 1 + name.length + 1 + context.length;
  return expand(
    hash,
    secret,
    infoLen,
    (buf, at) => {
      buf[at] = length >> 8;
      buf[at + 1] = length & 0xff;
      buf[at + 2] = name.length;
      name.copy(buf, at + 3);
      buf[at + 3 + name.length] = context.length;
      buf.set(context, at + 4 + name.length);
    },
    length,
  );
}

/** Derive-Secret(Secret, Label, Messages) given Transcript-Hash(Messages), RFC 8446 section 7.1. */
export function deriveSecret(hash: HashName, secret: Uint8Array, label: string, transcriptHash: Uint8Array): Uint8Array {
  return expandLabel(hash, secret, label, transcriptHash, transcriptHash.length);
}
