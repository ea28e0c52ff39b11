/**
 * The gateway's account of arena chunks (main thread only): how many things still
 * need each chunk (a retained input, a socket write in flight, held output), and
 * whether its writer is done with it. A chunk goes back to the arena when both say
 * so. Chunks the main thread takes for socket reads are done with once their reader
 * moves on; a relay's output chunks once it says so (ChunkDone) or once it is dead.
 */
import type { Arena } from '../actors/index.js';

/** The main thread's name in the arena's owner table (relays get others). */
export const MAIN_OWNER = 1;

export class ChunkLedger {
  private readonly refs: Int32Array;
  /** 1 once the chunk's writer will write no more into it. */
  private readonly done: Uint8Array;

  constructor(readonly arena: Arena) {
    this.refs = new Int32Array(arena.chunks);
    this.done = new Uint8Array(arena.chunks);
  }

  /** Takes a chunk for the main thread, held once by the caller; -1 when none is free. */
  take(): number {
    const c = this.arena.take(MAIN_OWNER);
    if (c < 0) return -1;
    this.refs[c] = 1;
    this.done[c] = 1;
    return c;
  }

  ref(c: number): void {
    this.refs[c]!++;
  }

  unref(c: number): void {
    if (--this.refs[c]! <= 0) this.maybeFree(c);
  }

  /** Its writer writes no more into chunk `c`. */
  close(c: number): void {
    this.done[c] = 1;
    this.maybeFree(c);
  }

  /** A dead writer's chunks (those the arena says `owner` took) are done with. */
  reclaim(owner: number): void {
    for (let c = 0; c < this.arena.chunks; c++) if (this.arena.owner(c) === owner && this.done[c] === 0) this.close(c);
  }

  private maybeFree(c: number): void {
    if (this.refs[c]! > 0 || this.done[c] === 0) return;
    this.refs[c] = 0;
    this.done[c] = 0;
    this.arena.give(c);
  }
}

/**
 * Small inputs (short reads: handshakes, echoes) packed into shared main-thread chunks,
 * one after another; each piece holds its chunk once.
 */
export class SmallAllocator {
  private chunk = -1;
  private pos = 0;

  constructor(private readonly ledger: ChunkLedger) {}

  /** Room for `n` bytes: [chunk, offset], held once for the caller; null when the arena is full. */
  alloc(n: number): [number, number] | null {
    const size = this.ledger.arena.chunkBytes;
    if (n > size) throw new RangeError(`an input of ${n} bytes is larger than an arena chunk`);
    if (this.chunk < 0 || size - this.pos < n) {
      const c = this.ledger.take();
      if (c < 0) return null;
      if (this.chunk >= 0) this.ledger.unref(this.chunk);
      this.chunk = c;
      this.pos = 0;
    }
    const at = this.pos;
    this.pos = (at + n + 7) & ~7;
    this.ledger.ref(this.chunk);
    return [this.chunk, at];
  }
}
