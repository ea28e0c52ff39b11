/**
 * Where the whole TLS records of a byte range end (RFC 8446 section 5.1), so the
 * gateway hands relays record-aligned inputs and retains and replays input on record
 * boundaries. Knows nothing of keys.
 */
import { MAX_CIPHERTEXT, RECORD_HEADER_LEN } from '../tls/wire/constants.js';

/**
 * The end of the last whole record in `bytes[from, to)` (`from` when none is whole). A
 * header announcing an impossible length ends the range there and then (`to`): the
 * engine answers it with record_overflow.
 */
export function recordsEnd(bytes: Uint8Array, from: number, to: number): number {
  let end = from;
  while (to - end >= RECORD_HEADER_LEN) {
    const length = (bytes[end + 3]! << 8) | bytes[end + 4]!;
    if (length > MAX_CIPHERTEXT) return to;
    if (to - end < RECORD_HEADER_LEN + length) break;
    end += RECORD_HEADER_LEN + length;
  }
  return end;
}
