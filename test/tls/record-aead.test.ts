/**
 * Whole-record AEAD: the native addon and the node:crypto reference give the same
 * bytes for every AEAD, open each other's records, refuse tampered ones, work in shared
 * memory and at offsets, throw before writing out of bounds, and reproduce RFC 8448
 * section 3's protected records.
 *
 * The native half runs unless BATON_NATIVE=0: an addon that is not built (or does not
 * load) FAILS these tests, so a CI run without the build cannot pass silently.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { aeadBackend, nativeAead } from '../../src/tls/crypto/native-aead.js';
import { nodeCryptoAead, recordAead, TAG_LEN, type AeadName, type RecordAead } from '../../src/tls/crypto/record-aead.js';
import { seededRandom } from '../../src/util/random.js';
import { field, step, traceSection } from '../vectors/rfc8448.js';

const NATIVE_OFF = process.env.BATON_NATIVE === '0';
const AEADS: readonly { name: AeadName; keyLen: number }[] = [
  { name: 'aes-128-gcm', keyLen: 16 },
  { name: 'aes-256-gcm', keyLen: 32 },
  { name: 'chacha20-poly1305', keyLen: 32 },
];
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

type Impl = 'native' | 'node:crypto';
const make = (impl: Impl, aead: AeadName, key: Uint8Array, iv: Uint8Array, direction: 'seal' | 'open' = 'seal'): RecordAead =>
  impl === 'native' ? nativeAead(aead, key, iv, direction) : nodeCryptoAead(aead, key, iv);
const IMPLS: readonly Impl[] = NATIVE_OFF ? ['node:crypto'] : ['native', 'node:crypto'];

/** Deterministic numbers from a seeded byte stream. */
function numbers(seed: string) {
  const r = seededRandom(seed);
  const u32 = () => Buffer.from(r.bytes(4)).readUInt32BE(0);
  const below = (n: number) => (n <= 0x1_0000_0000 ? u32() % n : (u32() * 0x1_0000_0000 + u32()) % n);
  return { bytes: r.bytes, below, pick: <T>(xs: readonly T[]): T => xs[below(xs.length)]! };
}

/** A sequence number: small, around 2^32, or near 2^53. */
function seqOf(n: ReturnType<typeof numbers>): number {
  switch (n.below(4)) {
    case 0:
      return n.below(1000);
    case 1:
      return 0x1_0000_0000 - 3 + n.below(6);
    case 2:
      return n.below(Number.MAX_SAFE_INTEGER);
    default:
      return Number.MAX_SAFE_INTEGER - n.below(1000);
  }
}

function lengthOf(n: ReturnType<typeof numbers>): number {
  return n.pick([0, 1, 15, 16, 17, 255, 16384, 16383, n.below(16385), n.below(16385), n.below(2000), n.below(64)]);
}

/** content || type || padding zeros, the TLSInnerPlaintext. */
function inner(content: Uint8Array, type: number, padding: number): Uint8Array {
  const b = new Uint8Array(content.length + 1 + padding);
  b.set(content);
  b[content.length] = type;
  return b;
}

/** A Uint8Array of `len` bytes at byte offset `offset` of a SharedArrayBuffer, filled with `fill`. */
function sharedView(len: number, offset: number, fill = 0xa5): Uint8Array {
  const v = new Uint8Array(new SharedArrayBuffer(offset + len + 7), offset, len);
  v.fill(fill);
  return v;
}

describe('the backend', () => {
  it.skipIf(NATIVE_OFF)('is the native addon (it must be built: node native/build.mjs, or npm install)', () => {
    expect(aeadBackend()).toEqual({ mode: 'native', reason: null });
    const k = new Uint8Array(16);
    expect(recordAead('aes-128-gcm', k, new Uint8Array(12)).constructor.name).toBe('NativeAead');
  });

  it('BATON_NATIVE=0 forces node:crypto (in a child process)', async () => {
    const code = `
      const m = await import('./src/tls/crypto/record-aead.ts');
      const a = m.recordAead('aes-128-gcm', new Uint8Array(16), new Uint8Array(12));
      console.log(JSON.stringify({ ...m.aeadBackend(), impl: a.constructor.name }));`;
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        cwd: ROOT,
        env: { ...process.env, BATON_NATIVE: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error('child timed out'));
      }, 20_000);
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      child.on('close', (status) => {
        clearTimeout(timer);
        if (status === 0) resolve(stdout.trim());
        else reject(new Error(`child exited ${status}: ${stderr}`));
      });
    });
    const got = JSON.parse(out.split('\n').pop()!) as { mode: string; reason: string; impl: string };
    expect(got.mode).toBe('node:crypto');
    expect(got.reason).toMatch(/BATON_NATIVE=0/);
    expect(got.impl).toBe('NodeCryptoAead');
  });
});

