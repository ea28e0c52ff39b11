/**
 * Reads one side of a connection (client ciphertext, or backend plaintext) straight
 * into the shared arena, and cuts it into inputs: whole records for the client side
 * (framing.ts), whole reads for the backend side. Each input is a range of one arena
 * chunk, held once for the retained queue; nothing is allocated per read.
 *
 * A side that reads in bulk reads into a chunk of its own (no copy at all: records
 * assemble in place, and relays read them there). A side that reads little (a
 * handshake, an echo, an idle connection) shares one scratch buffer with every other
 * such side and has its few bytes copied into a shared chunk, so an idle connection
 * holds no chunk.
 */
import net from 'node:net';
import type { ChunkLedger, SmallAllocator } from './chunk-ledger.js';
import { recordsEnd } from './framing.js';

/** A read this large moves a side into a chunk of its own; one this small back to the scratch buffer. */
const BULK_READ = 16 << 10;
const SMALL_READ = 2 << 10;
/** The largest read, and the least room a side's own chunk must have left for the next one. */
const MAX_READ = 64 << 10;
const MIN_READ = 32 << 10;

/** Called with each input: its bytes are arena chunk `chunk` at [offset, offset + length), held once for the callee. */
export type InputSink = (chunk: number, offset: number, length: number) => void;

export class SocketInput {
  /** Own chunk (-1: reading into scratch), and the bytes in it not yet handed on ([start, end)). */
  private chunk = -1;
  private start = 0;
  private end = 0;
  /** Scratch mode: the start of a record still incomplete (copied out of the scratch buffer). */
  private partial: Buffer | null = null;
  /** The arena ran out: reading stops until room comes back (see {@link resume}). */
  starved = false;

  /** Node's `onread` option for this side's socket. */
  readonly onread: { buffer: () => Uint8Array; callback: (n: number, buf: Uint8Array) => boolean };

  constructor(
    private readonly ledger: ChunkLedger,
    private readonly small: SmallAllocator,
    private readonly scratch: Buffer,
    /** Client side: cut into whole records; backend side: any bytes. */
    private readonly framed: boolean,
    private readonly emit: InputSink,
  ) {
    this.onread = { buffer: () => this.nextBuffer(), callback: (n, buf) => this.onRead(n, buf) };
  }

  /** Bytes held back, waiting for the rest of a record. */
  get buffered(): number {
    return this.chunk >= 0 ? this.end - this.start : (this.partial?.length ?? 0);
  }

  /** Bytes read some other way (a socket without `onread`): as if read into scratch. */
  push(data: Buffer): void {
    for (let at = 0; at < data.length; at += this.scratch.length) {
      const n = Math.min(this.scratch.length, data.length - at);
      data.copy(this.scratch, 0, at, at + n);
      this.fromScratch(n, false);
    }
  }

  /** The side is over: its own chunk is let go. Idempotent. */
  close(): void {
    if (this.chunk >= 0) this.ledger.unref(this.chunk);
    this.chunk = -1;
    this.partial = null;
  }

  private nextBuffer(): Uint8Array {
    if (this.chunk < 0) return this.scratch;
    const a = this.ledger.arena;
    if (a.chunkBytes - this.end < MIN_READ && !this.moveOn()) return this.scratch;
    const base = a.offset(this.chunk);
    return a.buffer.subarray(base + this.end, base + Math.min(a.chunkBytes, this.end + MAX_READ));
  }

  private onRead(n: number, buf: Uint8Array): boolean {
    if (buf === this.scratch) this.fromScratch(n, true);
    else this.fromOwn(n);
    return true;
  }

  private fromOwn(n: number): void {
    const a = this.ledger.arena;
    const base = a.offset(this.chunk);
    this.end += n;
    const end = this.framed ? recordsEnd(a.bytes, base + this.start, base + this.end) - base : this.end;
    if (end > this.start) {
      this.ledger.ref(this.chunk);
      this.emit(this.chunk, this.start, end - this.start);
      this.start = end;
    }
    // Trickling: give the chunk back and share the scratch buffer again.
    if (n < SMALL_READ) this.leaveOwn();
  }

