/**
 * The relay's TlsSink: the engine seals and opens records straight into arena chunks
 * this relay took, and each piece is announced on the data channel by an entry naming
 * where it lies, stamped with its connection, epoch, input number and stream offset
 * (so the gateway can skip what an earlier owner already wrote). The gateway writes
 * the pieces to sockets from the arena itself. Events become a Done entry after each
 * input.
 */
import type { Arena, RingWriter } from '../actors/index.js';
import type { TlsEvent, TlsSink } from '../tls/index.js';
import { EventBit, FromRelay, HEADER_BYTES, encodeFacts, writeHeader, type HandshakeFacts } from './wire.js';

export class OutputSink implements TlsSink {
  private conn = 0;
  private epoch = 0;
  private seq = 0;
  private flags = 0;
  private clientOffset = 0;
  private backendOffset = 0;
  /** The chunk written now (-1: none yet), and where in it the next piece goes. */
  private chunk = -1;
  private pos = 0;
  /** Chunks taken and not yet written. */
  private readonly spare: number[] = [];
  /** The piece reserved last: where it starts in its chunk. */
  private pieceAt = 0;
  private events = 0;
  private facts: HandshakeFacts | null = null;
  /** A KeyUpdate happened during this input (for the duringKeyUpdate fault point). */
  keyUpdated = false;
  /** This input made output: a piece, or an event the gateway acts on. */
  produced = false;

  constructor(
    private readonly ring: RingWriter,
    private readonly arena: Arena,
    /** This relay incarnation's name in the arena's owner table. */
    private readonly owner: number,
  ) {}

  /**
   * Makes sure `bytes` of output, in pieces of at most `maxPiece` bytes, fit in the
   * chunks held now, taking more as needed. False when the arena has no free chunk:
   * wait for one (Arena.waitForChunk) and try again.
   */
  ensure(bytes: number, maxPiece: number): boolean {
    const usable = this.arena.chunkBytes - maxPiece;
    let room = (this.chunk < 0 ? 0 : Math.max(0, this.arena.chunkBytes - this.pos - maxPiece)) + this.spare.length * usable;
    while (room < bytes) {
      const c = this.arena.take(this.owner);
      if (c < 0) return false;
      this.spare.push(c);
      room += usable;
    }
    return true;
  }

  /** Starts the output of one input: `flags` go on every entry (Held while handshaking). */
  begin(conn: number, epoch: number, seq: number, flags: number, clientOffset: number, backendOffset: number): void {
    this.conn = conn;
    this.epoch = epoch;
    this.seq = seq;
    this.flags = flags;
    this.clientOffset = clientOffset;
    this.backendOffset = backendOffset;
    this.events = 0;
    this.facts = null;
    this.keyUpdated = false;
    this.produced = false;
  }

  reserve(n: number): Uint8Array {
    if (this.chunk < 0 || this.arena.chunkBytes - this.pos < n) this.nextChunk();
    this.pieceAt = this.pos;
    const at = this.arena.offset(this.chunk) + this.pos;
    return this.arena.bytes.subarray(at, at + n);
  }

  toClient(n: number): void {
    this.piece(FromRelay.ToClient, this.clientOffset, n);
    this.clientOffset += n;
  }

  toApplication(n: number): void {
    this.piece(FromRelay.ToBackend, this.backendOffset, n);
    this.backendOffset += n;
  }

  /** Announces the piece reserved last, `n` bytes long. */
  private piece(type: number, offset: number, n: number): void {
    this.produced = true;
    const at = this.ring.reserve(HEADER_BYTES);
    // The relay checked the room for the whole input before handing it to the engine.
    if (at < 0) throw new RangeError('no room for an output entry in the data channel');
    writeHeader(this.ring.view, at, type, this.flags, 0, this.conn, this.epoch, this.seq, offset, this.chunk, this.pieceAt, n);
    this.ring.commit(HEADER_BYTES);
    // Pieces start 8-aligned, so the engine's writes stay word-aligned.
    this.pos = Math.min(this.arena.chunkBytes, (this.pieceAt + n + 7) & ~7);
  }

  /** Moves to a spare chunk (the relay ensured one), telling the gateway it is done with the last. */
  private nextChunk(): void {
    if (this.chunk >= 0) this.notice(FromRelay.ChunkDone, 0, 0, 0, this.chunk);
    const c = this.spare.pop();
    if (c === undefined) throw new RangeError('no arena chunk for output (the relay ensures room first)');
    this.chunk = c;
    this.pos = 0;
  }

  event(e: TlsEvent): void {
    switch (e.type) {
      case 'handshakeDone':
        this.events |= EventBit.HandshakeDone;
        this.facts = { alpn: e.alpn, serverName: e.serverName, resumed: e.resumed, cipherSuite: e.cipherSuite };
        return;
      case 'peerClosed':
        this.events |= EventBit.PeerClosed;
        return;
      case 'closed':
        this.events |= EventBit.Closed | (e.error ? EventBit.ClosedWithError : 0);
        return;
      case 'keyUpdated':
        this.keyUpdated = true;
        if (e.answer) this.events |= EventBit.KeyUpdateAnswered;
        return;
      case 'limitExceeded':
        this.events |= e.limit === 'handshakeChangeCipherSpecs' ? EventBit.HandshakeChangeCipherSpecs : EventBit.HandshakeWarningAlerts;
        return;
      case 'sessionIssued':
        this.sessionIssued(e.id, e.entry);
        return;
      case 'alertSent':
      case 'alertReceived':
      case 'keyLog':
        return;
    }
  }

  /** A SessionIssued entry: the id and sealed entry of a stateful ticket, for the gateway to store. */
  private sessionIssued(id: Uint8Array, entry: Uint8Array): void {
    const n = id.length + entry.length;
    const at = this.ring.reserve(HEADER_BYTES + n);
    if (at < 0) throw new RangeError('no room for a SessionIssued entry in the data channel');
    writeHeader(this.ring.view, at, FromRelay.SessionIssued, 0, 0, this.conn, this.epoch, this.seq, -1, 0, 0, n);
    this.ring.bytes.set(id, at + HEADER_BYTES);
    this.ring.bytes.set(entry, at + HEADER_BYTES + id.length);
    this.ring.commit(HEADER_BYTES + n);
  }

  /** Ends the input's output with its Done entry (every input gets one, even with no output). */
  done(): void {
    if (this.events !== 0) this.produced = true;
    const facts = this.facts === null ? null : encodeFacts(this.facts);
    const n = facts?.length ?? 0;
    const at = this.ring.reserve(HEADER_BYTES + n);
    if (at < 0) throw new RangeError('no room for a Done entry in the data channel');
    writeHeader(this.ring.view, at, FromRelay.Done, this.flags, this.events, this.conn, this.epoch, this.seq, -1, 0, 0);
    if (facts) this.ring.bytes.set(facts, at + HEADER_BYTES);
    this.ring.commit(HEADER_BYTES + n);
  }

  /** A bodiless entry (Committed, Promoted, Forgotten, ChunkDone). */
  notice(type: number, conn: number, epoch: number, seq: number, aux32 = 0): void {
    const at = this.ring.reserve(HEADER_BYTES);
    if (at < 0) throw new RangeError('no room for a notice in the data channel');
    writeHeader(this.ring.view, at, type, 0, 0, conn, epoch, seq, -1, aux32, 0);
    this.ring.commit(HEADER_BYTES);
  }
}
