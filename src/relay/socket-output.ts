/**
 * What one socket is to be sent, gathered over one read of relay entries and written
 * in one go, straight from the arena chunks the relay wrote it into (no copy). A
 * chunk stays held until the socket has taken the bytes: the write's callback lets it
 * go. A socket that is already behind gets copies instead, so a slow peer holds at
 * most the chunks of one write, never the relay's output ring.
 */
import type net from 'node:net';
import type { ChunkLedger } from './chunk-ledger.js';

export class SocketOutput {
  private pieces: Buffer[] = [];
  /** The chunk each piece holds (-1: a copy, holding nothing). */
  private chunks: number[] = [];
  /** Chunks held by writes handed to the socket, in write order (callbacks come in that order). */
  private readonly inflight: number[] = [];
  private readonly written = (): void => {
    const c = this.inflight.shift();
    if (c !== undefined) this.ledger.unref(c);
  };

  constructor(private readonly ledger: ChunkLedger) {}

  /** Bytes queued and not yet written. */
  get pending(): boolean {
    return this.pieces.length > 0;
  }

  /** Queues arena bytes [from, to) of chunk `chunk` (held once more until written). */
  add(chunk: number, from: number, to: number): void {
    const a = this.ledger.arena;
    const n = this.pieces.length;
    const last = this.pieces[n - 1];
    // Records the relay wrote one after another for this socket: one piece.
    if (last !== undefined && this.chunks[n - 1] === chunk && last.byteOffset + last.length === from) {
      this.pieces[n - 1] = a.buffer.subarray(last.byteOffset, to);
      return;
    }
    this.ledger.ref(chunk);
    this.pieces.push(a.buffer.subarray(from, to));
    this.chunks.push(chunk);
  }

  /** Queues bytes of the caller's (held output released late): copied. */
  addCopy(bytes: Uint8Array): void {
    this.pieces.push(Buffer.from(bytes));
    this.chunks.push(-1);
  }

  /** Writes what is queued, in order, as one writev; false when the socket wants a drain. */
  flush(socket: net.Socket): boolean {
    const pieces = this.pieces;
    const chunks = this.chunks;
    this.pieces = [];
    this.chunks = [];
    if (socket.destroyed) {
      for (const c of chunks) if (c >= 0) this.ledger.unref(c);
      return true;
    }
    // Bytes still waiting in the socket mean the peer is behind: those writes would hold
    // their chunks for as long as it stays behind, so they get copies.
    const behind = socket.writableLength > 0;
    const many = pieces.length > 1;
    if (many) socket.cork();
    let ok = true;
    for (let i = 0; i < pieces.length; i++) {
      const c = chunks[i]!;
      if (c < 0) ok = socket.write(pieces[i]!);
      else if (behind) {
        ok = socket.write(Buffer.from(pieces[i]!));
        this.ledger.unref(c);
      } else {
        this.inflight.push(c);
        ok = socket.write(pieces[i]!, this.written);
      }
    }
    if (many) socket.uncork();
    return ok;
  }

  /** Bytes of this turn that will not be written (the connection ended): let go. */
  drop(): void {
    for (const c of this.chunks) if (c >= 0) this.ledger.unref(c);
    this.pieces = [];
    this.chunks = [];
  }

  /** Total bytes queued (for counters). */
  get bytes(): number {
    let n = 0;
    for (const p of this.pieces) n += p.length;
    return n;
  }
}
