/**
 * Data channels: bulk bytes between the main thread and a worker actor without
 * msgpackr, postMessage or per-entry objects (DESIGN.md, "The hot path").
 *
 * A channel is two single-producer single-consumer rings in SharedArrayBuffers, one per
 * direction. A ring holds variable-length entries, `[u32 length][payload][pad to 8]`,
 * that never wrap: when the room left at the end is too small the producer writes a wrap
 * marker there and goes on at offset 0. The producer writes payloads in place
 * (`reserve` → write into `bytes` → `commit`), then makes every committed entry visible
 * with one atomic store (`publish`); the consumer reads them in place (`next`) and gives
 * the room back with one atomic store (`release`).
 *
 * Sleeping costs a thread ~20 µs of CPU per sleep/wake, so nobody is woken who is
 * awake: a consumer that found nothing raises its "sleeping" word, looks once more, and
 * only then waits on that word (`Atomics.waitAsync`); a producer wakes it only if the
 * word is up, lowering it first, so one `publish` wakes at most once and a batch of
 * publishes in one turn (`publish(false)` … `publish()`) costs at most one wake-up. The
 * same handshake, mirrored, lets a producer wait for room.
 *
 * A consumer that never has to sleep never leaves its loop for the event loop either
 * (`wait()` then resolves at once, a microtask): it must yield (`setImmediate`) now and
 * then, or timers — a worker's heartbeat among them — and control frames starve.
 */
import { RESOLVED, waitAsync, wakeSleeper } from './wait-async.js';

/** Bytes before the data area: the control words, each group on its own 64-byte line. */
export const HEADER_BYTES = 256;
/** Smallest and largest data area of one ring (the indices are Int32 byte offsets). */
export const MIN_RING_BYTES = 64;
export const MAX_RING_BYTES = 1 << 30;

// Int32 word indices in the header. The write index (written by the producer) and the
// read index (written by the consumer) are on separate cache lines so that publishing
// and releasing do not invalidate each other's line (false sharing); so are the two
// wait words, each written mostly by one side.
/** Byte offset up to which entries are published (producer writes). */
const W_WRITE = 0;
/** Size of the data area in bytes, written once at creation. */
const W_CAPACITY = 1;
/** Non-zero once the ring is closed (the other end is gone for good). */
const W_CLOSED = 2;
/** Byte offset up to which the consumer has given room back (consumer writes). */
const W_READ = 16;
/** 1 while the consumer sleeps (or is about to) in `wait()`; the producer lowers it to wake it. */
const W_SLEEPING = 32;
/** 1 while the producer sleeps (or is about to) in `waitForRoom()`; the consumer lowers it. */
const W_ROOM_WAIT = 48;
/** The producer's turn gate: see {@link RingWriter.beginTurn} and {@link RingReader.fence}. */
const W_GATE = 56;

// Turn gate states. A producer that never opts in stays at NO_TURNS: it cannot be fenced
// (whoever waits must wait for its thread to end).
const NO_TURNS = 0;
const BETWEEN_TURNS = 1;
const IN_TURN = 2;
/** In a turn, and the consumer asked for a fence: the turn's end fences. */
const FENCE_ASKED = 3;
const FENCED = 4;

const TRUE = Promise.resolve(true);
const FALSE = Promise.resolve(false);

/** The length word of a wrap marker: the next entry is at offset 0. */
const WRAP = 0xffffffff;

/** Ring bytes an entry with an `n`-byte payload takes: the length word and padding to 8. */
function entryBytes(n: number): number {
  return (n + 11) & ~7;
}

/** The two shared buffers of a channel; pass them to the worker (workerData shares them). */
export interface DataChannelBuffers {
  /** The ring main writes and the worker reads. */
  readonly toWorker: SharedArrayBuffer;
  /** The ring the worker writes and main reads. */
  readonly fromWorker: SharedArrayBuffer;
}

/** One side's ends of a channel: where it writes and where it reads. */
export interface ChannelEnd {
  readonly writer: RingWriter;
  readonly reader: RingReader;
}

/**
 * The data area a ring asked for with `capacityBytes` gets: rounded up to a multiple of
 * 64. Throws a RangeError outside {@link MIN_RING_BYTES}..{@link MAX_RING_BYTES}.
 */
