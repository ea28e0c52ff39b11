/**
 * What a record AEAD is, apart from its two implementations (record-aead.ts, the
 * node:crypto fallback and the chooser; native-aead.ts, the addon), so neither has to
 * import the other for its types.
 */

export type AeadName = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';

/** Seals or opens the records of one direction under one traffic key. */
export interface RecordAead {
  /**
   * Seals one TLSCiphertext: writes the header (application_data, 0x0303, length),
   * then AEAD(content || type || `padding` zero bytes) with the header as additional
   * data, then the tag, into `out` at `at`. Returns the bytes written
   * (5 + content.length + 1 + padding + 16). `out` may be a view of shared memory.
   * Throws (TypeError, RangeError) before writing anything when an argument is out of
   * range: seq not an integer in [0, 2^53), type not a byte, the body over 65535 bytes,
   * or `out` too short at `at`.
   */
  sealRecord(seq: number, type: number, content: Uint8Array, padding: number, out: Uint8Array, at: number): number;
  /**
   * Opens one TLSCiphertext given as `record` (its 5-byte header, then the body):
   * writes the TLSInnerPlaintext (content || type || padding) into `out` at `at` and
   * returns its length, or -1 when the record does not authenticate (nothing is
   * promised about `out` then). A body shorter than the tag gives -1; `out` too short
   * at `at` for the plaintext, or a record over 5 + 65535 bytes, throws a RangeError.
   */
  openRecord(seq: number, record: Uint8Array, out: Uint8Array, at: number): number;
  /** Releases the key and cipher state now (the object must not be used after). Idempotent. */
  free(): void;
}
