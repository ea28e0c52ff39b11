/**
 * Every message that crosses a thread boundary in the actor runtime, declared in one
 * place (as piscina does in `common.ts`), with the one codec that frames them.
 *
 * A frame is one msgpackr value (the header) optionally followed by a second one (the
 * payload), in a single exact-sized buffer. The main thread routes worker-to-worker
 * traffic by decoding only the header and forwarding the same bytes, so a record batch
 * is encoded once by its sender and decoded once by its receiver.
 */
import { Packr, RESERVE_START_SPACE } from 'msgpackr';
import type { MessagePort, Worker } from 'node:worker_threads';
import type { DataChannelBuffers } from './data-channel.js';
import { ActorError } from './errors.js';
import type { FaultKind } from './faults.js';

/** Everything a worker needs to start its actor; passed as `workerData`. */
export interface WorkerBoot {
  readonly actorId: string;
  /** File URL of the module whose default export (or `exportName`) is the behaviour. */
  readonly module: string;
  readonly exportName: string;
  /** msgpackr-encoded init args. */
  readonly args: Uint8Array;
  /** How often the worker beats into `heartbeat`. */
  readonly heartbeatMs: number;
  /** Shared heartbeat cell (see watchdog.ts): the worker bumps a counter and its busy time. */
  readonly heartbeat: Int32Array;
  /** Mailbox capacity the main thread enforces with credits. */
  readonly capacity: number;
  /** Post an Ack after this many processed messages (and whenever the mailbox drains). */
  readonly ackEvery: number;
  /** Busy-wait budget for a `terminate` fault point while the main thread kills us. */
  readonly terminateWaitMs: number;
  /** This incarnation's data channel (fresh for every start), when the actor has one. */
  readonly channel?: DataChannelBuffers;
  /** Shared memory the actor is started with (WorkerActorOptions.shared), structured-cloned. */
  readonly shared?: unknown;
}

/** An ask's failure as it crosses threads: a code and a message, never a stack from afar. */
export interface WireFailure {
  readonly code: string;
  readonly message: string;
}

/**
 * Deliver a tell; the payload follows. `from` is the sender's actor id when it has one;
 * `node` is set only for a receiver on another node (the hub sends it over NATS).
 */
export interface DeliverFrame {
  readonly t: 'Deliver';
  readonly to: string;
  readonly from?: string;
  readonly node?: string;
}
/**
 * Deliver an ask; the payload follows. The reply goes to `from` with `askId`. For a
 * receiver on another node, `node` names it and `timeoutMs` bounds the NATS request.
 */
export interface AskFrame {
  readonly t: 'Ask';
  readonly to: string;
  readonly from: string;
  readonly askId: number;
  readonly node?: string;
  readonly timeoutMs?: number;
}
/** Answer to an ask; the payload follows when `fail` is absent. */
export interface ReplyFrame {
  readonly t: 'Reply';
  readonly to: string;
  readonly askId: number;
  readonly fail?: WireFailure;
}
/** A tell or ask the main thread refused (full mailbox, dead target); the original payload follows. */
export interface BouncedFrame {
  readonly t: 'Bounced';
  readonly to: string;
  readonly target: string;
  readonly askId?: number;
  readonly code: string;
}

/** Main → worker control. */
export interface InjectFrame {
  readonly t: 'Inject';
  readonly kind: FaultKind;
}
export interface ArmFrame {
  readonly t: 'Arm';
  readonly seq: number;
  readonly point: string;
  readonly kind: FaultKind;
  readonly skip: number;
  readonly times: number;
}
export interface StopFrame {
  readonly t: 'Stop';
}
/** Result of a pool task the worker asked for; the value follows when `fail` is absent. */
export interface PoolDoneFrame {
  readonly t: 'PoolDone';
  readonly id: number;
  readonly fail?: WireFailure;
}

/** Worker → main control. */
export interface ReadyFrame {
  readonly t: 'Ready';
  readonly threadId: number;
}
/** `n` more messages were taken out of the worker's mailbox: credit for the sender side. */
export interface AckFrame {
  readonly t: 'Ack';
  readonly n: number;
}
/** Confirms an Arm. */
export interface ArmedFrame {
  readonly t: 'Armed';
  readonly seq: number;
}
/** A fault point or injected fault is about to fire; for `terminate` it asks to be killed. */
export interface FaultFiredFrame {
  readonly t: 'FaultFired';
  readonly point?: string;
  readonly kind: FaultKind;
}
/** Run a task on the shared piscina pool; the task argument follows. */
export interface PoolRunFrame {
  readonly t: 'PoolRun';
  readonly id: number;
  readonly module: string;
  readonly fn: string;
}
/** The actor's stop hook ran; the worker is about to end. */
export interface StoppedFrame {
  readonly t: 'Stopped';
}

/** Frames the worker host receives. */
export type ToWorker =
  | DeliverFrame
  | AskFrame
  | ReplyFrame
  | BouncedFrame
  | InjectFrame
  | ArmFrame
  | StopFrame
  | PoolDoneFrame;