export function ringCapacity(capacityBytes: number): number {
  if (!Number.isSafeInteger(capacityBytes) || capacityBytes < MIN_RING_BYTES || capacityBytes > MAX_RING_BYTES) {
    throw new RangeError(`data channel ring size must be an integer from ${MIN_RING_BYTES} to ${MAX_RING_BYTES} bytes, got ${capacityBytes}`);
  }
  return Math.ceil(capacityBytes / 64) * 64;
}

/** Creates one ring: a data area of `capacityBytes` rounded up to a multiple of 64. */
export function createRing(capacityBytes: number): SharedArrayBuffer {
  const capacity = ringCapacity(capacityBytes);
  const sab = new SharedArrayBuffer(HEADER_BYTES + capacity);
  new Int32Array(sab, 0, HEADER_BYTES / 4)[W_CAPACITY] = capacity;
  return sab;
}

/** Creates a channel whose rings each hold `capacityBytes` (rounded up to a multiple of 64). */
export function createDataChannel(capacityBytes: number): DataChannelBuffers {
  return { toWorker: createRing(capacityBytes), fromWorker: createRing(capacityBytes) };
}

/** The main thread's ends: it writes `toWorker` and reads `fromWorker`. */
export function mainEnd(b: DataChannelBuffers): ChannelEnd {
  return { writer: new RingWriter(b.toWorker), reader: new RingReader(b.fromWorker) };
}

/** The worker's ends: it reads `toWorker` and writes `fromWorker`. */
export function workerEnd(b: DataChannelBuffers): ChannelEnd {
  return { writer: new RingWriter(b.fromWorker), reader: new RingReader(b.toWorker) };
}

/** The largest payload that fits in an empty ring of `capacity` bytes wherever its indices stand. */
export function maxEntryFor(capacity: number): number {
  // An empty ring at offset x fits an entry of s bytes at x when s <= capacity - x, or
  // after a wrap when s < x. The worst x is capacity / 2, where both give capacity / 2.
  return capacity / 2 - 4;
}

/** Views shared by both ends of a ring. */
abstract class RingSide {
  /** The whole data area; entry offsets index into it. */
  readonly bytes: Uint8Array;
  /** The same data area as a DataView, for multi-byte fields of payloads. */
  readonly view: DataView;
  /** Size of the data area in bytes. */
  readonly capacity: number;
  /** The largest payload a single entry can ever hold. */
  readonly maxEntry: number;
  protected readonly ctl: Int32Array;
  /** The data area by 32-bit word, for the length words (entries are 8-aligned). */
  protected readonly words: Uint32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < HEADER_BYTES + MIN_RING_BYTES) {
      throw new TypeError('a data channel ring needs the SharedArrayBuffer made by createRing()');
    }
    this.ctl = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    const capacity = Atomics.load(this.ctl, W_CAPACITY);
    if (capacity !== buffer.byteLength - HEADER_BYTES || capacity % 64 !== 0) {
      throw new TypeError(`not a data channel ring (capacity word ${capacity}, ${buffer.byteLength} bytes)`);
    }
    this.capacity = capacity;
    this.maxEntry = maxEntryFor(capacity);
    this.bytes = new Uint8Array(buffer, HEADER_BYTES, capacity);
    this.view = new DataView(buffer, HEADER_BYTES, capacity);
    this.words = new Uint32Array(buffer, HEADER_BYTES, capacity / 4);
  }

  /** True once the ring was closed: the other end's incarnation has ended for good. */
  get closed(): boolean {
    return Atomics.load(this.ctl, W_CLOSED) !== 0;
  }

  /**
   * Marks the ring closed and wakes whoever waits on it, so a consumer parked on a dead
   * producer (or a producer on a dead consumer) gets to look again. Entries already
   * published stay readable. Idempotent.
   */
  close(): void {
    Atomics.store(this.ctl, W_CLOSED, 1);
    // Flag first, then lower the words and notify: a waiter that raised its word after
    // our store re-checks `closed` before sleeping and sees it.
    Atomics.store(this.ctl, W_SLEEPING, 0);
    Atomics.notify(this.ctl, W_SLEEPING);
    Atomics.store(this.ctl, W_ROOM_WAIT, 0);
    Atomics.notify(this.ctl, W_ROOM_WAIT);
  }
}

