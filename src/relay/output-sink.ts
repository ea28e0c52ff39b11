/**
 * The relay's TlsSink: the engine seals and opens records straight into the data
 * channel's ring toward the gateway, one entry per piece, each stamped with its
 * connection, epoch, input number and stream offset (so the gateway can skip what an
 * earlier owner already wrote). Events become a Done entry after each input.
 */
import type { RingWriter } from '../actors/index.js';
import type { TlsEvent, TlsSink } from '../tls/index.js';
import { EventBit, FromRelay, HEADER_BYTES, encodeFacts, writeHeader, type HandshakeFacts } from './wire.js';

export class OutputSink implements TlsSink {
  private conn = 0;
  private epoch = 0;
  private seq = 0;
  private flags = 0;
  private clientOffset = 0;
  private backendOffset = 0;
  /** Where the entry reserved last starts in the ring. */
  private at = -1;
  private events = 0;
  private facts: HandshakeFacts | null = null;
  /** A KeyUpdate happened during this input (for the duringKeyUpdate fault point). */
  keyUpdated = false;

  constructor(private readonly ring: RingWriter) {}

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
  }

  reserve(n: number): Uint8Array {
    const at = this.ring.reserve(HEADER_BYTES + n);
    // The relay checked the room for the whole input before handing it to the engine.
    if (at < 0) throw new RangeError(`no room for ${n} bytes of output in the data channel`);
    this.at = at;
    return this.ring.bytes.subarray(at + HEADER_BYTES, at + HEADER_BYTES + n);
  }

  toClient(n: number): void {
    writeHeader(this.ring.view, this.at, FromRelay.ToClient, this.flags, 0, this.conn, this.epoch, this.seq, this.clientOffset, 0, 0);
    this.ring.commit(HEADER_BYTES + n);
    this.clientOffset += n;
  }

  toApplication(n: number): void {
    writeHeader(this.ring.view, this.at, FromRelay.ToBackend, this.flags, 0, this.conn, this.epoch, this.seq, this.backendOffset, 0, 0);
    this.ring.commit(HEADER_BYTES + n);
    this.backendOffset += n;
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
        return;
      case 'alertSent':
      case 'alertReceived':
      case 'keyLog':
        return;
    }
  }

  /** Ends the input's output with its Done entry (every input gets one, even with no output). */
  done(): void {
    const facts = this.facts === null ? null : encodeFacts(this.facts);
    const n = facts?.length ?? 0;
    const at = this.ring.reserve(HEADER_BYTES + n);
    if (at < 0) throw new RangeError('no room for a Done entry in the data channel');
    writeHeader(this.ring.view, at, FromRelay.Done, this.flags, this.events, this.conn, this.epoch, this.seq, -1, 0, 0);
    if (facts) this.ring.bytes.set(facts, at + HEADER_BYTES);
    this.ring.commit(HEADER_BYTES + n);
  }

  /** A bodiless entry (Committed, Promoted, Forgotten). */
  notice(type: number, conn: number, epoch: number, seq: number): void {
    const at = this.ring.reserve(HEADER_BYTES);
    if (at < 0) throw new RangeError('no room for a notice in the data channel');
    writeHeader(this.ring.view, at, type, 0, 0, conn, epoch, seq, -1, 0, 0);
    this.ring.commit(HEADER_BYTES);
  }
}
