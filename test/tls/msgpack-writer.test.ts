/**
 * The snapshot encoder against msgpackr: whatever it writes, msgpackr reads back as the
 * value it was given (byte arrays, Buffers too, as Uint8Arrays: msgpackr hands out views
 * of the bytes it reads, and the store's are Uint8Arrays); what it does not take, it refuses.
 */
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { encodePlain } from '../../src/tls/msgpack-writer.js';
import { decodeSnapshot, encodeSnapshot } from '../../src/tls/snapshot-codec.js';
import type { TlsSnapshot } from '../../src/tls/state.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

/** `v` as msgpackr decodes it from a Uint8Array: byte arrays as Uint8Arrays. */
function decoded(v: unknown): unknown {
  if (v instanceof Uint8Array) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(decoded);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decoded(x)]));
  return v;
}

function same(v: unknown): void {
  const ours = encodePlain(v);
  expect(ours).not.toBeNull();
  expect(packr.unpack(ours!)).toStrictEqual(decoded(v));
}

const NUMBERS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 1.7e12, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53), 0.5, -0.25, NaN, Infinity, -Infinity];
const BIGINTS = [0n, 5n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, -5n, -(2n ** 63n)];
const STRINGS = ['', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), 'x'.repeat(65536), 'é', 'ü'.repeat(20), 'baton 🦆'];
const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => i & 0xff);

describe('encodePlain', () => {
  it('numbers at every header boundary, and as doubles beyond 32 bits (a number stays a number)', () => {
    for (const n of NUMBERS) same(n);
    expect(typeof packr.unpack(encodePlain(1.7e12)!)).toBe('number');
  });

  it('bigints stay bigints, up to 64 bits', () => {
    for (const n of BIGINTS) same(n);
    expect(packr.unpack(encodePlain(2n ** 64n - 1n)!)).toBe(2n ** 64n - 1n);
  });

  it('strings of every length class, ASCII or not', () => {
    for (const s of STRINGS) same(s);
  });

  it('byte arrays of every length class, Uint8Array and Buffer, and a view into a larger buffer', () => {
    for (const n of [0, 1, 255, 256, 65535, 65536]) {
      same(bytes(n));
      same(Buffer.from(bytes(n)));
    }
    same(bytes(100).subarray(10, 20));
  });

  it('booleans, null, undefined, arrays and objects of every size class, nested', () => {
    for (const v of [true, false, null, undefined]) same(v);
    for (const n of [0, 15, 16, 65536]) same(Array.from({ length: n }, (_, i) => i));
    for (const n of [0, 15, 16]) same(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])));
    same({ a: undefined, b: [null, { c: bytes(3), d: [1n, 'é', [true]] }], e: Object.create(null) as object });
  });

  it('refuses what it does not take: a Map, a Date, a class instance, a function, a symbol, a bigint past 64 bits', () => {
    class Point {
      x = 1;
    }
    for (const v of [new Map(), new Date(0), new Point(), () => 1, Symbol('s'), 2n ** 64n, -(2n ** 63n) - 1n]) {
      expect(encodePlain({ ok: 1, bad: [v] })).toBeNull();
    }
    // After a refusal the next encoding starts clean.
    same({ ok: 1 });
  });
});

describe('encodeSnapshot', () => {
  it('falls back to msgpackr for a value the encoder refuses, and both decode alike', () => {
    const odd = { format: 'baton.tls13.server', version: 3, extra: new Map([[1, 2]]) } as unknown as TlsSnapshot;
    expect(decodeSnapshot(encodeSnapshot(odd))).toStrictEqual(packr.unpack(packr.pack(odd)));
  });
});
