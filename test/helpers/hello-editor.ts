/**
 * A small ClientHello editor for hand-built test input: a record holding one
 * ClientHello <-> its parts, every length recomputed on encode; and the record
 * framing around it.
 */
import type { TlsOutput } from '../../src/tls/index.js';
import { Reader } from '../../src/util/reader.js';
import { Writer } from '../../src/util/writer.js';

export interface Extension {
  readonly type: number;
  readonly data: Uint8Array;
}

export interface HelloParts {
  readonly recordVersion: number;
  readonly legacyVersion: number;
  readonly random: Uint8Array;
  readonly sessionId: Uint8Array;
  readonly cipherSuites: readonly number[];
  readonly compression: Uint8Array;
  readonly extensions: readonly Extension[];
}


/** The last whole record of an output (sealed records arrive as several pieces). */
export function lastRecord(out: TlsOutput): Uint8Array | undefined {
  const bytes = Buffer.concat(out.toClient);
  let at = 0;
  let last: Uint8Array | undefined;
  while (at + 5 <= bytes.length) {
    const end = at + 5 + bytes.readUInt16BE(at + 3);
    last = bytes.subarray(at, end);
    at = end;
  }
  return last;
}

/** Decodes a record that holds exactly one ClientHello. */
export function parseHelloRecord(record: Uint8Array): HelloParts {
  const rec = new Reader(record);
  if (rec.u8() !== 22) throw new Error('not a handshake record');
  const recordVersion = rec.u16();
  const body = new Reader(rec.vec(2, 'fragment'));
  rec.end('record');
  if (body.u8() !== 1) throw new Error('not a ClientHello');
  const r = body.sub(3, 'ClientHello');
  body.end('handshake');
  const legacyVersion = r.u16();
  const random = r.bytes(32);
  const sessionId = r.vec(1, 'session id');
  const suites = r.sub(2, 'cipher suites');
  const cipherSuites: number[] = [];
  while (!suites.atEnd()) cipherSuites.push(suites.u16());
  const compression = r.vec(1, 'compression');
  const exts = r.sub(2, 'extensions');
  r.end('ClientHello');
  const extensions: Extension[] = [];
  while (!exts.atEnd()) extensions.push({ type: exts.u16(), data: exts.vec(2, 'extension') });
  return { recordVersion, legacyVersion, random, sessionId, cipherSuites, compression, extensions };
}

/** The ClientHello handshake message (with its 4-byte header). */
export function helloMessage(p: HelloParts): Uint8Array {
  return new Writer(512)
    .u8(1)
    .vec(3, (w) => {
      w.u16(p.legacyVersion).bytes(p.random).vecBytes(1, p.sessionId);
      w.vec(2, (s) => p.cipherSuites.forEach((c) => s.u16(c)));
      w.vecBytes(1, p.compression);
      w.vec(2, (e) => p.extensions.forEach((x) => e.u16(x.type).vecBytes(2, x.data)));
    })
    .finish();
}

export function plainRecord(type: number, fragment: Uint8Array, version = 0x0303): Uint8Array {
  return new Writer(fragment.length + 5).u8(type).u16(version).vecBytes(2, fragment).finish();
}

export function helloRecord(p: HelloParts): Uint8Array {
  return plainRecord(22, helloMessage(p), p.recordVersion);
}

/** Offsets in the encoded record: the extensions block length and each extension's start. */
export function helloLayout(p: HelloParts): { extensionsLengthAt: number; extensionAt: number[] } {
  const extensionsLengthAt = 5 + 4 + 2 + 32 + 1 + p.sessionId.length + 2 + 2 * p.cipherSuites.length + 1 + p.compression.length;
  const extensionAt: number[] = [];
  let at = extensionsLengthAt + 2;
  for (const x of p.extensions) {
    extensionAt.push(at);
    at += 4 + x.data.length;
  }
  return { extensionsLengthAt, extensionAt };
}

export const without = (p: HelloParts, type: number): HelloParts => ({ ...p, extensions: p.extensions.filter((x) => x.type !== type) });
export const withExtensions = (p: HelloParts, extensions: readonly Extension[]): HelloParts => ({ ...p, extensions });
export const ext = (p: HelloParts, type: number): Extension => {
  const x = p.extensions.find((e) => e.type === type);
  if (!x) throw new Error(`the recorded ClientHello has no extension ${type}`);
  return x;
};
