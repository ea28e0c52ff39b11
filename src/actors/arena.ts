/**
 * A shared arena: fixed-size chunks of one SharedArrayBuffer that every thread of the
 * process can read and write, handed out and given back through a lock-free stack.
 * Bulk bytes live here once: a socket reads into a chunk, a worker reads them in
 * place and writes its output into another, and the main thread writes that to a
 * socket, with no copy and no allocation per buffer (so no garbage to collect).
 *
 * The arena only hands chunks out. When a chunk may be reused is its taker's business
 * (the relay gateway counts who still needs each one); `owner` records who took a
 * chunk, so what a dead worker held can be found and given back.
 */
import { RESOLVED, waitAsync, wakeSleeper } from './wait-async.js';

/** The stack's empty mark. */
const NIL = 0xffff_ffff;
const MASK32 = 0xffff_ffffn;
// Control words (Int32 indices): the free count, and the word chunk waiters sleep on.
const W_FREE = 2;
const W_WAIT = 3;
/** Bytes before the per-chunk tables: the stack head (64-bit), the control words. */
const CONTROL_BYTES = 64;
const PAGE = 4096;

/** An arena's memory and shape; structured-cloneable (workerData shares the buffer). */
export interface ArenaBuffers {
  readonly buffer: SharedArrayBuffer;
  readonly chunks: number;
  readonly chunkBytes: number;
}

function dataStart(chunks: number): number {
  return Math.ceil((CONTROL_BYTES + 8 * chunks) / PAGE) * PAGE;
}

/** An arena of `chunks` chunks of `chunkBytes` each (a multiple of 4096), all free. */
export function createArena(chunks: number, chunkBytes: number): ArenaBuffers {
  if (!Number.isSafeInteger(chunks) || chunks < 1 || chunks >= NIL) throw new RangeError(`an arena needs 1 to 2^32-2 chunks, got ${chunks}`);
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < PAGE || chunkBytes % PAGE !== 0) {
    throw new RangeError(`arena chunks must be a multiple of ${PAGE} bytes, got ${chunkBytes}`);
  }
  const buffers = { buffer: new SharedArrayBuffer(dataStart(chunks) + chunks * chunkBytes), chunks, chunkBytes };
  // An empty stack first, then every chunk pushed (0 ends up on top).
  new BigInt64Array(buffers.buffer, 0, 1)[0] = BigInt(NIL);
  const a = new Arena(buffers);
  for (let c = chunks - 1; c >= 0; c--) a.give(c);
  return buffers;
}

export class Arena {
  /** The whole buffer as bytes; chunk `c` starts at {@link offset}(c). */
  readonly bytes: Uint8Array;
  /** The same memory as a Buffer, for sockets. */
  readonly buffer: Buffer;
  readonly chunks: number;
  readonly chunkBytes: number;
  private readonly head: BigInt64Array;
  private readonly words: Int32Array;
  private readonly next: Int32Array;
  private readonly owners: Int32Array;
  private readonly base: number;
  private waiting: Promise<void> | undefined;
  private readonly woken = (): void => {
    this.waiting = undefined;
  };

  constructor(b: ArenaBuffers) {
    this.chunks = b.chunks;
    this.chunkBytes = b.chunkBytes;
    this.base = dataStart(b.chunks);
    if (b.buffer.byteLength !== this.base + b.chunks * b.chunkBytes) throw new TypeError('not an arena buffer');
    this.bytes = new Uint8Array(b.buffer);
    this.buffer = Buffer.from(b.buffer);
    this.head = new BigInt64Array(b.buffer, 0, 1);
    this.words = new Int32Array(b.buffer, 0, CONTROL_BYTES / 4);
    this.next = new Int32Array(b.buffer, CONTROL_BYTES, b.chunks);
    this.owners = new Int32Array(b.buffer, CONTROL_BYTES + 4 * b.chunks, b.chunks);
  }

  /** Where chunk `c` starts in {@link bytes}. */
  offset(c: number): number {
    return this.base + c * this.chunkBytes;
  }

  /** Free chunks now (a snapshot: others take and give meanwhile). */
  get free(): number {
    return Atomics.load(this.words, W_FREE);
  }

  /** Who took chunk `c` (0: nobody). */
  owner(c: number): number {
    return Atomics.load(this.owners, c);
  }

  /**
   * Takes a free chunk for `owner` (a positive number naming the taker), or -1 when
   * every chunk is taken. Any thread.
   */
  take(owner: number): number {
    for (;;) {
      const h = Atomics.load(this.head, 0);
      const top = Number(h & MASK32);
      if (top === NIL) return -1;
      const below = Atomics.load(this.next, top) >>> 0;
      // The tag in the high half changes at every push and pop, so a head that was
      // popped and pushed back between our load and our swap (ABA) makes the swap fail.
      const tag = ((h >> 32n) + 1n) & MASK32;
      if (Atomics.compareExchange(this.head, 0, h, (tag << 32n) | BigInt(below)) === h) {
        Atomics.store(this.owners, top, owner);
        Atomics.sub(this.words, W_FREE, 1);
        return top;
      }
    }
  }

  /** Gives chunk `c` back; wakes whoever waits for a chunk. Any thread. */
  give(c: number): void {
    if (!Number.isInteger(c) || c < 0 || c >= this.chunks) throw new RangeError(`no chunk ${c} in this arena`);
    Atomics.store(this.owners, c, 0);
    for (;;) {
      const h = Atomics.load(this.head, 0);
      Atomics.store(this.next, c, Number(h & MASK32) | 0);
      const tag = ((h >> 32n) + 1n) & MASK32;
      if (Atomics.compareExchange(this.head, 0, h, (tag << 32n) | BigInt(c)) === h) break;
    }
    Atomics.add(this.words, W_FREE, 1);
    wakeSleeper(this.words, W_WAIT);
  }

  /** Resolves when a chunk is free (at once if one is). */
  waitForChunk(): Promise<void> {
    if (this.waiting !== undefined) return this.waiting;
    // Announce, then look again: give() adds to the count before it looks at the word.
    Atomics.store(this.words, W_WAIT, 1);
    if (this.free > 0) return RESOLVED;
    const r = waitAsync(this.words, W_WAIT, 1);
    if (!r.async) return RESOLVED;
    this.waiting = r.value.then(this.woken);
    return this.waiting;
  }
}
