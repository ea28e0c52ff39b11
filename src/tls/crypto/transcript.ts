/**
 * The handshake transcript (RFC 8446 section 4.4.1) while the server builds its flight:
 * messages are appended to one scratch buffer per thread and each Transcript-Hash is a
 * one-shot digest of the bytes so far. A flight is a few KiB, so rehashing it is cheaper
 * than a streaming `Hash` plus a `copy()` per digest: each of those is a native object
 * whose wrapper V8 must collect (the handshake's GC tail), and a Buffer digest besides.
 *
 * Only the newest Transcript of a thread may be used: a flight is built from start to
 * end in one synchronous call, so an older one still in use is a bug, and it throws.
 */
import { hashOf, type HashName } from './hkdf.js';

let scratch = new Uint8Array(4096);
/** Bumped by each new Transcript; the one holding the current value owns the scratch. */
let owner = 0;

export class Transcript {
  private readonly id = ++owner;
  private length = 0;

  constructor(private readonly hash: HashName) {}

  /** Appends `message` (a whole handshake message, header included). */
  update(message: Uint8Array): this {
    this.own();
    const need = this.length + message.length;
    if (need > scratch.length) {
      const grown = new Uint8Array(Math.max(need, scratch.length * 2));
      grown.set(scratch.subarray(0, this.length));
      scratch = grown;
    }
    scratch.set(message, this.length);
    this.length = need;
    return this;
  }

  /** Transcript-Hash of everything appended so far; the transcript goes on. */
  digest(): Uint8Array {
    this.own();
    return hashOf(this.hash, scratch.subarray(0, this.length));
  }

  private own(): void {
    if (this.id !== owner) throw new Error('a Transcript was used after a newer one took the scratch buffer');
  }
}
