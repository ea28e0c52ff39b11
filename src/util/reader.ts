/**
 * A bounds-checked reader over a byte string, for the TLS presentation language
 * (RFC 8446 section 3): fixed-width integers and length-prefixed vectors.
 * Every read past the end throws {@link DecodeError}; protocol code maps that to
 * the `decode_error` alert.
 */
export class DecodeError extends Error {
  override readonly name = 'DecodeError';
}

export class Reader {
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  get offset(): number {
    return this.pos;
  }

  atEnd(): boolean {
    return this.pos === this.buf.length;
  }

  private need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) throw new DecodeError(`truncated ${what}`);
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u24(what = 'u24'): number {
    this.need(3, what);
    const v = (this.buf[this.pos]! << 16) | (this.buf[this.pos + 1]! << 8) | this.buf[this.pos + 2]!;
    this.pos += 3;
    return v;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v =
      this.buf[this.pos]! * 0x1000000 +
      ((this.buf[this.pos + 1]! << 16) | (this.buf[this.pos + 2]! << 8) | this.buf[this.pos + 3]!);
    this.pos += 4;
    return v;
  }

  /** `n` raw bytes (a view, not a copy). */
  bytes(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** A vector with a 1-, 2- or 3-byte length prefix, checked against `min`/`max`. */
  vec(lenBytes: 1 | 2 | 3, what: string, min = 0, max = Infinity): Uint8Array {
    const n = lenBytes === 1 ? this.u8(what) : lenBytes === 2 ? this.u16(what) : this.u24(what);
    if (n < min || n > max) throw new DecodeError(`${what}: length ${n} out of range`);
    return this.bytes(n, what);
  }

  /** A sub-reader over a length-prefixed vector. */
  sub(lenBytes: 1 | 2 | 3, what: string, min = 0, max = Infinity): Reader {
    return new Reader(this.vec(lenBytes, what, min, max));
  }

  rest(): Uint8Array {
    const v = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return v;
  }

  /** Throws unless every byte was consumed. */
  end(what: string): void {
    if (this.pos !== this.buf.length) throw new DecodeError(`trailing bytes after ${what}`);
  }
}
