/**
 * The record layer of a server connection (RFC 8446 section 5): each direction's
 * protection (traffic state and cipher, replaced together), reassembly of records and
 * handshake messages arriving in pieces, and records out (fragmented, sealed or plain,
 * written straight into the sink's memory). What the records carry is the engine's.
 */
import { concat } from '../../util/bytes.js';
import { RecordOpener, RecordSealer, sealedRecordLength } from '../crypto/record-protection.js';
import { nextTrafficSecret } from '../crypto/key-schedule.js';
import type { Suite } from '../crypto/suites.js';
import { TlsError } from '../errors.js';
import type { Counters, TrafficState } from '../state.js';
import type { TlsSink } from '../types.js';
import { ContentType, MAX_CIPHERTEXT, RECORD_HEADER_LEN } from '../wire/constants.js';

/** The largest handshake message we buffer; ClientHellos are far smaller. */
const MAX_HANDSHAKE_MESSAGE = 1 << 17;

/** One direction's protection: the traffic state a snapshot keeps, and its cipher. */
export interface Protection<C extends RecordSealer | RecordOpener> {
  readonly traffic: TrafficState;
  readonly cipher: C;
}

/** `traffic` with the sequence number its cipher has reached, for a snapshot. */
export function trafficNow(p: Protection<RecordSealer | RecordOpener> | null): TrafficState | null {
  return p && { ...p.traffic, seq: BigInt(p.cipher.seq) };
}

/**
 * Appendix D.5: TLS 1.3 MUST NOT be negotiated with an SSL 2.0 compatible CLIENT-HELLO,
 * whose two-byte header has the high bit set (no TLS content type does). Refused from its
 * first bytes: read as a TLS header its "length" is the v2 version field, and we would
 * wait for bytes that never come. protocol_version, as OpenSSL answers (it parses the v2
 * hello, which cannot carry supported_versions, so offers at most TLS 1.2): the message is
 * well formed, we refuse its version, so decode_error would misname the failure.
 */
export function refuseSslv2Hello(buf: Uint8Array, at: number, pendingHandshake: number): void {
  if (pendingHandshake === 0 && (buf[at]! & 0x80) !== 0) {
    throw new TlsError('sslv2_client_hello', 'SSL 2.0 compatible ClientHello');
  }
}

/** Where the record whose header starts at `at` ends (its header read whole: 5 bytes are there). */
export function recordEnd(buf: Uint8Array, at: number): number {
  const length = (buf[at + 3]! << 8) | buf[at + 4]!;
  // Section 5.2: a record longer than 2^14 + 256 is record_overflow.
  if (length > MAX_CIPHERTEXT) throw new TlsError('record_overflow_ciphertext', 'record longer than 2^14 + 256 bytes');
  return at + RECORD_HEADER_LEN + length;
}