/** The producer end of a ring: reserve room, write the payload in place, commit, publish. */
export class RingWriter extends RingSide {
  /** Where the next entry goes (committed, maybe not yet published). */
  private head: number;
  /** The write index as last published. */
  private published: number;
  /** The read index as last loaded: room up to it is certainly free. */
  private tail: number;
  /** Published entries the consumer may be sleeping through (a `publish(false)` since the last wake check). */
  private unannounced = false;
  /** Payload offset minus 4 of the reserved entry, or -1 when nothing is reserved. */
  private reservedAt = -1;
  /** Payload size the reservation was made for. */
  private reservedBytes = 0;
  private roomWait: Promise<void> | undefined;
  private readonly roomWoken = (): void => {
    this.roomWait = undefined;
  };
  /** How many times this producer woke its sleeping consumer. */
  wakeups = 0;

  constructor(buffer: SharedArrayBuffer) {
    super(buffer);
    // A writer over an existing ring (a restarted producer) continues after what was
    // published; whatever its predecessor committed without publishing is discarded.
    this.head = this.published = Atomics.load(this.ctl, W_WRITE);
    this.tail = Atomics.load(this.ctl, W_READ);
  }

  /**
   * Reserves room for an entry of up to `n` payload bytes and returns the offset in
   * {@link bytes} where they may be written contiguously, or -1 when there is no room
   * now (see {@link waitForRoom}). Nothing is visible before {@link commit} and
   * {@link publish}; a second `reserve` without a commit replaces the first.
   * Throws a RangeError when `n` is larger than {@link maxEntry}.
   */
  reserve(n: number): number {
    if (n >>> 0 !== n || n > this.maxEntry) this.badSize(n);
    const size = entryBytes(n);
    let at = this.fit(size, this.tail);
    if (at < 0) {
      // The cached read index is stale in the safe direction (the consumer only frees
      // more); load the real one only when the cached one says no.
      this.tail = Atomics.load(this.ctl, W_READ);
      at = this.fit(size, this.tail);
      if (at < 0) return -1;
    }
    this.reservedAt = at;
    this.reservedBytes = n;
    return at + 4;
  }

  /** Where an entry of `size` ring bytes goes given read index `r`, or -1. */
  private fit(size: number, r: number): number {
    const w = this.head;
    if (w >= r) {
      // Free: [w, capacity) and [0, r). The write index may never catch up with the read
      // index (write == read means empty), so ending exactly at the end needs r != 0.
      const end = w + size;
      if (end < this.capacity || (end === this.capacity && r !== 0)) return w;
      return size < r ? 0 : -1; // after a wrap marker at w
    }
    return w + size < r ? w : -1;
  }

  /**
   * Completes the entry reserved last with its final payload length `n` (at most what
   * was reserved; the rest of the room is not used). The entry becomes visible at the
   * next {@link publish}; another entry may be reserved first.
   */
  commit(n: number): void {
    const at = this.reservedAt;
    if (at < 0) throw new RangeError('data channel commit() without a reserve()');
    if (n >>> 0 !== n || n > this.reservedBytes) {
      throw new RangeError(`data channel commit(${n}): ${this.reservedBytes} bytes were reserved`);
    }
    const words = this.words;
    // Reserved at 0 while the head is elsewhere: the entry did not fit before the end.
    // The marker is written only now, past the published index, so it is invisible
    // until the entry behind it is published with it.
    if (at !== this.head) words[this.head >> 2] = WRAP;
    words[at >> 2] = n;
    const next = at + entryBytes(n);
    this.head = next === this.capacity ? 0 : next;
    this.reservedAt = -1;
  }

  /**
   * Makes every committed entry visible to the consumer (one atomic store) and, when
   * `wake` is true and the consumer sleeps, wakes it. `publish(false)` in a batch and a
   * final `publish()` cost one wake-up at most.
   */
  publish(wake = true): void {
    const head = this.head;
    if (head !== this.published) {
      // Sequentially consistent store: the payload and length words written before it
      // are visible to a consumer that loads this index (happens-before).
      Atomics.store(this.ctl, W_WRITE, head);
      this.published = head;
      this.unannounced = true;
    }
    if (!wake || !this.unannounced) return;
    this.unannounced = false;
    // The write index was stored before this load; the consumer stores its word before
    // re-loading the write index. Both sequentially consistent, so either it saw our
    // index (and does not sleep) or we see its word here.
    if (wakeSleeper(this.ctl, W_SLEEPING)) this.wakeups++;
  }

