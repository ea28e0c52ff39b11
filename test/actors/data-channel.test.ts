import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ActorSystem,
  createDataChannel,
  createRing,
  defineActor,
  mainEnd,
  RingReader,
  RingWriter,
  workerEnd,
  type ChannelEnd,
  type SupervisorEvent,
  type WorkerActorOptions,
} from '../../src/actors/index.js';
import { emitted, type DataEchoInfo, type DataEchoStats } from '../fixtures/actors/data-echo.js';
import { PROBE, waitFor } from './helpers.js';

const DATA_ECHO = new URL('../fixtures/actors/data-echo.ts', import.meta.url);
const TURN_BLOCKER = new URL('../fixtures/actors/turn-blocker.ts', import.meta.url);

/** A writer and a reader over one fresh ring, on this thread. */
function ring(bytes: number): { w: RingWriter; r: RingReader } {
  const sab = createRing(bytes);
  return { w: new RingWriter(sab), r: new RingReader(sab) };
}

/** Writes one entry of `n` bytes whose content is `fill` (or -1 when there is no room). */
function put(w: RingWriter, n: number, fill: number): number {
  const at = w.reserve(n);
  if (at < 0) return -1;
  w.bytes.fill(fill & 0xff, at, at + n);
  w.commit(n);
  return at;
}

/** Reads one entry; returns [offset, length, first byte] or undefined when none. */
function take(r: RingReader): { at: number; n: number; bytes: Uint8Array } | undefined {
  const at = r.next();
  if (at < 0) return undefined;
  return { at, n: r.length, bytes: r.bytes.slice(at, at + r.length) };
}

/** Settles within a few turns of the event loop, or reports that it did not. */
async function settlesSoon(p: Promise<unknown>, turns = 20): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < turns && !done; i++) await new Promise((r) => setImmediate(r));
  return done;
}

/** A rejection at `ms` for racing against waits (cancel it when done). */
function deadline(ms: number, what: () => string): { promise: Promise<never>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`deadline of ${ms} ms passed: ${what()}`)), ms);
  });
  promise.catch(() => {});
  return { promise, cancel: () => clearTimeout(timer) };
}

const NEVER = new Promise<never>(() => {});

