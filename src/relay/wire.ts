/**
 * The entries of the data channel between the gateway (main thread) and a relay
 * (worker), declared in one place: a fixed 40-byte header, and for a few rare ones a
 * payload. Bytes do not travel in entries: an entry names where they lie in the shared
 * arena (chunk, offset, length). No codec and no object per entry on the record path:
 * fields are read and written in place in the ring. Connection ids are the gateway's
 * numbers.
 */
import type { ConnectionEvent } from './protocol.js';

/** Gateway -> relay. */
export const ToRelay = {
  /** Own a new connection; commit its state into `slot` under `token`. */
  Open: 1,
  /** One input, numbered `seq`, in the arena at (chunk, offset, length); `aux16` = {@link InputCode}. */
  Input: 2,
  /** Take the connection over from the state committed in `slot` (copied there by the gateway). */
  Promote: 3,
  /** Forget the connection; answered with Forgotten. */
  Forget: 4,
} as const;

/** Relay -> gateway. */
export const FromRelay = {
  /** Bytes for the client at (chunk, offset, length), starting at stream offset `offset`, produced by input `seq`. */
  ToClient: 16,
  /** Plaintext for the backend at (chunk, offset, length), starting at stream offset `offset`. */
  ToBackend: 17,
  /** Input `seq` is processed; `aux16` = {@link EventBit}s; payload = handshake facts (JSON) when HandshakeDone. */
  Done: 18,
  /** The state after input `seq` is committed in the connection's slot. */
  Committed: 19,
  /** The state committed up to input `seq` is restored; replayed inputs follow. */
  Promoted: 20,
  /** The relay dropped the connection; its slot can be reused. */
  Forgotten: 21,
  /** The relay writes no more into arena chunk `aux32`: it is free once nothing else needs it. */
  ChunkDone: 22,
  /**
   * Input `seq` issued a stateful ticket: payload = its id (SESSION_ID_LEN bytes)
   * then its session entry (sealed under the ticket key; the gateway only stores it).
   */
  SessionIssued: 23,
} as const;

/**
 * Input kinds, as `aux16` of an Input entry. A session input holds a stateful ticket's
 * id (SESSION_ID_LEN bytes) then the entry the store held for it, fetched by the
 * gateway for the ClientHello that follows (retained and replayed like any input).
 */
export const InputCode = { client: 1, backend: 2, backendEnd: 3, backendFailed: 4, session: 5 } as const;
export type InputKindName = keyof typeof InputCode;

/** Flags of an output entry. */
export const Held = 1;

/** Events of a Done entry. */
export const EventBit = {
  HandshakeDone: 1,
  PeerClosed: 2,
  Closed: 4,
  ClosedWithError: 8,
  /** The engine closed the connection for a cap: too many change_cipher_spec records during the handshake. */
  HandshakeChangeCipherSpecs: 16,
  /** ...too many warning alerts during the handshake. */
  HandshakeWarningAlerts: 32,
  /** The input's output holds a KeyUpdate answering the client's update_requested (the gateway caps those while the client does not read). */
  KeyUpdateAnswered: 64,
} as const;

/** Entry header layout (little-endian). */
export const H_TYPE = 0; // u8
export const H_FLAGS = 1; // u8
export const H_AUX16 = 2; // u16
export const H_CONN = 4; // u32
export const H_EPOCH = 8; // u32
export const H_SEQ = 12; // u32
export const H_OFFSET = 16; // f64: a stream offset, or -1
export const H_AUX32 = 24; // u32: an arena chunk, or a state slot
export const H_AUX32B = 28; // u32: an offset in the chunk, or a slot token
export const H_LENGTH = 32; // u32: bytes in the arena
export const HEADER_BYTES = 40;

/** Writes an entry header at `at` (the payload follows at `at + HEADER_BYTES`). */
export function writeHeader(
  v: DataView,
  at: number,
  type: number,
  flags: number,
  aux16: number,
  conn: number,
  epoch: number,
  seq: number,
  offset: number,
  aux32: number,
  aux32b: number,
  length = 0,
): void {
  v.setUint8(at + H_TYPE, type);
  v.setUint8(at + H_FLAGS, flags);
  v.setUint16(at + H_AUX16, aux16, true);
  v.setUint32(at + H_CONN, conn, true);
  v.setUint32(at + H_EPOCH, epoch, true);
  v.setUint32(at + H_SEQ, seq, true);
  v.setFloat64(at + H_OFFSET, offset, true);
  v.setUint32(at + H_AUX32, aux32, true);
  v.setUint32(at + H_AUX32B, aux32b, true);
  v.setUint32(at + H_LENGTH, length, true);
}

/** What a Done entry's events mean to the gateway. */
export function doneEvents(bits: number, facts: HandshakeFacts | null): ConnectionEvent[] {
  const out: ConnectionEvent[] = [];
  if (bits & EventBit.HandshakeDone && facts) out.push({ type: 'handshakeDone', ...facts });
  if (bits & EventBit.PeerClosed) out.push({ type: 'peerClosed' });
  if (bits & EventBit.HandshakeChangeCipherSpecs) out.push({ type: 'limitExceeded', limit: 'handshakeChangeCipherSpecs' });
  if (bits & EventBit.HandshakeWarningAlerts) out.push({ type: 'limitExceeded', limit: 'handshakeWarningAlerts' });
  if (bits & EventBit.KeyUpdateAnswered) out.push({ type: 'keyUpdateAnswered' });
  if (bits & EventBit.Closed) out.push({ type: 'closed', error: (bits & EventBit.ClosedWithError) !== 0 });
  return out;
}

/** What the gateway learns of a finished handshake (public facts). */
export interface HandshakeFacts {
  readonly alpn: string | null;
  readonly serverName: string | null;
  readonly resumed: boolean;
  readonly cipherSuite: string;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export function encodeFacts(f: HandshakeFacts): Uint8Array {
  return utf8.encode(JSON.stringify(f));
}

export function decodeFacts(bytes: Uint8Array): HandshakeFacts {
  // TextDecoder refuses views of shared memory: copy the few bytes first.
  return JSON.parse(fromUtf8.decode(bytes.slice())) as HandshakeFacts;
}
