/**
 * A MessagePack encoder for plain data: objects, arrays, strings, numbers, bigints,
 * booleans, null, undefined and byte arrays (Uint8Array, Buffer), what a snapshot holds.
 * msgpackr decodes its output to the very value msgpackr's own encoding decodes to; it
 * exists because msgpackr takes about 0.8 µs for each byte array (its extension lookup
 * and a nested buffer), a third of a snapshot's encoding. Anything else (a Map, a Date,
 * a class instance) is refused: `encodePlain` returns null and the caller uses msgpackr.
 */

let buf = new Uint8Array(4096);
let view = new DataView(buf.buffer);
let at = 0;
/** Set when a value the encoder does not take was met: the output is void. */
let refused = false;

function room(n: number): void {
  if (at + n <= buf.length) return;
  let size = buf.length * 2;
  while (size < at + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(buf.subarray(0, at));
  buf = next;
  view = new DataView(buf.buffer);
}

/** A length header: the short form's base byte, then the 8-, 16- and 32-bit forms (0: none). */
function header(n: number, fix: number, fixMax: number, b8: number, b16: number, b32: number): void {
  room(5);
  if (n <= fixMax) buf[at++] = fix | n;
  else if (b8 !== 0 && n < 0x100) {
    buf[at++] = b8;
    buf[at++] = n;
  } else if (n < 0x10000) {
    buf[at++] = b16;
    view.setUint16(at, n);
    at += 2;
  } else {
    buf[at++] = b32;
    view.setUint32(at, n);
    at += 4;
  }
}

function writeNumber(v: number): void {
  room(9);
  const int = Number.isInteger(v);
  if (int && v >= 0 && v <= 0xffffffff) {
    if (v < 0x80) buf[at++] = v;
    else if (v < 0x100) {
      buf[at++] = 0xcc;
      buf[at++] = v;
    } else if (v < 0x10000) {
      buf[at++] = 0xcd;
      view.setUint16(at, v);
      at += 2;
    } else {
      buf[at++] = 0xce;
      view.setUint32(at, v);
      at += 4;
    }
  } else if (int && v < 0 && v >= -0x80000000) {
    if (v >= -0x20) buf[at++] = v & 0xff;
    else if (v >= -0x80) {
      buf[at++] = 0xd0;
      buf[at++] = v & 0xff;
    } else if (v >= -0x8000) {
      buf[at++] = 0xd1;
      view.setInt16(at, v);
      at += 2;
    } else {
      buf[at++] = 0xd2;
      view.setInt32(at, v);
      at += 4;
    }
  } else {
    // Beyond 32 bits a 64-bit integer would decode as a bigint: a double keeps it a number.
    buf[at++] = 0xcb;
    view.setFloat64(at, v);
    at += 8;
  }
}

function writeBigInt(v: bigint): void {
  room(9);
  if (v >= -(1n << 63n) && v < 1n << 63n) {
    buf[at++] = 0xd3;
    view.setBigInt64(at, v);
  } else if (v >= 0n && v < 1n << 64n) {
    buf[at++] = 0xcf;
    view.setBigUint64(at, v);
  } else {
    refused = true;
    return;
  }
  at += 8;
}

function writeString(s: string): void {
  let ascii = s.length < 0x20;
  for (let i = 0; ascii && i < s.length; i++) if (s.charCodeAt(i) > 0x7f) ascii = false;
  if (ascii) {
    room(1 + s.length);
    buf[at++] = 0xa0 | s.length;
    for (let i = 0; i < s.length; i++) buf[at++] = s.charCodeAt(i);
    return;
  }
  const bytes = Buffer.from(s, 'utf8');
  header(bytes.length, 0xa0, 0x1f, 0xd9, 0xda, 0xdb);
  room(bytes.length);
  buf.set(bytes, at);
  at += bytes.length;
}

function write(v: unknown): void {
  switch (typeof v) {
    case 'number':
      return writeNumber(v);
    case 'string':
      return writeString(v);
    case 'boolean':
      room(1);
      buf[at++] = v ? 0xc3 : 0xc2;
      return;
    case 'bigint':
      return writeBigInt(v);
    case 'undefined':
      // msgpackr's own: fixext 1, type 0.
      room(3);
      buf[at++] = 0xd4;
      buf[at++] = 0;
      buf[at++] = 0;
      return;
    case 'object':
      break;
    default:
      refused = true;
      return;
  }
  if (v === null) {
    room(1);
    buf[at++] = 0xc0;
    return;
  }
  if (v instanceof Uint8Array) {
    header(v.length, 0, -1, 0xc4, 0xc5, 0xc6);
    room(v.length);
    buf.set(v, at);
    at += v.length;
    return;
  }
  if (Array.isArray(v)) {
    header(v.length, 0x90, 0x0f, 0, 0xdc, 0xdd);
    for (let i = 0; i < v.length && !refused; i++) write(v[i]);
    return;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    refused = true;
    return;
  }
  const keys = Object.keys(v);
  header(keys.length, 0x80, 0x0f, 0, 0xde, 0xdf);
  for (let i = 0; i < keys.length && !refused; i++) {
    writeString(keys[i]!);
    write((v as Record<string, unknown>)[keys[i]!]);
  }
}

/** `value` as MessagePack in a new array, or null when it holds something the encoder does not take. */
export function encodePlain(value: unknown): Uint8Array | null {
  at = 0;
  refused = false;
  write(value);
  return refused ? null : buf.slice(0, at);
}