  /**
   * Resolves when the consumer has released room since the last `reserve` that failed
   * (at once if it already has, or if the ring is empty or closed). Publishes what was
   * committed first: the consumer can only free room by reading it. While a wait is
   * pending, calling again returns the same promise.
   */
  waitForRoom(): Promise<void> {
    if (this.roomWait !== undefined) return this.roomWait;
    if (this.head !== this.published || this.unannounced) this.publish(true);
    const ctl = this.ctl;
    Atomics.store(ctl, W_ROOM_WAIT, 1);
    // Re-check after raising the word (mirror of the consumer's `wait`).
    const r = Atomics.load(ctl, W_READ);
    if (r !== this.tail || r === this.head || Atomics.load(ctl, W_CLOSED) !== 0) {
      Atomics.store(ctl, W_ROOM_WAIT, 0);
      this.tail = r;
      return RESOLVED;
    }
    const res = waitAsync(ctl, W_ROOM_WAIT, 1);
    if (!res.async) return RESOLVED; // the consumer lowered the word already
    this.roomWait = res.value.then(this.roomWoken);
    return this.roomWait;
  }

  /**
   * Opts this producer into turns (see {@link beginTurn}): a producer that does all its
   * writing to memory other threads read inside turns can be fenced by its consumer
   * between them, without waiting for its thread to end.
   */
  useTurns(): void {
    Atomics.compareExchange(this.ctl, W_GATE, NO_TURNS, BETWEEN_TURNS);
  }

  /**
   * Starts a turn: from here to {@link endTurn} a fence waits. False when the consumer has
   * fenced this producer: it must write nothing more to any memory another thread reads
   * (this ring, and whatever else its turns write), for its incarnation is over.
   */
  beginTurn(): boolean {
    return Atomics.compareExchange(this.ctl, W_GATE, BETWEEN_TURNS, IN_TURN) === BETWEEN_TURNS;
  }

  /** Ends a turn; a fence asked for during it takes effect here. */
  endTurn(): void {
    if (Atomics.compareExchange(this.ctl, W_GATE, IN_TURN, BETWEEN_TURNS) !== FENCE_ASKED) return;
    Atomics.store(this.ctl, W_GATE, FENCED);
    Atomics.notify(this.ctl, W_GATE);
  }

  /** True while the consumer sleeps in `wait()` (or is about to): diagnostics and tests. */
  get consumerAsleep(): boolean {
    return Atomics.load(this.ctl, W_SLEEPING) !== 0;
  }

  private badSize(n: number): never {
    throw new RangeError(
      `data channel entry of ${n} bytes: payloads are whole numbers of bytes up to maxEntry ${this.maxEntry} ` +
        `(half the ${this.capacity}-byte ring, less 4)`,
    );
  }
}

/** The consumer end of a ring: read published entries in place, then release their room. */
export class RingReader extends RingSide {
  /** Where the next entry (or wrap marker) is. */
  private pos: number;
  /** The write index as last loaded: entries up to it are published. */
  private limit: number;
  /** The read index as last stored. */
  private released: number;
  private entryLength = 0;
  private waiting: Promise<void> | undefined;
  private readonly woken = (): void => {
    this.waiting = undefined;
  };
  /** How many times this consumer woke its producer waiting for room. */
  wakeups = 0;

