/**
 * Where the gateway copies relay output before writing it to sockets: ring room is
 * given back to the relay as soon as it is read, while a socket may hold on to what
 * it was given until the kernel takes it. One large buffer serves many writes; a
 * write that follows the previous one in the same buffer extends it, so a burst of
 * records for one socket becomes one write.
 */
const SLAB_BYTES = 1 << 20;

export class OutputSlab {
  private slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private pos = 0;

  /** A copy of `src[from, to)` as a Buffer of its own. */
  copy(src: Uint8Array, from: number, to: number): Buffer {
    const n = to - from;
    if (n > SLAB_BYTES / 4) return Buffer.from(src.subarray(from, to));
    if (this.pos + n > SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.pos = 0;
    }
    const at = this.pos;
    this.slab.set(src.subarray(from, to), at);
    this.pos = at + n;
    return this.slab.subarray(at, at + n);
  }

  /**
   * Appends `src[from, to)` to `list` (the pending writes of one socket): merged into
   * the last piece when the copy lands right after it.
   */
  append(list: Buffer[], src: Uint8Array, from: number, to: number): void {
    const piece = this.copy(src, from, to);
    const last = list[list.length - 1];
    if (last !== undefined && last.buffer === piece.buffer && last.byteOffset + last.length === piece.byteOffset) {
      list[list.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + piece.length);
    } else {
      list.push(piece);
    }
  }
}
