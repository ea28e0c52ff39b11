/**
 * The gateway's side of one relay incarnation's data channel: writes Open, Input,
 * Promote and Forget entries in order (queued in order while the ring is full; an
 * Input names where its bytes lie in the arena, it does not carry them), wakes
 * the relay at most once per event-loop turn, and reads the relay's entries when it
 * announces them, handing each to the gateway in place.
 */
import type { ChannelEnd } from '../actors/index.js';
import { HEADER_BYTES, InputCode, ToRelay, writeHeader, type InputKindName } from './wire.js';

/** Called for every entry from the relay, in order; the bytes are valid during the call only. */
/** How long an entry nobody waits on (Forget) may sit before the relay is woken for it. */
const LAZY_WAKE_MS = 20;

export type EntryHandler = (view: DataView, bytes: Uint8Array, at: number, length: number) => void;

/** An entry waiting for room in the ring. */
interface Queued {
  readonly type: number;
  readonly aux16: number;
  readonly conn: number;
  readonly epoch: number;
  readonly seq: number;
  readonly offset: number;
  readonly aux32: number;
  readonly aux32b: number;
  readonly length: number;
}

export class RelayLink {
  private readonly queue: Queued[] = [];
  private wakeScheduled = false;
  private lazyWake: NodeJS.Timeout | null = null;
  private waitingForRoom = false;
  private closed = false;

  constructor(
    private readonly end: ChannelEnd,
    private readonly onEntry: EntryHandler,
    /** After every read of the relay's entries (the gateway writes sockets then). */
    private readonly onDrained: () => void,
  ) {
    this.listen();
  }

  open(conn: number, epoch: number, slot: number, token: number): void {
    // No wake-up: the connection's first input follows, and wakes the relay.
    this.put(ToRelay.Open, 0, conn, epoch, 0, -1, slot, token, 0, 'lazy');
  }

  /** Input `seq`, whose bytes are arena chunk `chunk` at [offset, offset + length) (chunk -1: none). */
  input(conn: number, epoch: number, seq: number, kind: InputKindName, chunk: number, offset: number, length: number): void {
    this.put(ToRelay.Input, InputCode[kind], conn, epoch, seq, -1, chunk < 0 ? 0 : chunk, offset, length);
  }

  /** `quarantineAfter`: replay up to it, then end the connection with an alert (null: carry on). */
  promote(conn: number, epoch: number, slot: number, token: number, quarantineAfter: number | null): void {
    // A takeover waits on it: woken now, not at the end of this turn (which, on a loaded
    // main thread, runs on through every socket's I/O for milliseconds).
    this.put(ToRelay.Promote, 0, conn, epoch, 0, quarantineAfter ?? -1, slot, token, 0, 'now');
  }

  forget(conn: number, epoch: number): void {
    // Nothing waits on it but the slot's reuse: it rides with the next wake-up, or a lazy one.
    this.put(ToRelay.Forget, 0, conn, epoch, 0, -1, 0, 0, 0, 'lazy');
  }

  /** Reads every entry the relay published (also after it died: its last words count). */
  drain(): void {
    const { reader } = this.end;
    let at: number;
    while ((at = reader.next()) >= 0) this.onEntry(reader.view, reader.bytes, at, reader.length);
    reader.release();
    this.onDrained();
  }

  /** Stops listening and writing (the incarnation is gone). Idempotent. */
  close(): void {
    this.closed = true;
    if (this.lazyWake !== null) clearTimeout(this.lazyWake);
    this.queue.length = 0;
  }

  private listen(): void {
    if (this.closed) return;
    this.end.reader.wait().then(() => {
      if (this.closed) return;
      this.drain();
      // A closed ring (the incarnation ended) has nothing more to say.
      if (!this.end.reader.closed) this.listen();
    });
  }

  private put(
    type: number,
    aux16: number,
    conn: number,
    epoch: number,
    seq: number,
    offset: number,
    aux32: number,
    aux32b: number,
    length: number,
    wake: 'now' | 'turn' | 'lazy' = 'turn',
  ): void {
    if (this.closed) return;
    if (this.queue.length === 0 && this.write(type, aux16, conn, epoch, seq, offset, aux32, aux32b, length)) {
      if (wake === 'now') this.end.writer.publish(true);
      else if (wake === 'turn') this.scheduleWake();
      else this.scheduleLazyWake();
      return;
    }
    this.queue.push({ type, aux16, conn, epoch, seq, offset, aux32, aux32b, length });
    this.awaitRoom();
  }

  /** Writes one entry and publishes it (without waking: see {@link scheduleWake}). */
  private write(
    type: number,
    aux16: number,
    conn: number,
    epoch: number,
    seq: number,
    offset: number,
    aux32: number,
    aux32b: number,
    length: number,
  ): boolean {
    const w = this.end.writer;
    const at = w.reserve(HEADER_BYTES);
    if (at < 0) return false;
    writeHeader(w.view, at, type, 0, aux16, conn, epoch, seq, offset, aux32, aux32b, length);
    w.commit(HEADER_BYTES);
    // Visible at once to a relay that is awake; a sleeping one is woken once per turn.
    w.publish(false);
    return true;
  }

  private scheduleWake(): void {
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      if (!this.closed) this.end.writer.publish(true);
    });
  }

  /** For entries nobody waits on: a wake-up later, unless a prompt one comes first. */
  private scheduleLazyWake(): void {
    if (this.lazyWake !== null) return;
    this.lazyWake = setTimeout(() => {
      this.lazyWake = null;
      if (!this.closed) this.end.writer.publish(true);
    }, LAZY_WAKE_MS);
    this.lazyWake.unref();
  }

  private awaitRoom(): void {
    if (this.waitingForRoom || this.closed) return;
    this.waitingForRoom = true;
    this.end.writer.waitForRoom().then(() => {
      this.waitingForRoom = false;
      if (this.closed) return;
      while (this.queue.length) {
        const q = this.queue[0]!;
        if (!this.write(q.type, q.aux16, q.conn, q.epoch, q.seq, q.offset, q.aux32, q.aux32b, q.length)) break;
        this.queue.shift();
      }
      this.scheduleWake();
      if (this.queue.length) this.awaitRoom();
    });
  }
}
