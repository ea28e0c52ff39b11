/**
 * Record protection (RFC 8446 section 5.2-5.3): seal and open of TLSInnerPlaintext
 * with the per-record nonce, the hot path of the relay. One sealer or opener per
 * traffic secret and direction, over one {@link RecordAead} from `recordAead()` (the
 * native addon or its `node:crypto` fallback), freed when the key is replaced. The
 * sequence number is the only thing that moves, so the output is a pure function of
 * (secret, seq, input). Both directions write into memory the caller gives.
 */
import { TlsError } from '../errors.js';
import { ContentType, MAX_CIPHERTEXT, MAX_PLAINTEXT, RECORD_HEADER_LEN } from '../wire/constants.js';
import { trafficKeys } from './key-schedule.js';
import { recordAead, TAG_LEN, type RecordAead } from './record-aead.js';
import type { Suite } from './suites.js';

export { TAG_LEN };

/** Bytes of the TLSCiphertext that seals `contentLength` bytes with `padding` zero bytes. */
export function sealedRecordLength(contentLength: number, padding = 0): number {
  return RECORD_HEADER_LEN + contentLength + 1 + padding + TAG_LEN;
}

abstract class RecordCipher {
  protected readonly aead: RecordAead;
  /** Records processed under this key: the next record's sequence number. */
  seq: number;

  constructor(
    readonly suite: Suite,
    secret: Uint8Array,
    seq: number,
    direction: 'seal' | 'open',
  ) {
    const { key, iv } = trafficKeys(suite.hash, secret, suite.keyLen);
    this.aead = recordAead(suite.aead, key, iv, direction);
    this.seq = seq;
  }

  /** Releases the key and cipher state (the native contexts) now; the object must not seal or open after. */
  free(): void {
    this.aead.free();
  }
}

/** Seals records under one traffic secret. */
export class RecordSealer extends RecordCipher {
  constructor(suite: Suite, secret: Uint8Array, seq = 0) {
    super(suite, secret, seq, 'seal');
  }

  /**
   * Seals `content` (at most 2^14 bytes) as one TLSCiphertext record of inner type
   * `type` with `padding` zero bytes of TLSInnerPlaintext padding, written whole
   * (header, ciphertext, tag) into `out` at `at`, which must hold
   * {@link sealedRecordLength} bytes. Returns the bytes written. No allocation of
   * its own (the `node:crypto` fallback allocates inside Node).
   */
  sealInto(type: number, content: Uint8Array, out: Uint8Array, at = 0, padding = 0): number {
    // Section 5.2: a TLSCiphertext is at most 2^14 + 256 bytes. (The engine keeps the
    // inner plaintext within 2^14 + 1; tests may go beyond to exercise a peer's checks.)
    if (padding < 0 || content.length + 1 + padding + TAG_LEN > MAX_CIPHERTEXT) {
      throw new RangeError('record exceeds 2^14 + 256 bytes');
    }
    const n = this.aead.sealRecord(this.seq, type, content, padding, out, at);
    this.seq++;
    return n;
  }

  /** {@link sealInto} a new array: the whole record (tests and tools; the engine seals into its sink). */
  seal(type: number, content: Uint8Array, padding = 0): Uint8Array {
    const out = new Uint8Array(sealedRecordLength(content.length, padding));
    this.sealInto(type, content, out, 0, padding);
    return out;
  }
}

/** What one protected record held (the allocating {@link RecordOpener.open}). */
export interface OpenedRecord {
  readonly type: number;
  readonly content: Uint8Array;
}

/** Opens records under one traffic secret. */
export class RecordOpener extends RecordCipher {
  /** The inner content type of the record last opened by {@link openInto}. */
  contentType: number = ContentType.invalid;

  constructor(suite: Suite, secret: Uint8Array, seq = 0) {
    super(suite, secret, seq, 'open');
  }

  /**
   * Opens one whole TLSCiphertext (`record`: its 5-byte header, then the body), writing
   * TLSInnerPlaintext into `out` at `at` (room for the body's length is enough). Returns
   * the content length: the content is `out[at, at + n)` and its type is
   * {@link contentType}. A failed tag is `bad_record_mac`; an oversized or typeless
   * inner plaintext is the alert RFC 8446 section 5.2/5.4 names. The sequence number
   * advances only when the record authenticates. On a throw nothing is promised about
   * `out`.
   */
  openInto(record: Uint8Array, out: Uint8Array, at = 0): number {
    if (record.length < RECORD_HEADER_LEN + TAG_LEN + 1) {
      throw new TlsError('protected_record_too_short', 'protected record shorter than its tag');
    }
    const innerLen = this.aead.openRecord(this.seq, record, out, at);
    if (innerLen < 0) throw new TlsError('record_authentication_failed', 'record failed authentication');
    this.seq++;
    // Section 5.2: the inner plaintext MUST NOT exceed 2^14 + 1 bytes.
    if (innerLen > MAX_PLAINTEXT + 1) throw new TlsError('record_overflow_inner_plaintext', 'inner plaintext exceeds 2^14 + 1 bytes');
    let end = at + innerLen - 1;
    while (end >= at && out[end] === 0) end--;
    // Section 5.4: a plaintext of only zeros has no content type.
    if (end < at) throw new TlsError('inner_plaintext_without_content_type', 'protected record has no content type');
    this.contentType = out[end]!;
    return end - at;
  }

  /** {@link openInto} a new array, given the header and body (tests and tools). */
  open(header: Uint8Array, body: Uint8Array): OpenedRecord {
    const record = new Uint8Array(header.length + body.length);
    record.set(header, 0);
    record.set(body, header.length);
    const out = new Uint8Array(Math.max(0, body.length));
    const n = this.openInto(record, out, 0);
    return { type: this.contentType, content: out.subarray(0, n) };
  }
}
