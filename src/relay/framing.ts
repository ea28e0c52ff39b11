/**
 * Cuts the client's byte stream into whole TLS records by their headers
 * (RFC 8446 section 5.1), so the gateway hands relays record-aligned inputs and
 * retains and replays input on record boundaries. Knows nothing of keys, and copies
 * nothing: an input is a list of views of the socket's own chunks.
 */
import { MAX_CIPHERTEXT, RECORD_HEADER_LEN } from '../tls/wire/constants.js';

export class RecordFramer {
  /** The start of a record still incomplete: views of earlier chunks. */
  private pending: Buffer[] = [];
  private pendingLength = 0;

  /** Bytes held back, waiting for the rest of a record. */
  get buffered(): number {
    return this.pendingLength;
  }

  /**
   * Appends `chunk` and returns every whole record now available, as consecutive
   * pieces (null when none). A header announcing an impossible length is passed on
   * as is, so the engine answers it with record_overflow.
   */
  push(chunk: Buffer): Buffer[] | null {
    const held = this.pendingLength;
    const total = held + chunk.length;
    let end = 0;
    while (total - end >= RECORD_HEADER_LEN) {
      const length = (this.byteAt(end + 3, chunk) << 8) | this.byteAt(end + 4, chunk);
      if (length > MAX_CIPHERTEXT) {
        end = total;
        break;
      }
      if (total - end < RECORD_HEADER_LEN + length) break;
      end += RECORD_HEADER_LEN + length;
    }
    if (end === 0) {
      if (chunk.length > 0) {
        this.pending.push(chunk);
        this.pendingLength = total;
      }
      return null;
    }
    // What is pending never holds a whole record, so the first one ends in `chunk`.
    const out = this.pending;
    const taken = end - held;
    if (taken > 0) out.push(taken === chunk.length ? chunk : chunk.subarray(0, taken));
    this.pending = taken < chunk.length ? [chunk.subarray(taken)] : [];
    this.pendingLength = chunk.length - taken;
    return out;
  }

  /** The byte at offset `at` of pending || chunk. */
  private byteAt(at: number, chunk: Buffer): number {
    if (at >= this.pendingLength) return chunk[at - this.pendingLength]!;
    for (const p of this.pending) {
      if (at < p.length) return p[at]!;
      at -= p.length;
    }
    return 0;
  }
}
