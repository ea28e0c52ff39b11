/**
 * Costs that must grow linearly with the input, measured by counting work rather than
 * by the clock (a loaded machine makes timings noise): bytes copied while a handshake
 * message is reassembled from many records or a record from many pieces, and array
 * elements scanned while a ClientHello with thousands of extensions or key shares is
 * checked for duplicates.
 * Each case runs at n and 4n: linear work grows about 4 times, quadratic about 16.
 */
import { describe, expect, it } from 'vitest';
import { RecordSealer } from '../../src/tls/crypto/record-protection.js';
import { suiteById } from '../../src/tls/crypto/suites.js';
import { TlsServerEngine } from '../../src/tls/index.js';
import { ExtensionType } from '../../src/tls/wire/constants.js';
import { Writer } from '../../src/util/writer.js';
import { helloMessage, parseHelloRecord, plainRecord, withExtensions, type Extension, type HelloParts } from '../helpers/hello-editor.js';
import { applyStep, deterministicServer, recordSession, toRecordSteps } from '../helpers/recorded-session.js';

const server = deterministicServer();
const session = await recordSession(server);
const first = toRecordSteps(session.steps)[0]!;
if (first.kind !== 'client') throw new Error('expected the ClientHello record');
const nodeHello = parseHelloRecord(first.bytes);

/** Runs `f` with `proto[name]` wrapped to add `cost(this, args)` to a counter; returns the count. */
function counting<T extends object>(proto: T, names: readonly string[], cost: (self: unknown, args: unknown[]) => number, f: () => void): number {
  let n = 0;
  const originals = names.map((name) => [name, Object.getOwnPropertyDescriptor(proto, name)] as const);
  for (const name of names) {
    const original = (proto as Record<string, (...a: unknown[]) => unknown>)[name]!;
    Object.defineProperty(proto, name, {
      configurable: true,
      writable: true,
      value: function (this: unknown, ...args: unknown[]) {
        n += cost(this, args);
        return Reflect.apply(original, this, args);
      },
    });
  }
  try {
    f();
  } finally {
    for (const [name, d] of originals) {
      if (d) Object.defineProperty(proto, name, d);
      else delete (proto as Record<string, unknown>)[name];
    }
  }
  return n;
}

/** Bytes copied by `Uint8Array.prototype.set` (concat and every buffer copy in the engine go through it). */
const bytesCopied = (f: () => void): number =>
  counting(Uint8Array.prototype, ['set'], (_self, args) => (args[0] as ArrayLike<number>).length, f);

/** Elements of the arrays the linear scans (includes, some, find...) were called on. */
const elementsScanned = (f: () => void): number =>
  counting(Array.prototype, ['includes', 'indexOf', 'some', 'every', 'find', 'findIndex'], (self) => (self as unknown[]).length, f);

/** The ClientHello of `p` split into plaintext records of `fragment` bytes. */
function helloRecords(p: HelloParts, fragment: number): Uint8Array[] {
  const message = helloMessage(p);
  const out: Uint8Array[] = [];
  for (let at = 0; at < message.length; at += fragment) out.push(plainRecord(22, message.subarray(at, at + fragment)));
  return out;
}

/** Receives each record with its own call, as records arriving one by one; the engine must accept. */
function receiveAll(records: readonly Uint8Array[]): () => void {
  return () => {
    const engine = TlsServerEngine.create(server.config, server.deps());
    for (const r of records) {
      const out = engine.receive(r);
      if (out.events.some((e) => e.type === 'alertSent')) throw new Error(`refused: ${JSON.stringify(out.events)}`);
    }
    if (engine.snapshot().handshake.kind !== 'expectFinished') throw new Error('the hello did not complete');
  };
}

const padded = (n: number): HelloParts => withExtensions(nodeHello, [...nodeHello.extensions, { type: ExtensionType.padding, data: new Uint8Array(n) }]);
/** `n` extensions of types no one parses (distinct, so none is a duplicate). */
const manyExtensions = (n: number): HelloParts =>
  withExtensions(nodeHello, [...Array.from({ length: n }, (_, i): Extension => ({ type: 0x4000 + i, data: new Uint8Array(0) })), ...nodeHello.extensions]);
