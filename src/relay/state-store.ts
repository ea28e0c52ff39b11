/**
 * The state store (DESIGN.md, "Replication and takeover"): every connection's
 * committed engine state, in shared memory the main thread owns, so it outlives the
 * relay that wrote it. A relay commits without any message: it writes its own slot.
 *
 * One slot per connection ownership (a takeover moves the state to a fresh slot for
 * the new owner, so a zombie of the dead owner can only ever scribble on a slot
 * nobody reads). A slot holds two base buffers (the encoded snapshot, rewritten only
 * when more than the record state changed) and two delta records (the record state:
 * sequence numbers, counters, flags, and the last input covered). A commit writes the
 * buffer NOT holding the newest valid copy, checksums it, and publishes its version
 * last, so a writer killed mid-commit leaves the previous commit readable, and a torn
 * one fails its checksum and is never restored. Every record carries the slot's
 * token, so what an earlier owner of the slot left behind is never mistaken for it.
 *
 * The bytes are opaque here: the main thread copies them from slot to slot and never
 * decodes them (they hold traffic secrets).
 */
import { crc32 } from 'node:zlib';

/**
 * Bytes per slot: one page, so an idle connection's state costs one page of memory. An
 * engine state is well under a base buffer's size (about 900 bytes mid-handshake, 750
 * established: no transcript, no certificate); one that is not is left uncommitted
 * (see SlotWriter.commit).
 */
export const SLOT_BYTES = 4096;
const DELTA_AT = [0, 128] as const;
const BASE_AT = [256, 256 + (SLOT_BYTES - 256) / 2] as const;
const BASE_HEADER = 16;
/**
 * The input the owner is running through the engine (0: none), in the gap after the
 * second delta record: what a crash leaves here is the evidence against an input.
 */
const IN_HAND = 248;
/** The largest encoded snapshot a slot holds. */
export const MAX_BASE_BYTES = (SLOT_BYTES - 256) / 2 - BASE_HEADER;
/** The largest record state (numbers) a delta holds. */
export const MAX_RECORD_VALUES = 12;

// Delta record: ver, token, baseVer, upTo, count, crc (u32 each), then count f64 values.
const D_VER = 0;
const D_TOKEN = 4;
const D_BASE = 8;
const D_UPTO = 12;
const D_COUNT = 16;
const D_CRC = 20;
const D_VALUES = 24;
// Base record: ver, token, len, crc (u32 each), then the bytes.
const B_VER = 0;
const B_TOKEN = 4;
const B_LEN = 8;
const B_CRC = 12;

/** The shared memory of a store; given to every relay at start. */
export interface StoreBuffers {
  readonly buffer: SharedArrayBuffer;
  readonly slots: number;
}

export function createStore(slots: number): StoreBuffers {
  return { buffer: new SharedArrayBuffer(slots * SLOT_BYTES), slots };
}

/** Where a slot's newest valid commit lies. */
interface Found {
  readonly ver: number;
  readonly upTo: number;
  readonly delta: number;
  readonly base: number;
  readonly baseVer: number;
}

/** Versions count up by one per commit and wrap past 2^32 (skipping 0): `a` is newer than `b`. */
function newer(a: number, b: number): boolean {
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x8000_0000;
}

/** The version after `v` (0 means "no record", so it is skipped). */
function nextVer(v: number): number {
  return v >= 0xffff_ffff ? 1 : v + 1;
}

/** A view over a store: reading and copying commits (main thread), and slots to write (relays). */
export class StateStore {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private readonly words: Int32Array;

  constructor(readonly buffers: StoreBuffers) {
    this.bytes = new Uint8Array(buffers.buffer);
    this.view = new DataView(buffers.buffer);
    this.words = new Int32Array(buffers.buffer);
  }

  get slots(): number {
    return this.buffers.slots;
  }

  /**
   * The last input covered by the slot's newest valid commit under `token` that covers
   * no more than `atMost` inputs; 0 when none.
   */
  committedUpTo(slot: number, token: number, atMost = Infinity): number {
    return this.find(slot, token, atMost)?.upTo ?? 0;
  }

  /**
   * Copies the newest valid commit of `from` (under `fromToken`, covering at most
   * `atMost` inputs) into the empty slot `to` under `toToken`, so a new owner continues
   * from it. Returns the input it covers, or
   * null when `from` holds no valid commit.
   */
  copy(from: number, fromToken: number, to: number, toToken: number, atMost = Infinity): number | null {
    const f = this.find(from, fromToken, atMost);
    if (f === null) return null;
    const len = this.view.getUint32(f.base + B_LEN, true);
    const base = SLOT_BYTES * to + BASE_AT[0];
    this.clear(to);
    this.bytes.copyWithin(base + BASE_HEADER, f.base + BASE_HEADER, f.base + BASE_HEADER + len);
    this.sealBase(base, 1, toToken, len);
    const count = this.view.getUint32(f.delta + D_COUNT, true);
    const delta = SLOT_BYTES * to + DELTA_AT[0];
    this.bytes.copyWithin(delta + D_VALUES, f.delta + D_VALUES, f.delta + D_VALUES + 8 * count);
    this.sealDelta(delta, 1, toToken, 1, f.upTo, count);
    return f.upTo;
  }