describe.each(AEADS)('$name: native and node:crypto', ({ name, keyLen }) => {
  const n = numbers(`record-aead ${name}`);
  const key = n.bytes(keyLen);
  const iv = n.bytes(12);

  it.skipIf(NATIVE_OFF)('seal byte-identical records and open each other back to the same inner plaintext (random cases)', () => {
    const native = nativeAead(name, key, iv);
    const fallback = nodeCryptoAead(name, key, iv);
    const nativeOpen = nativeAead(name, key, iv, 'open');
    for (let i = 0; i < 120; i++) {
      const seq = seqOf(n);
      const type = n.below(256);
      const content = n.bytes(lengthOf(n));
      const padding = n.pick([0, 0, 1, 300, n.below(301)]);
      const at = n.pick([0, 1, n.below(40)]);
      const total = 5 + content.length + 1 + padding + TAG_LEN;
      const a = new Uint8Array(at + total + 3).fill(0xee);
      const b = new Uint8Array(at + total + 3).fill(0xee);
      expect(native.sealRecord(seq, type, content, padding, a, at)).toBe(total);
      expect(fallback.sealRecord(seq, type, content, padding, b, at)).toBe(total);
      expect(hex(a)).toBe(hex(b)); // the same record, and the same untouched bytes around it
      expect([...a.subarray(at, at + 5)]).toEqual([0x17, 3, 3, (total - 5) >> 8, (total - 5) & 0xff]);

      const record = a.subarray(at, at + total);
      const want = hex(inner(content, type, padding));
      for (const opener of [nativeOpen, fallback, native]) {
        const outAt = n.below(9);
        const out = new Uint8Array(outAt + total);
        const len = opener.openRecord(seq, record, out, outAt);
        expect(len).toBe(content.length + 1 + padding);
        expect(hex(out.subarray(outAt, outAt + len))).toBe(want);
      }
    }
    for (const x of [native, fallback, nativeOpen]) x.free();
  });

  it('give -1 for a flipped bit in the header, body or tag, a wrong sequence number, or a short record', () => {
    const sealer = make(IMPLS[0]!, name, key, iv);
    const openers = IMPLS.map((impl) => make(impl, name, key, iv, 'open'));
    for (let i = 0; i < 60; i++) {
      const seq = seqOf(n);
      const content = n.bytes(n.pick([0, 3, 100, 16384, n.below(3000)]));
      const padding = n.below(20);
      const rec = new Uint8Array(5 + content.length + 1 + padding + TAG_LEN);
      sealer.sealRecord(seq, 23, content, padding, rec, 0);
      const region = n.pick(['header', 'body', 'tag'] as const);
      const [from, to] = region === 'header' ? [0, 5] : region === 'tag' ? [rec.length - TAG_LEN, rec.length] : [5, rec.length - TAG_LEN];
      const bad = Uint8Array.from(rec);
      bad[from + n.below(to - from)]! ^= 1 << n.below(8);
      for (const o of openers) {
        const out = new Uint8Array(rec.length);
        expect(o.openRecord(seq, bad, out, 0), `${region} ${o.constructor.name}`).toBe(-1);
        expect(o.openRecord(seq === 0 ? 1 : seq - 1, rec, out, 0)).toBe(-1);
        expect(o.openRecord(seq, rec, out, 0)).toBe(content.length + 1 + padding);
      }
    }
    for (const o of openers) {
      for (const len of [0, 4, 5, 5 + TAG_LEN - 1]) expect(o.openRecord(0, new Uint8Array(len), new Uint8Array(64), 0)).toBe(-1);
    }
  });

  it.skipIf(NATIVE_OFF)('seal into and open from views of a SharedArrayBuffer at non-zero offsets', () => {
    const native = nativeAead(name, key, iv);
    const fallback = nodeCryptoAead(name, key, iv);
    const nativeOpen = nativeAead(name, key, iv, 'open');
    for (const size of [0, 1, 1000, 16384]) {
      const seq = seqOf(n);
      const content = sharedView(size, 13);
      content.set(n.bytes(size));
      const total = 5 + size + 1 + 7 + TAG_LEN;
      const a = sharedView(total + 50, 3);
      const b = sharedView(total + 50, 3);
      expect(native.sealRecord(seq, 22, content, 7, a, 21)).toBe(total);
      expect(fallback.sealRecord(seq, 22, content, 7, b, 21)).toBe(total);
      expect(hex(a)).toBe(hex(b));
      expect(a[20]).toBe(0xa5);
      expect(a[21 + total]).toBe(0xa5);
      const record = a.subarray(21, 21 + total);
      for (const o of [nativeOpen, fallback]) {
        const out = sharedView(total, 5);
        expect(o.openRecord(seq, record, out, 11)).toBe(size + 8);
        expect(hex(out.subarray(11, 11 + size + 8))).toBe(hex(inner(content, 22, 7)));
        expect(out[10]).toBe(0xa5);
        expect(out[11 + size + 8]).toBe(0xa5);
      }
    }
  });

  it('seal in place (content already where the body goes) and open in place, like each other', () => {
    for (const impl of IMPLS) {
      const s = make(impl, name, key, iv);
      const o = make(impl, name, key, iv, 'open');
      const content = n.bytes(5000);
      const buf = new Uint8Array(9 + 5 + 5000 + 1 + 2 + TAG_LEN);
      buf.set(content, 9 + 5);
      const ref = new Uint8Array(buf.length);
      nodeCryptoAead(name, key, iv).sealRecord(77, 23, content, 2, ref, 9);
      expect(s.sealRecord(77, 23, buf.subarray(9 + 5, 9 + 5 + 5000), 2, buf, 9)).toBe(buf.length - 9);
      expect(hex(buf), impl).toBe(hex(ref));
      // open over the record itself, plaintext where the body was
      const rec = buf.subarray(9);
      expect(o.openRecord(77, rec, buf, 9 + 5)).toBe(5003);
      expect(hex(buf.subarray(14, 14 + 5003))).toBe(hex(inner(content, 23, 2)));
      // and shifted back onto the header (out overlapping the record, behind it)
      const again = Uint8Array.from(ref);
      expect(o.openRecord(77, again.subarray(9), again, 9)).toBe(5003);
      expect(hex(again.subarray(9, 9 + 5003))).toBe(hex(inner(content, 23, 2)));
    }
  });

  it('throw before writing anything for out-of-range arguments', () => {
    const content = n.bytes(100);
    const total = 5 + 100 + 1 + TAG_LEN;
    const sealCases: [string, (a: RecordAead, out: Uint8Array) => unknown][] = [
      ['out one byte short', (a, out) => a.sealRecord(0, 23, content, 0, out.subarray(0, total - 1), 0)],
      ['at past the end', (a, out) => a.sealRecord(0, 23, content, 0, out, out.length + 1)],
      ['record ends past out', (a, out) => a.sealRecord(0, 23, content, 0, out, out.length - total + 1)],
      ['negative at', (a, out) => a.sealRecord(0, 23, content, 0, out, -1)],
      ['fractional at', (a, out) => a.sealRecord(0, 23, content, 0, out, 0.5)],
      ['NaN at', (a, out) => a.sealRecord(0, 23, content, 0, out, NaN)],
      ['seq 2^53', (a, out) => a.sealRecord(2 ** 53, 23, content, 0, out, 0)],
      ['negative seq', (a, out) => a.sealRecord(-1, 23, content, 0, out, 0)],
      ['fractional seq', (a, out) => a.sealRecord(1.5, 23, content, 0, out, 0)],
      ['type 256', (a, out) => a.sealRecord(0, 256, content, 0, out, 0)],
      ['negative padding', (a, out) => a.sealRecord(0, 23, content, -1, out, 0)],
      ['body over 65535 bytes', (a, out) => a.sealRecord(0, 23, content, 65535 - 100 - 16, out, 0)],
    ];
    const sealed = new Uint8Array(total);
    nodeCryptoAead(name, key, iv).sealRecord(5, 23, content, 0, sealed, 0);
    const openCases: [string, (a: RecordAead, out: Uint8Array) => unknown][] = [
      ['open: out one byte short', (a, out) => a.openRecord(5, sealed, out.subarray(0, 100), 0)],
      ['open: at past the end', (a, out) => a.openRecord(5, sealed, out, out.length + 1)],
      ['open: plaintext ends past out', (a, out) => a.openRecord(5, sealed, out, out.length - 100)],
      ['open: negative at', (a, out) => a.openRecord(5, sealed, out, -2)],
      ['open: seq 2^53', (a, out) => a.openRecord(2 ** 53, sealed, out, 0)],
      ['open: record over 5 + 65535 bytes', (a, out) => a.openRecord(5, new Uint8Array(5 + 65536), out, 0)],
    ];
    for (const impl of IMPLS) {
      const a = make(impl, name, key, iv);
      for (const [what, call] of [...sealCases, ...openCases]) {
        const out = sharedView(total + 20, 1, 0x5c);
        expect(() => call(a, out), `${impl}: ${what}`).toThrow(RangeError);
        expect(out.every((x) => x === 0x5c), `${impl}: ${what} wrote`).toBe(true);
      }
      a.free();
      a.free();
      expect(() => a.sealRecord(0, 23, content, 0, new Uint8Array(total), 0)).toThrow(TypeError);
      expect(() => a.openRecord(5, sealed, new Uint8Array(total), 0)).toThrow(TypeError);
    }
  });
});

