/** Byte helpers shared by every layer: `Uint8Array` in signatures, `Buffer` at the edges. */

const EMPTY = new Uint8Array(0);

/** The empty byte string, shared (never written to). */
export function empty(): Uint8Array {
  return EMPTY;
}

/** Concatenates byte strings into one new array. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Hex encoding, lowercase, no separators. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Hex decoding; whitespace is ignored so RFC text can be pasted as is. */
export function fromHex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) {
    throw new TypeError('fromHex: not an even-length hex string');
  }
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

/** Byte equality, not constant time: for public values only. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A copy that owns its memory (unlike `Buffer#slice`, which is a view). */
export function copyBytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

/** The UTF-8 bytes of `s`, in an array that owns its memory. */
export function utf8(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'utf8'));
}