  /**
   * The newest valid commit of a slot, copied out (the slot may be written again
   * meanwhile): the encoded snapshot, the record state, and the last input covered.
   */
  load(slot: number, token: number): { readonly snapshot: Uint8Array; readonly record: Float64Array; readonly upTo: number } | null {
    const f = this.find(slot, token);
    if (f === null) return null;
    const len = this.view.getUint32(f.base + B_LEN, true);
    const count = this.view.getUint32(f.delta + D_COUNT, true);
    const record = new Float64Array(count);
    for (let i = 0; i < count; i++) record[i] = this.view.getFloat64(f.delta + D_VALUES + 8 * i, true);
    return { snapshot: this.bytes.slice(f.base + BASE_HEADER, f.base + BASE_HEADER + len), record, upTo: f.upTo };
  }

  /** A writer for `slot` under `token`, continuing after whatever valid commit it holds. */
  writer(slot: number, token: number): SlotWriter {
    return new SlotWriter(this, slot, token, this.find(slot, token));
  }

  /** Invalidates every record of a slot (before it is reused). */
  clear(slot: number): void {
    const at = SLOT_BYTES * slot;
    for (const d of DELTA_AT) Atomics.store(this.words, (at + d + D_VER) >> 2, 0);
    for (const b of BASE_AT) Atomics.store(this.words, (at + b + B_VER) >> 2, 0);
    Atomics.store(this.words, (at + IN_HAND) >> 2, 0);
  }

  /** The input the slot's owner was running when it last stopped (0: none). */
  inHand(slot: number): number {
    return Atomics.load(this.words, (SLOT_BYTES * slot + IN_HAND) >> 2) >>> 0;
  }

  /** @internal */
  setInHand(slot: number, seq: number): void {
    Atomics.store(this.words, (SLOT_BYTES * slot + IN_HAND) >> 2, seq | 0);
  }

  // ---- records ----

  private find(slot: number, token: number, atMost = Infinity): Found | null {
    const at = SLOT_BYTES * slot;
    let best: Found | null = null;
    for (const d of DELTA_AT) {
      const delta = at + d;
      const ver = this.validDelta(delta, token);
      if (ver === 0 || (best !== null && !newer(ver, best.ver))) continue;
      if (this.view.getUint32(delta + D_UPTO, true) > atMost) continue;
      const baseVer = this.view.getUint32(delta + D_BASE, true);
      for (const b of BASE_AT) {
        const base = at + b;
        if (this.validBase(base, token) === baseVer) {
          best = { ver, upTo: this.view.getUint32(delta + D_UPTO, true), delta, base, baseVer };
          break;
        }
      }
    }
    return best;
  }

  /** The version of a delta record if it is complete and belongs to `token`, else 0. */
  private validDelta(delta: number, token: number): number {
    const ver = Atomics.load(this.words, (delta + D_VER) >> 2) >>> 0;
    if (ver === 0 || this.view.getUint32(delta + D_TOKEN, true) !== token) return 0;
    const count = this.view.getUint32(delta + D_COUNT, true);
    if (count > MAX_RECORD_VALUES) return 0;
    const crc = crc32(this.bytes.subarray(delta + D_TOKEN, delta + D_CRC), ver);
    return crc32(this.bytes.subarray(delta + D_VALUES, delta + D_VALUES + 8 * count), crc) === this.view.getUint32(delta + D_CRC, true) ? ver : 0;
  }

  /** The version of a base record if it is complete and belongs to `token`, else 0. */
  private validBase(base: number, token: number): number {
    const ver = Atomics.load(this.words, (base + B_VER) >> 2) >>> 0;
    if (ver === 0 || this.view.getUint32(base + B_TOKEN, true) !== token) return 0;
    const len = this.view.getUint32(base + B_LEN, true);
    if (len > MAX_BASE_BYTES) return 0;
    const crc = crc32(this.bytes.subarray(base + BASE_HEADER, base + BASE_HEADER + len), (ver ^ token) >>> 0);
    return crc === this.view.getUint32(base + B_CRC, true) ? ver : 0;
  }

  /** @internal Completes a base record whose bytes are in place: checksum, then the version last. */
  sealBase(base: number, ver: number, token: number, len: number): void {
    this.view.setUint32(base + B_TOKEN, token, true);
    this.view.setUint32(base + B_LEN, len, true);
    this.view.setUint32(base + B_CRC, crc32(this.bytes.subarray(base + BASE_HEADER, base + BASE_HEADER + len), (ver ^ token) >>> 0), true);
    Atomics.store(this.words, (base + B_VER) >> 2, ver | 0);
  }