/** Frames the main thread receives from a worker. */
export type FromWorker =
  | DeliverFrame
  | AskFrame
  | ReplyFrame
  | ReadyFrame
  | AckFrame
  | ArmedFrame
  | FaultFiredFrame
  | PoolRunFrame
  | StoppedFrame;

/**
 * Node → node, on the receiving node's NATS subject (see remote.ts): a tell for one
 * of its actors; the payload follows. There is no sender ref across nodes.
 */
export interface RemoteTellFrame {
  readonly t: 'RemoteTell';
  readonly to: string;
}
/** Node → node: an ask, as a NATS request; the payload follows; answered by a RemoteReply. */
export interface RemoteAskFrame {
  readonly t: 'RemoteAsk';
  readonly to: string;
  /** The asker's deadline, so the receiving side gives up no later. */
  readonly timeoutMs: number;
}
/** The answer to a RemoteAsk; the value follows when `fail` is absent. */
export interface RemoteReplyFrame {
  readonly t: 'RemoteReply';
  readonly fail?: WireFailure;
}

/** Frames that cross between nodes over NATS. */
export type NodeFrame = RemoteTellFrame | RemoteAskFrame | RemoteReplyFrame;

export type Frame = ToWorker | FromWorker | NodeFrame;

/** Frames at least this large are transferred (zero-copy) rather than cloned. */
export const TRANSFER_MIN_BYTES = 8 * 1024;

// Records on: repeated object shapes are encoded as msgpackr records. No shared
// structure table, so every frame is self-describing and can be forwarded as is.
// bigint survives (TLS sequence numbers are bigint in snapshots).
const packr = new Packr({ useRecords: true, useBigIntExtension: true });

const NO_PAYLOAD = Symbol('no payload');

/** Encodes any msgpackr-encodable value into an owned, exact-sized buffer. */
export function encodeValue(value: unknown): Uint8Array {
  try {
    return Uint8Array.prototype.slice.call(packr.pack(value));
  } catch (e) {
    throw new ActorError('BATON_ERR_CODEC', `cannot encode message: ${(e as Error).message}`, { cause: e });
  }
}