describe.skipIf(NATIVE_OFF)('the native addon itself', () => {
  const addonPath = `${ROOT}build/Release/baton_record_aead.node`;

  it('refuses wrong keys, IVs, names, directions, non-Uint8Array views and foreign objects', () => {
    expect(() => nativeAead('aes-128-gcm', new Uint8Array(32), new Uint8Array(12))).toThrow(RangeError);
    expect(() => nativeAead('aes-256-gcm', new Uint8Array(16), new Uint8Array(12))).toThrow(RangeError);
    expect(() => nativeAead('chacha20-poly1305', new Uint8Array(32), new Uint8Array(8))).toThrow(RangeError);
    expect(() => nativeAead('aes-192-gcm' as AeadName, new Uint8Array(24), new Uint8Array(12))).toThrow(TypeError);
    expect(() => nativeAead('aes-128-gcm', new Uint8Array(16), new Uint8Array(12), 'both' as 'seal')).toThrow(TypeError);
    const a = nativeAead('aes-128-gcm', new Uint8Array(16), new Uint8Array(12));
    const words = new Uint16Array(64) as unknown as Uint8Array;
    expect(() => a.sealRecord(0, 23, words, 0, new Uint8Array(64), 0)).toThrow(TypeError);
    expect(() => a.sealRecord(0, 23, new Uint8Array(1), 0, words, 0)).toThrow(TypeError);
    expect(() => a.sealRecord('0' as unknown as number, 23, new Uint8Array(1), 0, new Uint8Array(64), 0)).toThrow(TypeError);
    const addon = createRequireAddon(addonPath);
    expect(() => addon.sealRecord({}, 0, 23, new Uint8Array(1), 0, new Uint8Array(64), 0)).toThrow(TypeError);
    expect(() => addon.free({})).toThrow(TypeError);
    a.free();
  });

  it('works in worker threads, gives the main thread its bytes, and survives their termination', async () => {
    const key = new Uint8Array(32).fill(9);
    const iv = new Uint8Array(12).fill(4);
    const content = new Uint8Array(3000).fill(1);
    const want = new Uint8Array(5 + 3000 + 1 + TAG_LEN);
    nodeCryptoAead('chacha20-poly1305', key, iv).sealRecord(2 ** 40, 23, content, 0, want, 0);
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const a = require(workerData.addonPath);
      const c = a.create('chacha20-poly1305', workerData.key, workerData.iv, 'seal');
      for (let i = 0; i < 50; i++) a.create('aes-128-gcm', new Uint8Array(16), new Uint8Array(12), 'open'); // left to finalizers
      const out = new Uint8Array(new SharedArrayBuffer(${want.length}));
      a.sealRecord(c, 2 ** 40, 23, workerData.content, 0, out, 0);
      parentPort.postMessage(out);
      setInterval(() => {}, 1000);`;
    const results = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<Uint8Array>((resolve, reject) => {
            const w = new Worker(code, { eval: true, workerData: { addonPath, key, iv, content } });
            w.once('message', (m: Uint8Array) => void w.terminate().then(() => resolve(m)));
            w.once('error', reject);
          }),
      ),
    );
    for (const r of results) expect(hex(r)).toBe(hex(want));
  });

  it('frees contexts nobody freed, by the finalizer (a child process creates 300k and collects them)', async () => {
    const code = `
      const a = require(${JSON.stringify(addonPath)});
      const k = new Uint8Array(32), iv = new Uint8Array(12);
      const rss0 = process.memoryUsage().rss;
      for (let round = 0; round < 30; round++) {
        for (let i = 0; i < 10000; i++) a.create('aes-256-gcm', k, iv, 'seal');
        await new Promise((r) => setImmediate(r));
        globalThis.gc();
      }
      await new Promise((r) => setTimeout(r, 50));
      globalThis.gc();
      console.log(Math.round((process.memoryUsage().rss - rss0) / 1048576));`;
    const grewMiB = await new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, ['--expose-gc', '--input-type=commonjs', '-e', `(async () => {${code}})()`], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error('child timed out'));
      }, 30_000);
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.on('close', (status) => {
        clearTimeout(timer);
        if (status === 0) resolve(Number(stdout.trim()));
        else reject(new Error(`child exited ${status}`));
      });
    });
    // Without the finalizer 300k contexts hold roughly 300 MiB of OpenSSL state.
    expect(grewMiB).toBeLessThan(120);
  });
});

interface RawAddon {
  sealRecord(ctx: object, ...rest: unknown[]): number;
  free(ctx: object): void;
}
function createRequireAddon(path: string): RawAddon {
  return createRequire(import.meta.url)(path) as RawAddon;
}

describe('RFC 8448 section 3: the trace\'s protected records', () => {
  const t = traceSection(3);
  const keys = (actor: 'client' | 'server', title: string) => {
    const s = step(t, actor, title);
    return { key: field(s, 'key expanded'), iv: field(s, 'iv expanded') };
  };
  const serverHs = keys('server', 'derive write traffic keys for handshake data');
  const serverApp = keys('server', 'derive write traffic keys for application data');
  const clientHs = keys('server', 'derive read traffic keys for handshake data');
  const clientApp = keys('client', 'derive write traffic keys for application data');
  const sent = (actor: 'client' | 'server', title: string, nth: number) => {
    const s = step(t, actor, title, nth);
    return { payload: field(s, 'payload'), record: field(s, 'complete record') };
  };
  // [what, keys, seq, content type, the trace's send step]
  const server = [
    ['EncryptedExtensions..Finished', serverHs, 0, 22, sent('server', 'send handshake record', 1)],
    ['NewSessionTicket', serverApp, 0, 22, sent('server', 'send handshake record', 2)],
    ['application data', serverApp, 1, 23, sent('server', 'send application_data record', 0)],
    ['alert', serverApp, 2, 21, sent('server', 'send alert record', 0)],
  ] as const;
  const client = [
    ['Finished', clientHs, 0, 22, sent('client', 'send handshake record', 1)],
    ['application data', clientApp, 0, 23, sent('client', 'send application_data record', 0)],
    ['alert', clientApp, 1, 21, sent('client', 'send alert record', 0)],
  ] as const;

  it.each(IMPLS)('%s seals the server\'s records byte for byte', (impl) => {
    for (const [what, k, seq, type, { payload, record }] of server) {
      const a = make(impl, 'aes-128-gcm', k.key, k.iv);
      const out = new Uint8Array(record.length + 4);
      expect(a.sealRecord(seq, type, payload, 0, out, 4), what).toBe(record.length);
      expect(hex(out.subarray(4)), what).toBe(hex(record));
      a.free();
    }
  });

  it.each(IMPLS)('%s opens the client\'s records (its Finished first) and refuses them under the wrong sequence number', (impl) => {
    for (const [what, k, seq, type, { payload, record }] of client) {
      const a = make(impl, 'aes-128-gcm', k.key, k.iv, 'open');
      const out = new Uint8Array(record.length);
      expect(a.openRecord(seq, record, out, 0), what).toBe(payload.length + 1);
      expect(hex(out.subarray(0, payload.length + 1)), what).toBe(hex(inner(payload, type, 0)));
      expect(a.openRecord(seq + 1, record, out, 0), what).toBe(-1);
      a.free();
    }
  });
});