  /** @internal Completes a delta record whose values are in place. */
  sealDelta(delta: number, ver: number, token: number, baseVer: number, upTo: number, count: number): void {
    this.view.setUint32(delta + D_TOKEN, token, true);
    this.view.setUint32(delta + D_BASE, baseVer, true);
    this.view.setUint32(delta + D_UPTO, upTo, true);
    this.view.setUint32(delta + D_COUNT, count, true);
    const crc = crc32(this.bytes.subarray(delta + D_TOKEN, delta + D_CRC), ver);
    this.view.setUint32(delta + D_CRC, crc32(this.bytes.subarray(delta + D_VALUES, delta + D_VALUES + 8 * count), crc), true);
    Atomics.store(this.words, (delta + D_VER) >> 2, ver | 0);
  }

  /** @internal Marks a record as being rewritten, so a torn copy never carries a valid version. */
  invalidate(record: number): void {
    Atomics.store(this.words, record >> 2, 0);
  }

  /** @internal */
  get dataView(): DataView {
    return this.view;
  }
}

/**
 * Commits one connection's state into its slot (the owner relay; one writer per slot).
 * A commit with a snapshot writes a new base and a delta pointing at it; without one,
 * only a delta (the record state moved, nothing else).
 */
export class SlotWriter {
  private ver: number;
  private baseVer: number;
  /** Index (0/1) of the buffer holding the newest base and the newest delta; -1: none yet. */
  private baseIdx: number;
  private deltaIdx: number;
  private readonly at: number;

  /** @internal made by {@link StateStore.writer}. */
  constructor(
    private readonly store: StateStore,
    readonly slot: number,
    readonly token: number,
    found: Found | null,
  ) {
    this.at = SLOT_BYTES * slot;
    this.ver = found?.ver ?? 0;
    this.baseVer = found?.baseVer ?? 0;
    this.baseIdx = found ? BASE_AT.indexOf((found.base - this.at) as (typeof BASE_AT)[number]) : -1;
    this.deltaIdx = found ? DELTA_AT.indexOf((found.delta - this.at) as (typeof DELTA_AT)[number]) : -1;
  }

  /** Says which input the engine is running (0 once it is done), for the takeover to read if this thread dies. */
  inHand(seq: number): void {
    this.store.setInHand(this.slot, seq);
  }

  /** True once the slot holds a base (the first commit must carry a snapshot). */
  get hasBase(): boolean {
    return this.baseIdx >= 0;
  }

  /**
   * Commits the state after input `upTo`: `snapshot` (encoded, at most
   * {@link MAX_BASE_BYTES}) when more than the record state changed, else null; and the
   * record state `record`. False when the snapshot does not fit (nothing was written).
   */
  commit(upTo: number, snapshot: Uint8Array | null, record: Float64Array): boolean {
    const { store } = this;
    const view = store.dataView;
    if (snapshot !== null) {
      if (snapshot.length > MAX_BASE_BYTES) return false;
      const idx = this.baseIdx === 0 ? 1 : 0;
      const base = this.at + BASE_AT[idx];
      store.invalidate(base + B_VER);
      store.bytes.set(snapshot, base + BASE_HEADER);
      this.baseVer = nextVer(this.baseVer);
      store.sealBase(base, this.baseVer, this.token, snapshot.length);
      this.baseIdx = idx;
    } else if (this.baseIdx < 0) {
      throw new RangeError('the first commit of a slot must carry a snapshot');
    }
    if (record.length > MAX_RECORD_VALUES) throw new RangeError(`a record state holds at most ${MAX_RECORD_VALUES} values`);
    const idx = this.deltaIdx === 0 ? 1 : 0;
    const delta = this.at + DELTA_AT[idx];
    store.invalidate(delta + D_VER);
    for (let i = 0; i < record.length; i++) view.setFloat64(delta + D_VALUES + 8 * i, record[i]!, true);
    this.ver = nextVer(this.ver);
    store.sealDelta(delta, this.ver, this.token, this.baseVer, upTo, record.length);
    this.deltaIdx = idx;
    return true;
  }
}

/** The main thread's bookkeeping of free slots and slot tokens. */
export class SlotAllocator {
  private readonly free: number[];
  private nextToken = 1;

  constructor(private readonly store: StateStore) {
    this.free = Array.from({ length: store.slots }, (_, i) => store.slots - 1 - i);
  }

  get available(): number {
    return this.free.length;
  }

  /** A cleared slot and a fresh token, or null when every slot is taken. */
  allocate(): { readonly slot: number; readonly token: number } | null {
    const slot = this.free.pop();
    if (slot === undefined) return null;
    this.store.clear(slot);
    const token = this.nextToken;
    this.nextToken = this.nextToken >= 0xffff_fffe ? 1 : this.nextToken + 1;
    return { slot, token };
  }

  release(slot: number): void {
    this.free.push(slot);
  }
}