/** Decodes a value made by {@link encodeValue}. Binary fields are views into `bytes`. */
export function decodeValue<T = unknown>(bytes: Uint8Array): T {
  try {
    return packr.unpack(bytes) as T;
  } catch (e) {
    throw new ActorError('BATON_ERR_CODEC', `cannot decode message: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Payloads estimated at least this large are packed straight into a fresh buffer owned
 * by the frame (one copy of their binary fields); smaller ones go through msgpackr's
 * scratch buffer and are copied into an exact-sized frame.
 */
const DIRECT_MIN_BYTES = TRANSFER_MIN_BYTES;
/** msgpackr's own buffer, as a Buffer (see {@link encodeDirect}). */
let lastTarget: Buffer | null = null;

/**
 * Buffers whose every byte belongs to one frame (made here, or received from another
 * thread): they can be transferred even when the frame does not fill them.
 */
const owned = new WeakSet<ArrayBufferLike>();

/** Marks a frame that arrived from another thread as owned by this one (see {@link postFrame}). */
export function adoptFrame(frame: Uint8Array): void {
  if (frame.byteOffset === 0) owned.add(frame.buffer);
}

/**
 * An upper bound of the msgpackr size of `v` (records written as plain maps, strings
 * at 3 bytes per UTF-16 unit), walking at most `depth` levels; -1 when unsure.
 */
function sizeBound(v: unknown, depth: number): number {
  switch (typeof v) {
    case 'string':
      return 5 + v.length * 3;
    case 'number':
      return 9;
    case 'boolean':
    case 'undefined':
      return 1;
    case 'bigint':
      return 24;
    case 'object': {
      if (v === null) return 1;
      if (v instanceof Uint8Array) return 5 + v.byteLength;
      if (depth === 0) return -1;
      let n = 8;
      if (Array.isArray(v)) {
        for (const x of v) {
          const m = sizeBound(x, depth - 1);
          if (m < 0) return -1;
          n += m;
        }
        return n;
      }
      if (Object.getPrototypeOf(v) !== Object.prototype) return -1;
      for (const k in v) {
        const m = sizeBound((v as Record<string, unknown>)[k], depth - 1);
        if (m < 0) return -1;
        n += 8 + k.length * 3 + m;
      }
      return n;
    }
    default:
      return -1;
  }
}

/**
 * Builds a frame: the header, then the payload if one is given. `payload` may be
 * pre-encoded bytes (`rawPayload`) so a forwarded or bounced payload is not re-encoded.
 * A large payload is packed directly after the header in the frame's own buffer, so its
 * binary fields are copied once.
 */
export function encodeFrame(header: Frame, payload: unknown = NO_PAYLOAD, rawPayload?: Uint8Array): Uint8Array {
  try {
    const h = packr.pack(header);
    if (rawPayload === undefined && payload !== NO_PAYLOAD && h.length < 256) {
      const bound = sizeBound(payload, 8);
      if (bound >= DIRECT_MIN_BYTES) return encodeDirect(h, payload, bound);
    }
    // Packr keeps earlier results intact while packing the next value, so `h` is still
    // valid here; the copy below gives the frame its own transferable buffer.
    const p = rawPayload ?? (payload === NO_PAYLOAD ? undefined : packr.pack(payload));
    const out = new Uint8Array(h.length + (p?.length ?? 0));
    out.set(h, 0);
    if (p !== undefined) out.set(p, h.length);
    return out;
  } catch (e) {
    throw new ActorError('BATON_ERR_CODEC', `cannot encode message: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Packs `payload` into a fresh buffer after room for the header `h`, just packed.
 *
 * msgpackr's output buffer and position are module state shared by every Packr in this
 * thread (the snapshot codec's results live there too, until they are packed into a
 * frame), so msgpackr is put back exactly where it was: the buffer `h` lies in, right
 * after `h`.
 */
function encodeDirect(h: Uint8Array, payload: unknown, bound: number): Uint8Array {
  const buf = Buffer.allocUnsafeSlow(h.length + bound + 16);
  let target = lastTarget;
  if (target === null || target.buffer !== h.buffer) target = lastTarget = Buffer.from(h.buffer, 0, h.buffer.byteLength);
  const resumeAt = h.byteOffset + h.length;
  let frame: Uint8Array;
  try {
    packr.useBuffer(buf);
    // The first h.length bytes are left free for the header; msgpackr may still move to
    // a larger buffer of its own if the bound was wrong (the frame then lives there).
    frame = packr.pack(payload, RESERVE_START_SPACE | h.length);
  } finally {
    packr.useBuffer(target);
    packr.position = resumeAt;
  }
  frame.set(h, 0);
  // No stale bytes of this thread's heap travel with the frame.
  const whole = new Uint8Array(frame.buffer, 0, frame.buffer.byteLength);
  whole.fill(0, frame.byteOffset + frame.length);
  if (frame.byteOffset === 0) owned.add(frame.buffer);
  else whole.fill(0, 0, frame.byteOffset);
  return frame;
}

/** A decoded header and where its payload starts (== frame length when there is none). */
export interface DecodedHeader<F extends Frame> {
  readonly header: F;
  readonly payloadAt: number;
}

/** Decodes only the header of a frame, leaving the payload bytes untouched. */
export function decodeHeader<F extends Frame>(frame: Uint8Array): DecodedHeader<F> {
  let header: F | undefined;
  let payloadAt = frame.length;
  try {
    packr.unpackMultiple(frame, (value: unknown, _start?: number, end?: number) => {
      header = value as F;
      payloadAt = end ?? frame.length;
      return false;
    });
  } catch (e) {
    throw new ActorError('BATON_ERR_CODEC', `cannot decode frame: ${(e as Error).message}`, { cause: e });
  }
  if (header === undefined) throw new ActorError('BATON_ERR_CODEC', 'empty frame');
  return { header, payloadAt };
}

/** Decodes the payload of a frame (undefined when the frame has none). */
export function decodePayload<T = unknown>(frame: Uint8Array, payloadAt: number): T {
  if (payloadAt >= frame.length) return undefined as T;
  return decodeValue<T>(frame.subarray(payloadAt));
}

/** The payload bytes of a frame, for forwarding without decoding. */
export function rawPayload(frame: Uint8Array, payloadAt: number): Uint8Array | undefined {
  return payloadAt >= frame.length ? undefined : frame.subarray(payloadAt);
}

/** Anything frames are posted on: a Worker from main, `parentPort` inside a worker. */
export type FramePort = Pick<Worker, 'postMessage'> | Pick<MessagePort, 'postMessage'>;

/**
 * Posts a frame, transferring its buffer when large. Frames are owned (see
 * {@link encodeFrame}, {@link adoptFrame}) or exact-sized; anything else is cloned so a
 * shared buffer never moves.
 */
export function postFrame(port: FramePort, frame: Uint8Array): void {
  const buffer = frame.buffer;
  if (
    frame.byteLength >= TRANSFER_MIN_BYTES &&
    frame.byteOffset === 0 &&
    buffer instanceof ArrayBuffer &&
    (frame.byteLength === buffer.byteLength || owned.has(buffer))
  ) {
    owned.delete(buffer);
    port.postMessage(frame, [buffer]);
  } else {
    port.postMessage(frame);
  }
}

/** Turns a wire failure back into a coded error on the asking side. */
export function failureToError(f: WireFailure): ActorError {
  return new ActorError(f.code as ActorError['code'], f.message);
}

/** Turns any thrown value into a wire failure, keeping a code when it has one. */
export function errorToFailure(e: unknown): WireFailure {
  if (e instanceof ActorError) return { code: e.code, message: e.message };
  const err = e as { message?: unknown; code?: unknown };
  return {
    code: typeof err?.code === 'string' && err.code.startsWith('BATON_ERR_') ? err.code : 'BATON_ERR_ASK_FAILED',
    message: typeof err?.message === 'string' ? err.message : String(e),
  };
}
