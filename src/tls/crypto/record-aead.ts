/**
 * Whole-record AEAD for TLS 1.3 (RFC 8446 section 5.2-5.3): one object per traffic
 * key and direction, sealing or opening one record per call into memory the caller
 * gives. The nonce is the static IV XOR the 64-bit record sequence number.
 *
 * Two implementations produce identical bytes: the native addon (one reused OpenSSL
 * cipher context per direction, no allocation per record; see native/) and this
 * module's `node:crypto` fallback (a cipher object per record, as Node requires).
 */
import { createCipheriv, createDecipheriv, createSecretKey, type CipherGCMTypes, type KeyObject } from 'node:crypto';
import { ContentType, RECORD_HEADER_LEN } from '../wire/constants.js';
import type { AeadName, RecordAead } from './aead.js';
import { aeadBackend, nativeAead } from './native-aead.js';

export type { AeadName, RecordAead } from './aead.js';


export const TAG_LEN = 16;
const TWO_32 = 0x1_0000_0000;
/** A TLSCiphertext header's 16-bit length field bounds the body. */
const MAX_BODY_LEN = 0xffff;


/** The per-record nonce (section 5.3): the IV XOR the sequence number, left-padded to 12 bytes. */
export function recordNonce(iv: Uint8Array, seq: number, into: Uint8Array): Uint8Array {
  into.set(iv);
  const hi = Math.floor(seq / TWO_32);
  const lo = seq >>> 0;
  into[4]! ^= hi >>> 24;
  into[5]! ^= (hi >>> 16) & 0xff;
  into[6]! ^= (hi >>> 8) & 0xff;
  into[7]! ^= hi & 0xff;
  into[8]! ^= lo >>> 24;
  into[9]! ^= (lo >>> 16) & 0xff;
  into[10]! ^= (lo >>> 8) & 0xff;
  into[11]! ^= lo & 0xff;
  return into;
}

/** Writes a TLSCiphertext header for a body of `length` bytes at `at`. */
export function writeRecordHeader(out: Uint8Array, at: number, length: number): void {
  out[at] = ContentType.application_data;
  out[at + 1] = 3;
  out[at + 2] = 3;
  out[at + 3] = length >>> 8;
  out[at + 4] = length & 0xff;
}

/**
 * The argument checks both implementations make, with the same errors (the native one in
 * C): a number that is an integer from 0 to `max`.
 */
function checkIndex(v: number, what: string, max: number): void {
  if (typeof v !== 'number') throw new TypeError(`${what} must be a number`);
  if (!(v >= 0 && v <= max) || !Number.isInteger(v)) throw new RangeError(`${what} must be an integer from 0 to ${max}`);
}

/**
 * Where the fallback assembles a TLSInnerPlaintext: one per thread, shared by every
 * connection (a seal runs to its end before the next begins), so an idle connection
 * holds no 16 KiB buffer of its own.
 */
let scratch: Buffer = Buffer.alloc(0);

/** The `node:crypto` implementation: a cipher object per record, output copied into place. */
class NodeCryptoAead implements RecordAead {
  private key: KeyObject | null;
  private readonly iv: Uint8Array;
  private readonly nonce = Buffer.alloc(12);
  /** TLSInnerPlaintext is assembled here so each record takes one `update()` call. */

  constructor(
    private readonly aead: AeadName,
    key: Uint8Array,
    iv: Uint8Array,
  ) {
    this.key = createSecretKey(key);
    this.iv = Uint8Array.from(iv);
  }

  sealRecord(seq: number, type: number, content: Uint8Array, padding: number, out: Uint8Array, at: number): number {
    const key = this.liveKey();
    checkIndex(seq, 'seq', Number.MAX_SAFE_INTEGER);
    checkIndex(type, 'type', 255);
    checkIndex(padding, 'padding', MAX_BODY_LEN);
    checkIndex(at, 'at', Number.MAX_SAFE_INTEGER);
    const innerLen = content.length + 1 + padding;
    const bodyLen = innerLen + TAG_LEN;
    if (bodyLen > MAX_BODY_LEN) throw new RangeError('record too long: content + 1 + padding + 16 must be at most 65535 bytes');
    if (at > out.length || out.length - at < RECORD_HEADER_LEN + bodyLen) {
      throw new RangeError('out is too small for the sealed record at this offset');
    }
    writeRecordHeader(out, at, bodyLen);
    if (scratch.length < innerLen) scratch = Buffer.allocUnsafeSlow(Math.max(innerLen, (1 << 14) | 256));
    const inner = scratch;
    inner.set(content, 0);
    inner[content.length] = type;
    if (padding) inner.fill(0, content.length + 1, innerLen);
    const cipher = createCipheriv(this.aead as CipherGCMTypes, key, recordNonce(this.iv, seq, this.nonce), { authTagLength: TAG_LEN });
    cipher.setAAD(out.subarray(at, at + RECORD_HEADER_LEN));
    const body = cipher.update(inner.subarray(0, innerLen));
    cipher.final();
    out.set(body, at + RECORD_HEADER_LEN);
    out.set(cipher.getAuthTag(), at + RECORD_HEADER_LEN + innerLen);
    return RECORD_HEADER_LEN + bodyLen;
  }

  openRecord(seq: number, record: Uint8Array, out: Uint8Array, at: number): number {
    const key = this.liveKey();
    checkIndex(seq, 'seq', Number.MAX_SAFE_INTEGER);
    checkIndex(at, 'at', Number.MAX_SAFE_INTEGER);
    if (record.length > RECORD_HEADER_LEN + MAX_BODY_LEN) throw new RangeError('record longer than a TLS record can be (5 + 65535 bytes)');
    const bodyLen = record.length - RECORD_HEADER_LEN;
    if (bodyLen < TAG_LEN) return -1;
    if (at > out.length || out.length - at < bodyLen - TAG_LEN) {
      throw new RangeError('out is too small for the opened record at this offset');
    }
    const decipher = createDecipheriv(this.aead as CipherGCMTypes, key, recordNonce(this.iv, seq, this.nonce), { authTagLength: TAG_LEN });
    decipher.setAAD(record.subarray(0, RECORD_HEADER_LEN));
    decipher.setAuthTag(record.subarray(record.length - TAG_LEN));
    try {
      const plain = decipher.update(record.subarray(RECORD_HEADER_LEN, record.length - TAG_LEN));
      const last = decipher.final();
      out.set(plain, at);
      if (last.length) out.set(last, at + plain.length);
      return plain.length + last.length;
    } catch {
      return -1;
    }
  }

  free(): void {
    this.key = null;
  }

  private liveKey(): KeyObject {
    if (this.key === null) throw new TypeError('record AEAD used after free()');
    return this.key;
  }
}

/** A `node:crypto` RecordAead (the fallback; also the reference the native one is tested against). */
export function nodeCryptoAead(aead: AeadName, key: Uint8Array, iv: Uint8Array): RecordAead {
  return new NodeCryptoAead(aead, key, iv);
}

/**
 * The RecordAead for one direction's traffic key: the native addon's when it is built
 * and loads (see aeadBackend()), else, and always with BATON_NATIVE=0, the
 * `node:crypto` one. `direction` is the way it will be used (the native one prepares
 * that cipher context now; either way both methods work).
 */
export function recordAead(aead: AeadName, key: Uint8Array, iv: Uint8Array, direction: 'seal' | 'open' = 'seal'): RecordAead {
  return aeadBackend().mode === 'native' ? nativeAead(aead, key, iv, direction) : nodeCryptoAead(aead, key, iv);
}

export { aeadBackend, nativeAead, type AeadBackend } from './native-aead.js';
