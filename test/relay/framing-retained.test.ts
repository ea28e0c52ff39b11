/**
 * The gateway's pure pieces: record framing, reading a socket into the arena (both
 * the shared scratch buffer and a chunk of its own), the chunk ledger, and the
 * retained input queue.
 */
import { describe, expect, it } from 'vitest';
import { Arena, createArena } from '../../src/actors/index.js';
import { ChunkLedger, SmallAllocator } from '../../src/relay/chunk-ledger.js';
import { recordsEnd } from '../../src/relay/framing.js';
import { RetainedQueue } from '../../src/relay/retained.js';
import { SocketInput } from '../../src/relay/socket-input.js';

const record = (len: number, fill = 1) => Buffer.concat([Buffer.from([23, 3, 3, len >> 8, len & 0xff]), Buffer.alloc(len, fill)]);

describe('recordsEnd', () => {
  it('finds the end of the last whole record, and passes an impossible length on at once', () => {
    const two = Buffer.concat([record(10), record(300)]);
    expect(recordsEnd(two, 0, two.length)).toBe(two.length);
    expect(recordsEnd(two, 0, two.length - 1)).toBe(15);
    expect(recordsEnd(two, 0, 4)).toBe(0);
    expect(recordsEnd(two, 15, two.length)).toBe(two.length);
    const bad = Buffer.from([23, 3, 3, 0xff, 0xff, 1, 2]);
    expect(recordsEnd(bad, 0, bad.length)).toBe(bad.length);
  });
});

/** Feeds `stream` to a SocketInput as socket reads of the given sizes, the way Node's onread does. */
function readAll(input: SocketInput, stream: Buffer, sizes: () => number): void {
  let at = 0;
  while (at < stream.length) {
    const buf = input.onread.buffer();
    const n = Math.min(buf.length, sizes(), stream.length - at);
    buf.set(stream.subarray(at, at + n));
    input.onread.callback(n, buf);
    at += n;
  }
}

describe('SocketInput', () => {
  const stream = Buffer.concat(Array.from({ length: 60 }, (_, i) => record([0, 1, 100, 5000, 16_400][i % 5]!, i)));

  for (const [name, sizes] of [
    ['small reads (shared scratch buffer)', () => 700],
    ['bulk reads (a chunk of its own)', () => 64 << 10],
    ['mixed reads', (() => { let k = 0; return () => [20_000, 3, 65_536, 1000, 40_000][k++ % 5]!; })()],
  ] as const) {
    it(`hands out whole records only, held in the arena, with ${name}; every chunk comes back`, () => {
      const arena = new Arena(createArena(64, 128 << 10));
      const ledger = new ChunkLedger(arena);
      const inputs: { chunk: number; offset: number; length: number }[] = [];
      const input = new SocketInput(ledger, new SmallAllocator(ledger), Buffer.alloc(64 << 10), true, (chunk, offset, length) => inputs.push({ chunk, offset, length }));
      readAll(input, stream, sizes);
      const got = Buffer.concat(inputs.map((i) => Buffer.from(arena.bytes.subarray(arena.offset(i.chunk) + i.offset, arena.offset(i.chunk) + i.offset + i.length))));
      expect(got.equals(stream)).toBe(true);
      for (const i of inputs) {
        const b = arena.bytes.subarray(arena.offset(i.chunk) + i.offset, arena.offset(i.chunk) + i.offset + i.length);
        expect(recordsEnd(b, 0, b.length)).toBe(b.length);
      }
      expect(input.buffered).toBe(0);
      // Every input held its chunk once; letting them and the reader go frees everything.
      const q = new RetainedQueue((c) => ledger.unref(c));
      for (const i of inputs) q.push('client', i.chunk, i.offset, i.length);
      q.clear();
      input.close();
      // The small allocator keeps its current chunk for the next small input.
      expect(arena.free).toBeGreaterThanOrEqual(63);
    });
  }

  it('an unframed side (the backend) hands on every read as it comes', () => {
    const arena = new Arena(createArena(8, 128 << 10));
    const ledger = new ChunkLedger(arena);
    const lengths: number[] = [];
    const input = new SocketInput(ledger, new SmallAllocator(ledger), Buffer.alloc(64 << 10), false, (_c, _o, length) => lengths.push(length));
    readAll(input, Buffer.alloc(200_000, 9), () => 50_000);
    expect(lengths.reduce((a, b) => a + b, 0)).toBe(200_000);
    expect(lengths.every((n) => n > 0)).toBe(true);
  });

  it('stops taking input when the arena is full, and goes on once chunks come back', () => {
    const arena = new Arena(createArena(2, 128 << 10));
    const ledger = new ChunkLedger(arena);
    const held: number[] = [];
    const input = new SocketInput(ledger, new SmallAllocator(ledger), Buffer.alloc(64 << 10), false, (c) => held.push(c));
    // Two chunks of small inputs, then one more that finds no room.
    for (let i = 0; i < 5; i++) input.push(Buffer.alloc(60 << 10, i));
    expect(input.starved).toBe(true);
    expect(arena.free).toBe(0);
    for (const c of held.splice(0)) ledger.unref(c);
    expect(input.resume()).toBe(true);
    expect(held.length).toBe(1);
  });
});