describe('data channel ring (one thread)', () => {
  it('sizes: capacity rounds up to 64, maxEntry is half less 4, bad sizes are refused', () => {
    const { w, r } = ring(1000);
    expect(w.capacity).toBe(1024);
    expect(r.capacity).toBe(1024);
    expect(w.maxEntry).toBe(508);
    expect(() => createRing(63)).toThrow(RangeError);
    expect(() => createRing(1.5 * 1024)).not.toThrow();
    expect(() => createRing(Number.NaN)).toThrow(RangeError);
    expect(() => new RingWriter(new SharedArrayBuffer(1024))).toThrow(TypeError);
    expect(() => new RingReader(new ArrayBuffer(1024) as unknown as SharedArrayBuffer)).toThrow(TypeError);
    const ch = createDataChannel(4096);
    const m = mainEnd(ch);
    const k = workerEnd(ch);
    expect(m.writer.buffer).toBe(k.reader.buffer);
    expect(m.reader.buffer).toBe(k.writer.buffer);
    expect(m.writer.buffer).not.toBe(m.reader.buffer);
  });

  it('passes entries in order with their content, published only by publish()', () => {
    const { w, r } = ring(1024);
    expect(r.next()).toBe(-1);
    for (let i = 0; i < 5; i++) put(w, i * 10, i + 1);
    expect(r.next()).toBe(-1);
    expect(r.ready).toBe(false);
    w.publish();
    expect(r.ready).toBe(true);
    for (let i = 0; i < 5; i++) {
      const e = take(r)!;
      expect(e.n).toBe(i * 10);
      expect([...e.bytes]).toEqual(new Array(i * 10).fill(i + 1));
    }
    expect(r.next()).toBe(-1);
  });

  it('an entry that does not fit before the end goes to offset 0 behind a wrap marker', () => {
    const { w, r } = ring(256);
    // 3 entries of 60 bytes take 64 ring bytes each: 192 used, 64 left at the end.
    for (let i = 0; i < 3; i++) expect(put(w, 60, i)).toBe(i * 64 + 4);
    w.publish();
    for (let i = 0; i < 3; i++) take(r);
    r.release();
    // 100 bytes (104 ring bytes) do not fit in the last 64: the entry goes to 0.
    expect(put(w, 100, 9)).toBe(4);
    // Contiguous again after it.
    expect(put(w, 20, 10)).toBe(104 + 4);
    w.publish();
    expect(take(r)).toMatchObject({ at: 4, n: 100 });
    expect(take(r)).toMatchObject({ at: 108, n: 20 });
    expect(r.next()).toBe(-1);
  });

  it('exact fill: the ring holds capacity - 8 bytes of entries, never all of it', () => {
    const { w, r } = ring(256);
    expect(put(w, 120, 1)).toBe(4); // 128 ring bytes
    expect(put(w, 116, 2)).toBe(132); // 120 ring bytes: 248 used
    // 8 more ring bytes would bring the write index round to the read index (= empty).
    expect(w.reserve(0)).toBe(-1);
    w.publish();
    expect(take(r)).toMatchObject({ at: 4, n: 120 });
    expect(w.reserve(0)).toBe(-1); // read but not released: still no room
    r.release();
    // Read index at 128: the last 8 bytes, ending exactly at the end, now fit.
    expect(put(w, 4, 3)).toBe(252);
    expect(put(w, 124, 4)).toBe(-1); // 128 more from offset 0 would reach the read index
    expect(put(w, 116, 4)).toBe(4); // 120 fit
    w.publish();
    expect(take(r)).toMatchObject({ at: 132, n: 116 });
    expect(take(r)).toMatchObject({ at: 252, n: 4, bytes: new Uint8Array([3, 3, 3, 3]) });
    expect(take(r)).toMatchObject({ at: 4, n: 116 });
    expect(r.next()).toBe(-1);
  });

  it('reserve larger than the room returns -1 until the consumer releases', () => {
    const { w, r } = ring(1024);
    for (let i = 0; i < 7; i++) expect(put(w, 124, i)).toBeGreaterThanOrEqual(0); // 7 x 128
    expect(w.reserve(124)).toBe(-1); // 896 used, 128 left but one 128 would fill the ring
    expect(w.reserve(116)).toBeGreaterThanOrEqual(0); // 120 ring bytes fit
    expect(w.reserve(124)).toBe(-1);
    w.publish();
    take(r);
    expect(w.reserve(124)).toBe(-1); // next() alone gives no room back
    r.release();
    expect(w.reserve(124)).toBeGreaterThanOrEqual(0);
  });

  it('commit shorter than reserved: the next entry follows the short one', () => {
    const { w, r } = ring(1024);
    const a = w.reserve(400);
    w.bytes.fill(1, a, a + 10);
    w.commit(10); // 16 ring bytes
    const b = w.reserve(400);
    expect(b).toBe(a + 16);
    w.bytes.fill(2, b, b + 3);
    w.commit(3);
    w.publish();
    expect(take(r)).toMatchObject({ at: a, n: 10 });
    expect(take(r)).toMatchObject({ at: b, n: 3, bytes: new Uint8Array([2, 2, 2]) });
    expect(() => w.commit(1)).toThrow(RangeError); // nothing reserved
    w.reserve(8);
    expect(() => w.commit(9)).toThrow(RangeError); // more than reserved
    expect(() => w.reserve(-1)).toThrow(RangeError);
    expect(() => w.reserve(1.5)).toThrow(RangeError);
  });

  it('a second reserve replaces the first; nothing reserved or committed is visible unpublished', () => {
    const { w, r } = ring(1024);
    const a = w.reserve(500);
    expect(w.reserve(8)).toBe(a);
    w.commit(8);
    expect(r.next()).toBe(-1);
    // The producer dies here: a new producer over the same ring starts after what was
    // published (nothing), and its entry is the only one the consumer sees.
    const w2 = new RingWriter(w.buffer);
    put(w2, 5, 7);
    w2.publish();
    expect(take(r)).toMatchObject({ at: a, n: 5, bytes: new Uint8Array([7, 7, 7, 7, 7]) });
    expect(r.next()).toBe(-1);
    // A reader over the same ring resumes after what was released.
    r.release();
    put(w2, 1, 1);
    w2.publish();
    expect(take(new RingReader(w.buffer))).toMatchObject({ n: 1 });
  });

  it('maxEntry fits an empty ring from every position; maxEntry + 1 throws a RangeError', () => {
    const cap = 512;
    const { w, r } = ring(cap);
    const max = w.maxEntry;
    expect(max).toBe(252);
    let head = 0;
    /** Passes one entry through (written, published, read, released); returns its offset. */
    const through = (n: number): number => {
      const at = w.reserve(n);
      expect(at, `${n} bytes with the empty ring at ${head}`).toBeGreaterThanOrEqual(0);
      w.commit(n);
      w.publish();
      expect(take(r)).toMatchObject({ at, n });
      r.release();
      head = (at - 4 + ((n + 11) & ~7)) % cap;
      return at;
    };
    for (let pos = 0; pos < cap; pos += 8) {
      // Fillers that never wrap bring the empty ring's indices to `pos`.
      while (head !== pos) through(Math.min((pos - head + cap) % cap, cap - head, 256) - 4);
      const at = through(max);
      // Contiguous when it fits before the end, else at 0 after a wrap marker.
      expect(at - 4).toBe(pos + 256 <= cap ? pos : 0);
    }
    expect(() => w.reserve(max + 1)).toThrow(RangeError);
    expect(() => w.reserve(max + 1)).toThrow(/maxEntry 252/);
    // From the middle, maxEntry + 1 (264 ring bytes) could never fit, not even after a wrap.
    while (head !== 256) through(Math.min((256 - head + cap) % cap, cap - head, 256) - 4);
    expect(w.maxEntry + 1 + 4 + 4).toBeGreaterThan(cap - head);
  });

  it('model check: random reserve/commit/publish/next/release sequences match a queue', () => {
    const size = (n: number) => (n + 11) & ~7;
    fc.assert(
      fc.property(
        fc.constantFrom(64, 128, 256, 1024),
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('put' as const), n: fc.nat(600), short: fc.nat(600), k: fc.nat(3) }),
            fc.record({ op: fc.constant('read' as const), k: fc.integer({ min: 1, max: 8 }) }),
            fc.record({ op: fc.constant('release' as const) }),
          ),
          { maxLength: 300 },
        ),
        (cap, ops) => {
          const { w, r } = ring(cap);
          const committed: Uint8Array[] = []; // committed, not yet published
          const visible: Uint8Array[] = []; // published, not yet read
          // The model: where the producer and the consumer stand, and ring bytes in use
          // (entries and wrap waste) from the released read index to the head.
          let head = 0;
          let rpos = 0;
          let used = 0;
          let unreleased = 0;
          let stamp = 1;
          for (const o of ops) {
            if (o.op === 'put') {
              const n = o.n % (w.maxEntry + 1);
              const at = w.reserve(n);
              if (at < 0) {
                // Refused only when the free bytes, split at most in two pieces, are each too small.
                expect(cap - used).toBeLessThanOrEqual(2 * size(n));
                continue;
              }
              const len = o.short % (n + 1);
              if (at - 4 !== head) {
                // Wrapped: only when it did not fit before the end.
                expect(at - 4).toBe(0);
                expect(cap - head).toBeLessThanOrEqual(size(n));
                used += cap - head;
              }
              const body = Uint8Array.from({ length: len }, (_, j) => (stamp * 31 + j) & 0xff);
              stamp++;
              w.bytes.set(body, at);
              w.commit(len);
              head = (at - 4 + size(len)) % cap;
              used += size(len);
              expect(used).toBeLessThan(cap); // never completely full
              committed.push(body);
              if (o.k !== 0) {
                w.publish(o.k === 1);
                visible.push(...committed.splice(0));
              }
            } else if (o.op === 'read') {
              for (let i = 0; i < o.k; i++) {
                const at = r.next();
                if (visible.length === 0) {
                  expect(at).toBe(-1);
                  break;
                }
                const want = visible.shift()!;
                if (at - 4 !== rpos) {
                  expect(at - 4).toBe(0);
                  unreleased += cap - rpos;
                }
                expect(r.length).toBe(want.length);
                expect(r.bytes.subarray(at, at + r.length)).toEqual(want);
                unreleased += size(want.length);
                rpos = (at - 4 + size(want.length)) % cap;
              }
            } else {
              r.release();
              used -= unreleased;
              unreleased = 0;
            }
          }
          w.publish();
          visible.push(...committed.splice(0));
          for (const want of visible) {
            const at = r.next();
            expect(at).toBeGreaterThanOrEqual(0);
            expect(r.bytes.subarray(at, at + r.length)).toEqual(want);
          }
          expect(r.next()).toBe(-1);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('wait() resolves at once with an entry there, on publish(), and not on publish(false)', async () => {
    const { w, r } = ring(1024);
    put(w, 1, 1);
    w.publish();
    expect(await settlesSoon(r.wait(), 1)).toBe(true);
    take(r);
    r.release();
    const p = r.wait();
    expect(r.wait()).toBe(p); // one pending wait, one promise
    expect(w.consumerAsleep).toBe(true);
    put(w, 1, 2);
    w.publish(false);
    expect(await settlesSoon(p, 5)).toBe(false);
    w.publish();
    expect(await settlesSoon(p)).toBe(true);
    expect(w.wakeups).toBe(1);
    expect(w.consumerAsleep).toBe(false);
    // An awake consumer costs the producer no wake-up.
    take(r);
    put(w, 1, 3);
    w.publish();
    put(w, 1, 3);
    w.publish();
    expect(w.wakeups).toBe(1);
  });

  it('waitForRoom() resolves once the consumer releases, publishing what was committed first', async () => {
    const { w, r } = ring(256);
    put(w, 120, 1);
    put(w, 116, 2); // 248 of 256 ring bytes
    expect(w.reserve(0)).toBe(-1);
    const p = w.waitForRoom();
    expect(w.waitForRoom()).toBe(p);
    expect(await settlesSoon(p, 5)).toBe(false);
    // waitForRoom published the entries: the consumer can read them.
    expect(take(r)).toMatchObject({ n: 120 });
    expect(await settlesSoon(p, 5)).toBe(false); // read, not released
    r.release();
    expect(await settlesSoon(p)).toBe(true);
    expect(r.wakeups).toBe(1);
    expect(put(w, 100, 3)).toBe(4); // after a wrap
    w.publish();
    take(r);
    r.release();
    // Room released before the wait: resolves at once.
    expect(await settlesSoon(w.waitForRoom(), 1)).toBe(true);
    expect(r.wakeups).toBe(1);
  });

  it('close() wakes waiters on both sides and keeps published entries readable', async () => {
    const { w, r } = ring(256);
    const waiting = r.wait();
    put(w, 120, 5);
    put(w, 116, 6);
    w.publish(false);
    const room = w.waitForRoom(); // publishes what is there, and so wakes the reader
    expect(await settlesSoon(waiting)).toBe(true);
    expect(await settlesSoon(room, 5)).toBe(false);
    r.close();
    expect(await settlesSoon(room)).toBe(true);
    expect(w.closed).toBe(true);
    expect(r.closed).toBe(true);
    expect(take(r)).toMatchObject({ n: 120 });
    expect(take(r)).toMatchObject({ n: 116 });
    expect(await settlesSoon(r.wait(), 1)).toBe(true);
  });

  it('fence: refused to a producer without turns; between turns at once, and no turn begins after it', async () => {
    const { w, r } = ring(256);
    expect(await r.fence(1_000)).toBe(false); // never opted in: only its thread's end tells
    w.useTurns();
    expect(w.beginTurn()).toBe(true);
    w.endTurn();
    expect(await r.fence(1_000)).toBe(true);
    expect(w.beginTurn()).toBe(false);
    expect(w.beginTurn()).toBe(false);
    expect(await r.fence(1_000)).toBe(true); // idempotent
  });

  it('fence in a turn: resolves true when the turn ends, and the next turn is refused', async () => {
    const { w, r } = ring(256);
    w.useTurns();
    expect(w.beginTurn()).toBe(true);
    const fenced = r.fence(10_000);
    expect(await settlesSoon(fenced, 20)).toBe(false); // the turn is still running
    w.endTurn();
    expect(await settlesSoon(fenced)).toBe(true);
    expect(await fenced).toBe(true);
    expect(w.beginTurn()).toBe(false);
  });

  it('fence in a turn that never ends (the thread died in it): false once the deadline passes', async () => {
    const { w, r } = ring(256);
    w.useTurns();
    expect(w.beginTurn()).toBe(true);
    const t0 = performance.now();
    expect(await r.fence(30)).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
    // Still asked for: a turn that ends late fences then.
    w.endTurn();
    expect(await r.fence(1_000)).toBe(true);
    expect(w.beginTurn()).toBe(false);
  });
});

// ---- through the runtime -----------------------------------------------------------

let sys: ActorSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

/** Byte `j` of stress entry `seq`. */
function gen(seq: number, j: number): number {
  return j < 4 ? (seq >>> (8 * j)) & 0xff : (seq * 7 + j * 13) & 0xff;
}

/** xorshift32, for sizes that are random but the same on every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/**
 * Sends `sizes.length` entries through `ch` and checks every echo (order, length,
 * content XOR `xor`), draining output whenever input has no room, within `ms`.
 */
async function echoThrough(ch: ChannelEnd, sizes: Uint32Array, xor: number, ms: number): Promise<void> {
  const { writer, reader } = ch;
  const total = sizes.length;
  const wb = writer.bytes;
  const rb = reader.bytes;
  let sent = 0;
  let got = 0;
  const end = Date.now() + ms;
  const dl = deadline(ms, () => `sent ${sent}, echoed ${got} of ${total}`);
  try {
    let lastYield = Date.now();
    while (got < total) {
      let progressed = false;
      while (sent < total) {
        const n = sizes[sent]!;
        const at = writer.reserve(n);
        if (at < 0) break;
        for (let j = 0; j < n; j++) wb[at + j] = gen(sent, j);
        writer.commit(n);
        sent++;
        progressed = true;
        if (sent % 64 === 0) writer.publish();
      }
      writer.publish();
      let off: number;
      while ((off = reader.next()) >= 0) {
        const n = reader.length;
        if (n !== sizes[got]) throw new Error(`echo ${got}: ${n} bytes, expected ${sizes[got]}`);
        for (let j = 0; j < n; j++) {
          if (rb[off + j] !== (gen(got, j) ^ xor)) throw new Error(`echo ${got} byte ${j}: ${rb[off + j]}, expected ${gen(got, j) ^ xor}`);
        }
        got++;
        progressed = true;
      }
      reader.release();
      const now = Date.now();
      if (now > end) throw new Error(`stuck: sent ${sent}, echoed ${got} of ${total}`);
      if (!progressed) await Promise.race([reader.wait(), sent < total ? writer.waitForRoom() : NEVER, dl.promise]);
      else if (now - lastYield > 10) {
        await new Promise((r) => setImmediate(r));
        lastYield = Date.now();
      }
    }
  } finally {
    dl.cancel();
  }
}

const ECHO: WorkerActorOptions = { module: DATA_ECHO, channel: { bytes: 16 * 1024 }, args: { xor: 0x5a } };

describe('data channel through the runtime (two threads)', () => {
  it('echoes 200k entries of random sizes up to maxEntry, in order and intact', { timeout: 150_000 }, async () => {
    sys = new ActorSystem();
    const ref = await sys.spawnWorker(ECHO);
    const ch = sys.channelOf(ref)!;
    expect(ch).toBeDefined();
    const max = ch.writer.maxEntry;
    expect(max).toBe(8 * 1024 - 4);
    const rand = rng(0xbada55);
    const N = 200_000;
    const sizes = new Uint32Array(N);
    for (let i = 0; i < N; i++) {
      // Mostly small (log-uniform), with the extremes on a schedule: empty and maxEntry.
      sizes[i] = i % 997 === 0 ? 0 : i % 1009 === 0 ? max : i % 1013 === 0 ? max - 1 : Math.floor(Math.exp(rand() * Math.log(max + 1))) - 1;
    }
    const t0 = Date.now();
    await echoThrough(ch, sizes, 0x5a, 120_000);
    const stats = await sys.ask<DataEchoStats>(ref, { type: 'stats' });
    expect(stats.echoed).toBe(N);
    console.log(
      `data channel stress: ${N} entries in ${Date.now() - t0} ms; main woke the worker ${ch.writer.wakeups + ch.reader.wakeups}×, ` +
        `the worker woke main ${stats.wokeMain}×, the worker slept ${stats.sleeps}×`,
    );
  });

  it('no lost wake-up: every short burst after an idle gap is answered within a bound', { timeout: 120_000 }, async () => {
    sys = new ActorSystem();
    const ref = await sys.spawnWorker(ECHO);
    const { writer, reader } = sys.channelOf(ref)!;
    const BURSTS = 600;
    const BOUND_MS = 3_000;
    const rand = rng(7);
    let seq = 0;
    let worst = 0;
    let afterSleep = 0;
    for (let b = 0; b < BURSTS; b++) {
      // Idle gaps of several kinds, to land in every part of the worker's way to sleep.
      switch (b % 4) {
        case 0: {
          // Until the worker sleeps for sure (bounded).
          for (let i = 0; i < 10_000 && !writer.consumerAsleep; i++) await new Promise((r) => setImmediate(r));
          if (writer.consumerAsleep) afterSleep++;
          break;
        }
        case 1:
          break; // none: the worker may be on its way to sleep right now
        case 2:
          await new Promise((r) => setImmediate(r));
          break;
        default:
          await new Promise((r) => setTimeout(r, Math.floor(rand() * 3)));
      }
      const count = b % 5 === 0 ? 1 : 1 + Math.floor(rand() * 40);
      const first = seq;
      const t0 = performance.now();
      for (let i = 0; i < count; i++, seq++) {
        const n = Math.floor(rand() * 200);
        const at = writer.reserve(n);
        if (at < 0) throw new Error('no room for a burst: the worker did not drain the last one');
        for (let j = 0; j < n; j++) writer.bytes[at + j] = gen(seq, j);
        writer.commit(n);
      }
      writer.publish();
      let got = first;
      const dl = deadline(BOUND_MS, () => `burst ${b}: ${got - first} of ${count} echoes`);
      try {
        while (got < seq) {
          let off: number;
          while ((off = reader.next()) >= 0) {
            if (reader.length > 0 && reader.bytes[off] !== (gen(got, 0) ^ 0x5a)) throw new Error(`burst ${b}: echo ${got} out of order`);
            got++;
          }
          reader.release();
          if (got < seq) await Promise.race([reader.wait(), dl.promise]);
        }
      } finally {
        dl.cancel();
      }
      worst = Math.max(worst, performance.now() - t0);
    }
    // The sleeping case really happened, and the worker was woken at most once per burst.
    expect(afterSleep).toBeGreaterThan(BURSTS / 8);
    expect(writer.wakeups).toBeGreaterThanOrEqual(afterSleep);
    expect(writer.wakeups).toBeLessThanOrEqual(BURSTS);
    console.log(`data channel bursts: ${BURSTS} answered, worst ${worst.toFixed(1)} ms; main woke the worker ${writer.wakeups}×`);
  });

  it('a restarted incarnation gets a fresh channel; the dead one stays readable on main', { timeout: 60_000 }, async () => {
    sys = new ActorSystem();
    const events: SupervisorEvent[] = [];
    let starts = 0;
    let channelAtCrash: ChannelEnd | undefined | null = null;
    const sup = await sys.supervise({
      strategy: 'one_for_one',
      intensity: 10,
      periodMs: 10_000,
      children: [{ id: 'echo', start: { kind: 'worker', options: { ...ECHO, args: () => ({ xor: 0x5a, gen: ++starts }) } } }],
      listener: (e) => {
        events.push(e);
        if (e.type === 'Crashed') channelAtCrash = sys!.channelOf(e.crash.ref);
      },
    });
    const ref = sup.childRef('echo');
    const first = sys.channelOf(ref)!;
    expect(await sys.ask<DataEchoInfo>(ref, { type: 'info' })).toMatchObject({ gen: 1, hasChannel: true, capacity: 16 * 1024 });
    await echoThrough(first, Uint32Array.of(0, 1, 100, 5000), 0x5a, 20_000);
    // The worker publishes 25 entries main does not read yet, then dies.
    expect(await sys.ask(ref, { type: 'emit', count: 25, size: 300 })).toBe('emitted');
    sys.inject(ref, 'throw');
    await waitFor(() => events.some((e) => e.type === 'Restarted'), 'restart', 30_000);
    expect(channelAtCrash).toBeUndefined(); // nothing offered while it is down
    const second = sys.channelOf(ref)!;
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    expect(second.reader.buffer).not.toBe(first.reader.buffer);
    expect(second.writer.buffer).not.toBe(first.writer.buffer);
    expect(first.reader.closed && first.writer.closed).toBe(true);
    expect(second.reader.closed || second.writer.closed).toBe(false);
    // Every entry the dead incarnation published is still there, in order.
    for (let i = 0; i < 25; i++) {
      const at = first.reader.next();
      expect(at, `entry ${i}`).toBeGreaterThanOrEqual(0);
      expect(first.reader.length).toBe(300);
      for (let j = 0; j < 300; j++) if (first.reader.bytes[at + j] !== emitted(i, j)) throw new Error(`entry ${i} byte ${j}`);
    }
    expect(first.reader.next()).toBe(-1);
    first.reader.release();
    expect(await settlesSoon(first.reader.wait(), 1)).toBe(true); // closed: no sleeping on a dead producer
    // The new incarnation booted on fresh args and echoes through its own channel.
    expect(await sys.ask<DataEchoInfo>(ref, { type: 'info' })).toMatchObject({ gen: 2, hasChannel: true });
    expect(second.reader.next()).toBe(-1);
    await echoThrough(second, Uint32Array.of(7, 0, 8000, 3), 0x5a, 20_000);
  });

  it('a dying worker fenced between turns is handled at once; one that dies in a turn waits for its thread (up to the exit wait)', { timeout: 60_000 }, async () => {
    sys = new ActorSystem();
    const SLEEP_S = 3;
    const crashedAfter = async (inTurn: boolean): Promise<{ crashMs: number; kind: string }> => {
      let crashedAt = 0;
      let kind = '';
      const sup = await sys!.supervise({
        strategy: 'one_for_one',
        intensity: 10,
        periodMs: 10_000,
        children: [{ id: 'blocker', restart: 'temporary', start: { kind: 'worker', options: { module: TURN_BLOCKER, channel: { bytes: 4096 } } } }],
        listener: (e) => {
          if (e.type !== 'Crashed') return;
          crashedAt = performance.now();
          kind = e.crash.reason.kind;
        },
      });
      const ref = sup.childRef('blocker');
      expect(await sys!.ask(ref, { type: 'ready' })).toBe('ready');
      const marker = join(tmpdir(), `baton-turn-blocker-${process.pid}-${inTurn ? 'in' : 'between'}`);
      rmSync(marker, { force: true });
      sys!.tell(ref, { type: 'block', inTurn, seconds: SLEEP_S, marker });
      // The marker says the thread waits in the native sleep, which terminate() cannot interrupt.
      await waitFor(() => existsSync(marker), 'the blocker to start its sleep', 10_000);
      rmSync(marker, { force: true });
      const t0 = performance.now();
      sys!.inject(ref, 'terminate');
      await waitFor(() => crashedAt > 0, 'the crash report', 30_000);
      await sup.stop();
      return { crashMs: crashedAt - t0, kind };
    };
    // Between turns: fenced at once, long before the thread can exit.
    const between = await crashedAfter(false);
    expect(between.kind).toBe('terminated');
    expect(between.crashMs).toBeLessThan(1_500);
    // In a turn that never ends: only the thread's exit tells, and it cannot come before
    // the sleep ends; the report waits for it up to the exit wait (2 s).
    const inTurn = await crashedAfter(true);
    expect(inTurn.kind).toBe('terminated');
    expect(inTurn.crashMs).toBeGreaterThan(1_900);
  });

  it('channel is undefined for actors without one, on main-thread actors, and once stopped', async () => {
    sys = new ActorSystem();
    const plain = await sys.spawnWorker({ module: DATA_ECHO });
    expect(sys.channelOf(plain)).toBeUndefined();
    expect(await sys.ask<DataEchoInfo>(plain, { type: 'info' })).toMatchObject({ hasChannel: false });
    const probe = await sys.spawnWorker({ module: PROBE });
    expect(sys.channelOf(probe)).toBeUndefined();
    let seen: unknown = 'unset';
    const local = await sys.spawnLocal(
      defineActor<unknown, null, null>({
        init(_a, ctx) {
          seen = ctx.channel;
          return null;
        },
        receive() {},
      }),
      null,
    );
    expect(seen).toBeUndefined();
    expect(sys.channelOf(local)).toBeUndefined();
    const withChannel = await sys.spawnWorker(ECHO);
    const ch = sys.channelOf(withChannel)!;
    expect(ch.writer.capacity).toBe(16 * 1024);
    await sys.stop(withChannel);
    expect(sys.channelOf(withChannel)).toBeUndefined();
    expect(ch.reader.closed).toBe(true);
    await expect(sys.spawnWorker({ ...ECHO, channel: { bytes: 10 } })).rejects.toThrow(RangeError);
  });

  it('args given as a function are evaluated at every start; a throw there is a start crash', async () => {
    sys = new ActorSystem();
    const events: SupervisorEvent[] = [];
    let calls = 0;
    let failNext = false;
    const sup = await sys.supervise({
      strategy: 'one_for_one',
      intensity: 10,
      periodMs: 10_000,
      backoff: { initialMs: 1, maxMs: 5 },
      children: [
        {
          id: 'echo',
          start: {
            kind: 'worker',
            options: {
              module: DATA_ECHO,
              args: () => {
                calls++;
                if (failNext) {
                  failNext = false;
                  throw new Error('settings unavailable');
                }
                return { gen: calls };
              },
            },
          },
        },
      ],
      listener: (e) => events.push(e),
    });
    const ref = sup.childRef('echo');
    expect(await sys.ask<DataEchoInfo>(ref, { type: 'info' })).toMatchObject({ gen: 1 });
    failNext = true;
    sys.inject(ref, 'exit');
    await waitFor(() => events.some((e) => e.type === 'Restarted'), 'restart', 30_000);
    const crashes = events.filter((e) => e.type === 'Crashed');
    expect(crashes.map((e) => e.type === 'Crashed' && e.crash.reason.kind)).toEqual(['exit', 'throw']);
    const second = crashes[1]!;
    expect(second.type === 'Crashed' && second.crash.phase).toBe('start');
    expect(second.type === 'Crashed' && second.crash.reason).toMatchObject({ message: expect.stringContaining('settings unavailable') });
    expect(await sys.ask<DataEchoInfo>(ref, { type: 'info' })).toMatchObject({ gen: 3 });
  });
});