  /** Back to reading into scratch: the incomplete record is copied out, the own chunk let go. */
  private leaveOwn(): void {
    const a = this.ledger.arena;
    const base = a.offset(this.chunk);
    this.partial = this.end > this.start ? Buffer.from(a.buffer.subarray(base + this.start, base + this.end)) : null;
    this.ledger.unref(this.chunk);
    this.chunk = -1;
  }

  /** `n` bytes are at the start of the scratch buffer. */
  private fromScratch(n: number, fromSocket: boolean): void {
    let data: Uint8Array = this.scratch.subarray(0, n);
    if (this.partial) data = Buffer.concat([this.partial, data]);
    const end = this.framed ? recordsEnd(data, 0, data.length) : data.length;
    if (end > 0) {
      const room = this.small.alloc(end);
      if (room === null) {
        // No chunk left: keep the bytes, stop reading until chunks come back.
        this.partial = Buffer.from(data);
        this.starved = true;
        return;
      }
      const [chunk, offset] = room;
      const a = this.ledger.arena;
      a.bytes.set(data.subarray(0, end), a.offset(chunk) + offset);
      this.emit(chunk, offset, end);
    }
    this.partial = end < data.length ? Buffer.from(data.subarray(end)) : null;
    // Reading in bulk: read into a chunk of our own from now on, starting with what is held back.
    if (fromSocket && n >= BULK_READ) this.takeOwn();
  }

  /** Retries what was held for lack of chunks; true when the side may read again. */
  resume(): boolean {
    if (!this.starved) return true;
    this.starved = false;
    const held = this.partial;
    this.partial = null;
    if (held) this.push(held);
    return !this.starved;
  }

  private takeOwn(): void {
    const c = this.ledger.take();
    if (c < 0) return;
    this.chunk = c;
    this.start = 0;
    this.end = 0;
    if (this.partial) {
      const a = this.ledger.arena;
      a.bytes.set(this.partial, a.offset(c));
      this.end = this.partial.length;
      this.partial = null;
    }
  }

  /** The own chunk is nearly full: continue in a fresh one, carrying the incomplete record over. False when none is free. */
  private moveOn(): boolean {
    const c = this.ledger.take();
    if (c < 0) {
      this.leaveOwn();
      return false;
    }
    const a = this.ledger.arena;
    const from = a.offset(this.chunk);
    a.bytes.copyWithin(a.offset(c), from + this.start, from + this.end);
    this.end -= this.start;
    this.start = 0;
    this.ledger.unref(this.chunk);
    this.chunk = c;
    return true;
  }
}

/**
 * Node gives `onread` only to sockets it connects itself, not to those a server
 * accepts. A gateway's server hands its accepted handles here instead (see
 * {@link takeAccepts}): one Socket per connection, reading with `onread`.
 */
export function acceptedSocket(handle: object, onread: SocketInput['onread']): net.Socket {
  const s = new net.Socket({ handle, allowHalfOpen: true, readable: true, writable: true, onread } as net.SocketConstructorOpts);
  s.setNoDelay(true);
  return s;
}

/**
 * Makes a listening server hand each accepted connection's handle to `accept` rather
 * than wrap it in a Socket of its own (which could not read with `onread`). This uses
 * Node's internal `_handle.onconnection`; false where it is not there (then the server
 * emits 'connection' as usual and the caller reads 'data' events).
 */
export function takeAccepts(server: net.Server, accept: (handle: object) => void): boolean {
  const handle = (server as unknown as { _handle?: { onconnection?: unknown } | null })._handle;
  if (!handle || typeof handle.onconnection !== 'function') return false;
  // Node's signature: (status, clientHandle); a failed accept (EMFILE...) is dropped.
  handle.onconnection = (status: number, clientHandle: object | undefined) => {
    if (status === 0 && clientHandle) accept(clientHandle);
  };
  return true;
}