  /**
   * Fences the producer, whose incarnation is over: once the result resolves to true it
   * writes nothing more (it checks at each {@link RingWriter.beginTurn}). Between turns
   * that is at once; in a turn, when the turn ends. False when it cannot be told: the
   * producer never opted into turns, or its turn did not end within `timeoutMs` (its
   * thread died or hangs in it); then only its thread's end means it stopped.
   */
  fence(timeoutMs: number): Promise<boolean> {
    const ctl = this.ctl;
    for (;;) {
      switch (Atomics.load(ctl, W_GATE)) {
        case NO_TURNS:
          return FALSE;
        case FENCED:
          return TRUE;
        case BETWEEN_TURNS:
          if (Atomics.compareExchange(ctl, W_GATE, BETWEEN_TURNS, FENCED) === BETWEEN_TURNS) return TRUE;
          continue; // a turn began meanwhile
        case IN_TURN:
          if (Atomics.compareExchange(ctl, W_GATE, IN_TURN, FENCE_ASKED) !== IN_TURN) continue; // it ended meanwhile
          return this.turnEnd(timeoutMs);
        case FENCE_ASKED:
          return this.turnEnd(timeoutMs);
        default:
          return FALSE;
      }
    }
  }

  /** Waits (at most `timeoutMs`) for the turn a fence was asked in to end; true when fenced. */
  private turnEnd(timeoutMs: number): Promise<boolean> {
    const ctl = this.ctl;
    const res = waitAsync(ctl, W_GATE, FENCE_ASKED, timeoutMs);
    if (!res.async) return Atomics.load(ctl, W_GATE) === FENCED ? TRUE : FALSE;
    return res.value.then(() => Atomics.load(ctl, W_GATE) === FENCED);
  }


  constructor(buffer: SharedArrayBuffer) {
    super(buffer);
    // A reader over an existing ring continues after what was released.
    this.pos = this.released = Atomics.load(this.ctl, W_READ);
    this.limit = Atomics.load(this.ctl, W_WRITE);
  }

  /**
   * Offset in {@link bytes} of the next published entry's payload, or -1 when there is
   * none; its length is then {@link length}. The entry stays valid until {@link release}.
   */
  next(): number {
    let p = this.pos;
    if (p === this.limit) {
      // Sequentially consistent load: everything written before the producer stored
      // this index is visible from here on.
      this.limit = Atomics.load(this.ctl, W_WRITE);
      if (p === this.limit) return -1;
    }
    let n = this.words[p >> 2]!;
    if (n === WRAP) {
      p = 0;
      if (p === this.limit) {
        this.pos = 0;
        return -1;
      }
      n = this.words[0]!;
    }
    if (n > this.maxEntry) throw new RangeError(`corrupt data channel entry at offset ${p}: length ${n}, maxEntry ${this.maxEntry}`);
    this.entryLength = n;
    const next = p + entryBytes(n);
    this.pos = next === this.capacity ? 0 : next;
    return p + 4;
  }

  /** Payload length of the entry {@link next} returned last. */
  get length(): number {
    return this.entryLength;
  }

  /** True when `next()` would return an entry. */
  get ready(): boolean {
    return this.pos !== this.limit || (this.limit = Atomics.load(this.ctl, W_WRITE)) !== this.pos;
  }

  /**
   * Gives the room of every entry read so far back to the producer (one atomic store),
   * and wakes the producer if it waits for room. Offsets returned before are invalid after.
   */
  release(): void {
    const p = this.pos;
    if (p === this.released) return;
    // Our reads of the released entries are done before this store; the producer
    // overwrites them only after loading it.
    Atomics.store(this.ctl, W_READ, p);
    this.released = p;
    // Mirror of `publish`.
    if (wakeSleeper(this.ctl, W_ROOM_WAIT)) this.wakeups++;
  }

  /**
   * Resolves when an entry is published (at once if one is already there, or when the
   * ring is closed). While a wait is pending, calling again returns the same promise.
   * `Atomics.waitAsync` does not keep the event loop alive on its own.
   */
  wait(): Promise<void> {
    if (this.waiting !== undefined) return this.waiting;
    const ctl = this.ctl;
    // Announce first, then look once more: the producer stores the write index before it
    // looks at this word, so one of us sees the other (see RingWriter.publish).
    Atomics.store(ctl, W_SLEEPING, 1);
    if (this.ready || Atomics.load(ctl, W_CLOSED) !== 0) {
      Atomics.store(ctl, W_SLEEPING, 0);
      return RESOLVED;
    }
    // Sleeps only while the word is still 1: a producer that lowered it in between makes
    // this return at once ('not-equal').
    const res = waitAsync(ctl, W_SLEEPING, 1);
    if (!res.async) return RESOLVED;
    this.waiting = res.value.then(this.woken);
    return this.waiting;
  }
}