describe('RetainedQueue', () => {
  it('numbers inputs, finds them by number, frees them on commit and counts bytes', () => {
    const freed: number[] = [];
    const q = new RetainedQueue((c) => freed.push(c));
    for (let i = 1; i <= 100; i++) expect(q.push('client', i, 0, i).seq).toBe(i);
    expect(q.next).toBe(101);
    expect(q.bytes).toBe(5050);
    expect(q.at(40)?.length).toBe(40);
    q.release(90);
    expect(freed.length).toBe(90);
    expect(q.length).toBe(10);
    expect(q.bytes).toBe(91 + 92 + 93 + 94 + 95 + 96 + 97 + 98 + 99 + 100);
    expect(q.at(90)).toBeUndefined();
    expect(q.at(91)?.seq).toBe(91);
    q.release(91);
    // Freed but not yet compacted away: still not found.
    expect(q.at(91)).toBeUndefined();
    q.push('backendEnd');
    q.release(1000);
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
    expect(q.next).toBe(102);
    // The end of stream held no chunk.
    expect(freed.length).toBe(100);
  });
});

describe('accepted sockets read into the arena', () => {
  it("a server's accepted handles become sockets reading with onread, straight into shared memory", async () => {
    const { default: net } = await import('node:net');
    const { acceptedSocket, takeAccepts } = await import('../../src/relay/socket-input.js');
    const arena = new Arena(createArena(4, 128 << 10));
    const ledger = new ChunkLedger(arena);
    const got: Buffer[] = [];
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    // If a Node upgrade moves this internal, the gateway falls back to copying 'data' events; this says so.
    let sockets = 0;
    expect(takeAccepts(server, (handle) => {
      sockets++;
      const input = new SocketInput(ledger, new SmallAllocator(ledger), Buffer.alloc(64 << 10), false, (c, o, n) => {
        got.push(Buffer.from(arena.bytes.subarray(arena.offset(c) + o, arena.offset(c) + o + n)));
        ledger.unref(c);
      });
      const s = acceptedSocket(handle, input.onread);
      s.on('end', () => s.end());
    })).toBe(true);
    const payload = Buffer.alloc(300_000, 0x61);
    const c = net.connect((server.address() as import('node:net').AddressInfo).port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    c.end(payload);
    await new Promise((r) => c.once('close', r));
    c.destroy();
    await new Promise((r) => server.close(r));
    expect(sockets).toBe(1);
    expect(Buffer.concat(got).equals(payload)).toBe(true);
  });
});
