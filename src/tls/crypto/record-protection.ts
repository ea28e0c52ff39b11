/**
 * Record protection (RFC 8446 section 5.2-5.3): AEAD seal and open of
 * TLSInnerPlaintext with the per-record nonce, the hot path of the relay.
 * One sealer or opener per traffic secret; the sequence number is the only
 * thing that moves, so the output is a pure function of (secret, seq, input).
 */
import { createCipheriv, createDecipheriv, createSecretKey, type CipherGCMTypes, type KeyObject } from 'node:crypto';
import { TlsError } from '../errors.js';
import { trafficKeys } from './key-schedule.js';
import type { Suite } from './suites.js';
import { ContentType, MAX_CIPHERTEXT, MAX_PLAINTEXT, RECORD_HEADER_LEN } from '../wire/constants.js';

const TAG_LEN = 16;
// The three AEADs share the GCM-shaped API (setAAD, getAuthTag); the cast only picks that overload.
const TWO_32 = 0x1_0000_0000;

abstract class RecordCipher {
  protected readonly key: KeyObject;
  protected readonly iv: Buffer;
  private readonly nonceBuf = Buffer.alloc(12);
  /** Records processed under this key: the next record's sequence number. */
  seq: number;

  constructor(
    readonly suite: Suite,
    secret: Uint8Array,
    seq = 0,
  ) {
    const { key, iv } = trafficKeys(suite.hash, secret, suite.keyLen);
    this.key = createSecretKey(key);
    this.iv = Buffer.from(iv);
    this.seq = seq;
  }

  /** The per-record nonce: the IV XOR the 64-bit sequence number, left-padded (section 5.3). */
  protected nextNonce(): Buffer {
    const n = this.nonceBuf;
    this.iv.copy(n);
    const seq = this.seq;
    const hi = Math.floor(seq / TWO_32);
    const lo = seq >>> 0;
    n.writeUInt32BE((n.readUInt32BE(4) ^ hi) >>> 0, 4);
    n.writeUInt32BE((n.readUInt32BE(8) ^ lo) >>> 0, 8);
    this.seq = seq + 1;
    return n;
  }
}

/** Seals records under one traffic secret. */
export class RecordSealer extends RecordCipher {
  /** TLSInnerPlaintext is assembled here so each record takes one `update()` call. */
  private readonly inner = Buffer.allocUnsafeSlow(MAX_CIPHERTEXT - TAG_LEN);

  /**
   * Seals `content` (at most 2^14 bytes) as one TLSCiphertext record of inner type `type`
   * with `padding` zero bytes of TLSInnerPlaintext padding. The record comes back as
   * three consecutive pieces, header, ciphertext and tag, so no copy joins them:
   * write them in order.
   */
  seal(type: number, content: Uint8Array, padding = 0): [Buffer, Buffer, Buffer] {
    // Section 5.2: a TLSCiphertext is at most 2^14 + 256 bytes. (The engine keeps the
    // inner plaintext within 2^14 + 1; tests may go beyond to exercise a peer's checks.)
    if (padding < 0 || content.length + 1 + padding + TAG_LEN > MAX_CIPHERTEXT) {
      throw new RangeError('record exceeds 2^14 + 256 bytes');
    }
    const innerLen = content.length + 1 + padding;
    const len = innerLen + TAG_LEN;
    const header = Buffer.allocUnsafe(RECORD_HEADER_LEN);
    header[0] = ContentType.application_data;
    header[1] = 3;
    header[2] = 3;
    header[3] = len >>> 8;
    header[4] = len & 0xff;
    const inner = this.inner;
    inner.set(content, 0);
    inner[content.length] = type;
    if (padding) inner.fill(0, content.length + 1, innerLen);
    const cipher = createCipheriv(this.suite.aead as CipherGCMTypes, this.key, this.nextNonce(), { authTagLength: TAG_LEN });
    cipher.setAAD(header);
    // update() returns fresh memory, so the scratch buffer never escapes.
    const body = cipher.update(inner.subarray(0, innerLen));
    cipher.final();
    return [header, body, cipher.getAuthTag()];
  }
}

/** What one protected record held. */
export interface OpenedRecord {
  readonly type: number;
  readonly content: Buffer;
}

/** Opens records under one traffic secret. */
export class RecordOpener extends RecordCipher {
  /**
   * Opens one record given its 5-byte header and body. A failed tag is
   * `bad_record_mac`; an oversized or typeless inner plaintext is the alert RFC 8446 section 5.2/5.4 names.
   * The sequence number advances only when the record authenticates.
   */
  open(header: Uint8Array, body: Uint8Array): OpenedRecord {
    if (body.length < TAG_LEN + 1) {
      throw new TlsError('bad_record_mac', 'protected record shorter than its tag');
    }
    const seqBefore = this.seq;
    const decipher = createDecipheriv(this.suite.aead as CipherGCMTypes, this.key, this.nextNonce(), { authTagLength: TAG_LEN });
    decipher.setAAD(header);
    decipher.setAuthTag(body.subarray(body.length - TAG_LEN));
    let plain: Buffer;
    try {
      const a = decipher.update(body.subarray(0, body.length - TAG_LEN));
      const b = decipher.final();
      plain = b.length ? Buffer.concat([a, b]) : a;
    } catch {
      this.seq = seqBefore;
      throw new TlsError('bad_record_mac', 'record failed authentication');
    }
    // Section 5.2: the inner plaintext MUST NOT exceed 2^14 + 1 bytes.
    if (plain.length > MAX_PLAINTEXT + 1) throw new TlsError('record_overflow', 'inner plaintext exceeds 2^14 + 1 bytes');
    let end = plain.length - 1;
    while (end >= 0 && plain[end] === 0) end--;
    // Section 5.4: a plaintext of only zeros has no content type.
    if (end < 0) throw new TlsError('unexpected_message', 'protected record has no content type');
    return { type: plain[end]!, content: plain.subarray(0, end) };
  }
}
