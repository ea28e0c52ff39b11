/**
 * Cuts the client's byte stream into whole TLS records by their headers
 * (RFC 8446 section 5.1), so the gateway hands relays record-aligned batches and
 * retains and replays input on record boundaries. Knows nothing of keys.
 */
import { MAX_CIPHERTEXT, RECORD_HEADER_LEN } from '../tls/wire/constants.js';

export class RecordFramer {
  private pending: Buffer = Buffer.alloc(0);

  /** Bytes held back, waiting for the rest of a record. */
  get buffered(): number {
    return this.pending.length;
  }

  /**
   * Appends `chunk` and returns every whole record now available as one buffer
   * (null when none). A header announcing an impossible length is passed on as
   * is, so the engine answers it with record_overflow.
   */
  push(chunk: Buffer): Buffer | null {
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let end = 0;
    while (buf.length - end >= RECORD_HEADER_LEN) {
      const length = buf.readUInt16BE(end + 3);
      if (length > MAX_CIPHERTEXT) {
        end = buf.length;
        break;
      }
      if (buf.length - end < RECORD_HEADER_LEN + length) break;
      end += RECORD_HEADER_LEN + length;
    }
    this.pending = end === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(end));
    return end === 0 ? null : buf.subarray(0, end);
  }
}