/** `n` key shares of unknown groups, every group in supported_groups, before the real shares and groups. */
function manyShares(n: number): HelloParts {
  const ids = Array.from({ length: n }, (_, i) => 0x4000 + i);
  return withExtensions(
    nodeHello,
    nodeHello.extensions.map((x) => {
      if (x.type === ExtensionType.key_share) {
        return { type: x.type, data: new Writer().vec(2, (w) => (ids.forEach((g) => w.u16(g).vecBytes(2, Uint8Array.of(1))), w.bytes(x.data.subarray(2)))).finish() };
      }
      if (x.type === ExtensionType.supported_groups) {
        return { type: x.type, data: new Writer().vec(2, (w) => (ids.forEach((g) => w.u16(g)), w.bytes(x.data.subarray(2)))).finish() };
      }
      return x;
    }),
  );
}

/** Linear: about 4 times the work at 4n (the constant part of a handshake only lowers it). */
function expectLinear(atN: number, at4N: number): void {
  expect(atN).toBeGreaterThan(0);
  expect(at4N / atN).toBeLessThan(6);
}

describe('linear costs', () => {
  it('a ClientHello reassembled from 100-byte records is copied a bounded number of times, not once per record', () => {
    const n = bytesCopied(receiveAll(helloRecords(padded(8_000), 100)));
    const n4 = bytesCopied(receiveAll(helloRecords(padded(32_000), 100)));
    expectLinear(n, n4);
    // And in absolute terms: a few copies of the 32 KB message, not 32 KB x 320 records / 2.
    expect(n4).toBeLessThan(8 * 32_000 + 64_000);
  });

  it('a protected handshake message in 100-byte records (after the ClientHello) is copied a bounded number of times', () => {
    const steps = toRecordSteps(session.steps);
    const finishedAt = steps.findIndex((s) => s.kind === 'client' && s.bytes[0] === 23);
    /** `length` bytes of a handshake message (a Finished far too long: refused once whole, after reassembly), sealed 100 bytes a record. */
    const run = (length: number): (() => void) => {
      const engine = TlsServerEngine.create(server.config, server.deps());
      for (const s of steps.slice(0, finishedAt)) applyStep(engine, s);
      const snap = engine.snapshot();
      const sealer = new RecordSealer(suiteById(snap.negotiated!.cipherSuite)!, snap.read!.secret, Number(snap.read!.seq));
      const message = new Uint8Array(4 + length);
      message.set([20, length >>> 16, (length >>> 8) & 0xff, length & 0xff]);
      const records: Uint8Array[] = [];
      for (let at = 0; at < message.length; at += 100) records.push(sealer.seal(22, message.subarray(at, at + 100)));
      return () => {
        for (const r of records.slice(0, -1)) {
          const out = engine.receive(r);
          if (out.events.some((e) => e.type === 'alertSent')) throw new Error(`refused early: ${JSON.stringify(out.events)}`);
        }
        expect(engine.snapshot().pendingHandshake.length).toBe(message.length - (message.length % 100 || 100));
      };
    };
    const n = bytesCopied(run(8_000));
    const n4 = bytesCopied(run(32_000));
    expectLinear(n, n4);
    expect(n4).toBeLessThan(8 * 32_000 + 64_000);
  });

  it('a ClientHello record arriving in 8-byte pieces is copied a bounded number of times, not once per piece', () => {
    const pieces = (p: HelloParts): Uint8Array[] => {
      const [record] = helloRecords(p, 1 << 14);
      return Array.from({ length: Math.ceil(record!.length / 8) }, (_, i) => record!.subarray(8 * i, 8 * i + 8));
    };
    const n = bytesCopied(receiveAll(pieces(padded(3_500))));
    const n4 = bytesCopied(receiveAll(pieces(padded(15_500))));
    expectLinear(n, n4);
  });

  it('a ClientHello with thousands of distinct extensions is checked for duplicates in linear work', () => {
    const n = elementsScanned(receiveAll(helloRecords(manyExtensions(2_000), 1 << 14)));
    const n4 = elementsScanned(receiveAll(helloRecords(manyExtensions(8_000), 1 << 14)));
    expectLinear(n, n4);
  });

  it('a ClientHello with thousands of key shares and groups is checked in linear work', () => {
    const n = elementsScanned(receiveAll(helloRecords(manyShares(2_000), 1 << 14)));
    const n4 = elementsScanned(receiveAll(helloRecords(manyShares(8_000), 1 << 14)));
    expectLinear(n, n4);
  });
});