/** Where the handshake message at the start of `buf` ends (its 4-byte header is there). */
export function handshakeMessageEnd(buf: Uint8Array): number {
  const length = (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!;
  if (length > MAX_HANDSHAKE_MESSAGE) throw new TlsError('handshake_message_too_large', 'handshake message too large');
  return 4 + length;
}

/**
 * The room holding `pending` + `more`: `room` itself when `pending` is its prefix and it
 * has space, else a new one of at least `size` bytes (what the header announces). Bytes
 * arriving in many pieces are so copied about once, not once per piece (linear, not
 * quadratic, in their length). The pending bytes stay a view of the room between calls.
 */
function appendInRoom(room: Uint8Array | null, pending: Uint8Array, more: Uint8Array, size: number): Uint8Array {
  const need = pending.length + more.length;
  const prefixRoom = room !== null && room.buffer === pending.buffer && room.byteOffset === pending.byteOffset ? room : null;
  let into: Uint8Array;
  if (prefixRoom === null || prefixRoom.length < need) {
    into = new Uint8Array(Math.max(need, size, prefixRoom ? 2 * prefixRoom.length : 0));
    into.set(pending, 0);
  } else {
    into = prefixRoom;
  }
  into.set(more, pending.length);
  return into;
}

/** Section 7.2: the next application traffic secret of a direction, its sequence number back at 0. */
function nextTraffic(p: Protection<RecordSealer | RecordOpener>): TrafficState {
  return {
    secret: nextTrafficSecret(p.cipher.suite.hash, p.traffic.secret),
    seq: 0n,
    generation: p.traffic.generation + 1,
    application: true,
  };
}

/** A KeyUpdate only comes once the connection is established, both directions keyed: our bug otherwise. */
function unkeyed(direction: 'read' | 'write'): never {
  throw new TlsError('key_update_before_keys', `a KeyUpdate of the ${direction} key before there is one`);
}

export class RecordLayer {
  /** Null while the direction is unprotected. */
  private readKey: Protection<RecordOpener> | null = null;
  private writeKey: Protection<RecordSealer> | null = null;
  /** Largest plaintext per record we write: ours, then the negotiated one once records are sealed. */
  private maxPlaintext: number;
  /** Where a handshake message over several records is reassembled (see appendToPendingHandshake). */
  private assembly: Uint8Array | null = null;
  /** Where a record over several `receive()` calls is reassembled (see appendToPendingRecord). */
  private recordRoom: Uint8Array | null = null;

  /** `counters` is the connection's own (bytes to the client are counted here). */
  constructor(
    private readonly counters: Counters,
    maxPlaintext: number,
  ) {
    this.maxPlaintext = maxPlaintext;
  }

  // ---- keys ----

  get read(): Protection<RecordOpener> | null {
    return this.readKey;
  }

  get write(): Protection<RecordSealer> | null {
    return this.writeKey;
  }

  /** The opener of records from the client, or null before they are protected. */
  get opener(): RecordOpener | null {
    return this.readKey && this.readKey.cipher;
  }

  /** A new read key; the previous one's cipher state is freed. */
  setRead(suite: Suite, t: TrafficState): void {
    this.readKey?.cipher.free();
    this.readKey = { traffic: t, cipher: new RecordOpener(suite, t.secret, Number(t.seq)) };
  }

  /** A new write key (its records hold at most `maxPlaintext` bytes); the previous one's cipher state is freed. */
  setWrite(suite: Suite, t: TrafficState, maxPlaintext: number): void {
    this.writeKey?.cipher.free();
    this.writeKey = { traffic: t, cipher: new RecordSealer(suite, t.secret, Number(t.seq)) };
    this.maxPlaintext = maxPlaintext;
  }

  /** Section 4.6.3: the read key after the client's KeyUpdate, in place of the current one. */
  updateReadKey(): TrafficState {
    const read = this.readKey ?? unkeyed('read');
    const t = nextTraffic(read);
    this.setRead(read.cipher.suite, t);
    return t;
  }

  /** Section 4.6.3: the write key after our KeyUpdate (sealed under the current one), in its place. */
  updateWriteKey(): TrafficState {
    const write = this.writeKey ?? unkeyed('write');
    const t = nextTraffic(write);
    this.setWrite(write.cipher.suite, t, this.maxPlaintext);
    return t;
  }

  /** Section 5.5: whether the write key has sealed `limit` records (time for a KeyUpdate). */
  writeLimitReached(limit: number): boolean {
    return this.writeKey !== null && this.writeKey.cipher.seq >= limit;
  }

  /** Section 5.5: whether the read key has opened `limit` records. */
  readLimitReached(limit: number): boolean {
    return this.readKey !== null && this.readKey.cipher.seq >= limit;
  }

  /** Nothing is sealed or opened again; the sequence numbers stay readable for a snapshot. */
  free(): void {
    this.writeKey?.cipher.free();
    this.readKey?.cipher.free();
  }

  // ---- reassembly ----

  /** `pending` (the pending record bytes) + `bytes`, in a room sized for the record its header announces. */
  appendToPendingRecord(pending: Uint8Array, bytes: Uint8Array): Uint8Array {
    const at = (i: number): number => (i < pending.length ? pending[i]! : (bytes[i - pending.length] ?? 0));
    const announced = pending.length + bytes.length >= RECORD_HEADER_LEN ? RECORD_HEADER_LEN + Math.min((at(3) << 8) | at(4), MAX_CIPHERTEXT) : 0;
    this.recordRoom = appendInRoom(this.recordRoom, pending, bytes, announced);
    return this.recordRoom.subarray(0, pending.length + bytes.length);
  }

  /** Records handed on may be views into the room (a ClientHello): it is not written again. */
  releaseRecordRoom(): void {
    this.recordRoom = null;
  }

  /** `pending` (the pending handshake bytes) + `fragment`, in a room sized for the message its header announces. */
  appendToPendingHandshake(pending: Uint8Array, fragment: Uint8Array): Uint8Array {
    const at = (i: number): number => (i < pending.length ? pending[i]! : (fragment[i - pending.length] ?? 0));
    const announced = pending.length + fragment.length >= 4 ? 4 + Math.min((at(1) << 16) | (at(2) << 8) | at(3), MAX_HANDSHAKE_MESSAGE) : 0;
    this.assembly = appendInRoom(this.assembly, pending, fragment, announced);
    return this.assembly.subarray(0, pending.length + fragment.length);
  }

  /** The message may keep views into the room (a parsed ClientHello): it is never written again. */
  releaseAssembly(): void {
    this.assembly = null;
  }

  // ---- records out ----

  /** Largest plaintext per record we write now. */
  get recordPlaintextLimit(): number {
    return this.maxPlaintext;
  }

  /** Packs handshake messages into as few records as the size limit allows. */
  writeHandshake(messages: readonly Uint8Array[], sink: TlsSink): void {
    const data = concat(messages);
    const max = this.maxPlaintext;
    for (let at = 0; at < data.length; at += max) {
      this.writeRecord(ContentType.handshake, data.subarray(at, Math.min(at + max, data.length)), sink);
    }
  }

  /** One record for the client, sealed once the write key is set, written straight into a view of the sink. */
  writeRecord(type: number, content: Uint8Array, sink: TlsSink): void {
    const write = this.writeKey;
    if (write) {
      const n = sealedRecordLength(content.length);
      write.cipher.sealInto(type, content, sink.reserve(n), 0);
      this.commitToClient(n, sink);
      return;
    }
    const n = RECORD_HEADER_LEN + content.length;
    const view = sink.reserve(n);
    view[0] = type;
    view[1] = 3;
    view[2] = 3;
    view[3] = content.length >>> 8;
    view[4] = content.length & 0xff;
    view.set(content, RECORD_HEADER_LEN);
    this.commitToClient(n, sink);
  }

  /** A whole unprotected record made in advance. */
  writePlain(record: Uint8Array, sink: TlsSink): void {
    sink.reserve(record.length).set(record, 0);
    this.commitToClient(record.length, sink);
  }

  /** The first `n` bytes of the view last reserved go to the client. */
  private commitToClient(n: number, sink: TlsSink): void {
    sink.toClient(n);
    this.counters.bytesToClient += n;
  }
}
