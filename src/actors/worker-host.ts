/**
 * Runs inside a worker thread: loads one actor module, runs its behaviour over a
 * bounded mailbox, heartbeats for the watchdog, executes injected faults and armed fault
 * points, and speaks only the frames declared in `protocol.ts` with the main thread.
 *
 * Crashes are not caught here on purpose: a throw in `receive` becomes an uncaught
 * exception, so the main thread sees the worker's own `error`/`exit` events — the same
 * path as every other way a worker dies.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import type { ActorBehaviour, ActorContext, PoolTask, Replier } from './actor.js';
import { workerEnd } from './data-channel.js';
import { ActorError, type ActorErrorCode } from './errors.js';
import { arm, exhaustMemory, hit, INJECTED_EXIT_CODE, spin, type ArmedTable, type FaultKind } from './faults.js';
import { Mailbox } from './mailbox.js';
import { BEAT_BUSY_MS, BEAT_COUNT } from './watchdog.js';
import {
  adoptFrame,
  decodeHeader,
  decodePayload,
  decodeValue,
  encodeFrame,
  failureToError,
  postFrame,
  type FromWorker,
  type ToWorker,
  type WireFailure,
  type WorkerBoot,
} from './protocol.js';
import { refOf, type ActorRef } from './ref.js';

/** A message in this worker's mailbox, from the main thread or from the actor itself. */
interface Envelope {
  readonly msg: unknown;
  readonly from: string | undefined;
  /** Set for asks: where the reply goes. `local` means the actor asked itself. */
  readonly replyTo: { readonly to: string; readonly askId: number; readonly local: boolean } | undefined;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout | undefined;
}

const DEFAULT_ASK_TIMEOUT_MS = 5_000;

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new ActorError('BATON_ERR_START_FAILED', 'worker-host must run in a worker thread');
  const boot = workerData as WorkerBoot;
  const selfId = boot.actorId;
  const self = refOf(selfId);
  const armed: ArmedTable = new Map();
  const asks = new Map<number, Pending>();
  const poolTasks = new Map<number, Pending>();
  let nextAsk = 1;
  let nextPoolTask = 1;

  const postHeader = (h: FromWorker): void => postFrame(port, encodeFrame(h));
  const postWith = (h: FromWorker, payload: unknown): void => postFrame(port, encodeFrame(h, payload));

  const fire = (kind: FaultKind, point: string | undefined): void => {
    // Tell the main thread first, so the crash report names the fault that caused it.
    postHeader({ t: 'FaultFired', kind, ...(point === undefined ? {} : { point }) });
    switch (kind) {
      case 'throw':
        throw new ActorError('BATON_ERR_FAULT_INJECTED', `injected throw${point ? ` at ${point}` : ''}`);
      case 'exit':
        process.exit(INJECTED_EXIT_CODE);
      // falls through (process.exit does not return)
      case 'terminate': {
        // Stop right here while the main thread calls worker.terminate(); fall back to
        // exiting so a lost request cannot leave the actor running past its fault point.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, boot.terminateWaitMs);
        process.exit(INJECTED_EXIT_CODE);
      }
      // falls through
      case 'oom':
        exhaustMemory();
      // falls through
      case 'hang':
        spin();
        return;
      default: {
        const never: never = kind;
        throw new ActorError('BATON_ERR_FAULT_UNSUPPORTED', `unknown fault ${String(never)}`);
      }
    }
  };

  let current: Envelope | undefined;
  let replied = false;

  const makeReplier = (env: Envelope): Replier => {
    let done = false;
    const once = (): void => {
      if (done) throw new ActorError('BATON_ERR_NO_ASK', 'this ask was already answered');
      done = true;
    };
    const rt = env.replyTo!;
    return {
      reply(value) {
        once();
        if (rt.local) asks.get(rt.askId)?.resolve(value);
        else postWith({ t: 'Reply', to: rt.to, askId: rt.askId }, value);
        if (rt.local) settle(asks, rt.askId);
      },
      fail(code, message) {
        once();
        if (rt.local) {
          asks.get(rt.askId)?.reject(new ActorError(code, message));
          settle(asks, rt.askId);
        } else postHeader({ t: 'Reply', to: rt.to, askId: rt.askId, fail: { code, message } });
      },
    };
  };

  const ctx: ActorContext = {
    self,
    get sender() {
      return current?.from === undefined ? undefined : refOf(current.from);
    },
    threadId,
    tell(to, msg) {
      if (to.id === selfId) {
        if (!mailbox.offer({ msg, from: selfId, replyTo: undefined })) {
          throw new ActorError('BATON_ERR_MAILBOX_FULL', `mailbox of ${selfId} is full`);
        }
        return;
      }
      postWith(to.node === undefined ? { t: 'Deliver', to: to.id, from: selfId } : { t: 'Deliver', to: to.id, from: selfId, node: to.node }, msg);
    },
    ask<R>(to: ActorRef, msg: unknown, timeoutMs = DEFAULT_ASK_TIMEOUT_MS): Promise<R> {
      const askId = nextAsk++;
      const p = pendingPromise<R>(asks, askId, timeoutMs, `ask to ${to.id}`);
      if (to.id === selfId) {
        if (!mailbox.offer({ msg, from: selfId, replyTo: { to: selfId, askId, local: true } })) {
          asks.get(askId)?.reject(new ActorError('BATON_ERR_MAILBOX_FULL', `mailbox of ${selfId} is full`));
          settle(asks, askId);
        }
      } else {
        postWith(
          to.node === undefined ? { t: 'Ask', to: to.id, from: selfId, askId } : { t: 'Ask', to: to.id, from: selfId, askId, node: to.node, timeoutMs },
          msg,
        );
      }
      return p;
    },
    reply(value) {
      if (current?.replyTo === undefined || replied) {
        throw new ActorError('BATON_ERR_NO_ASK', 'reply() outside an ask or after the reply was taken');
      }
      replied = true;
      makeReplier(current).reply(value);
    },
    replier() {
      if (current?.replyTo === undefined || replied) return undefined;
      replied = true;
      return makeReplier(current);
    },
    faultPoint(name) {
      if (armed.size === 0) return;
      const kind = hit(armed, name);
      if (kind !== undefined) fire(kind, name);
    },
    pool: {
      run<R>(task: PoolTask, arg: unknown): Promise<R> {
        const id = nextPoolTask++;
        const p = pendingPromise<R>(poolTasks, id, 0, 'pool task');
        postWith({ t: 'PoolRun', id, module: task.module, fn: task.fn ?? 'default' }, arg);
        return p;
      },
    },
    channel: boot.channel === undefined ? undefined : workerEnd(boot.channel),
    shared: boot.shared,
  };

  const mod = (await import(boot.module)) as Record<string, unknown>;
  const behaviour = mod[boot.exportName] as ActorBehaviour | undefined;
  if (behaviour === undefined || typeof behaviour.receive !== 'function' || typeof behaviour.init !== 'function') {
    throw new ActorError('BATON_ERR_START_FAILED', `${boot.module} has no actor behaviour export '${boot.exportName}'`);
  }
  const state = await behaviour.init(decodeValue(boot.args), ctx);

  let taken = 0;
  let ackScheduled = false;
  const flushAck = (): void => {
    ackScheduled = false;
    if (taken > 0) {
      postHeader({ t: 'Ack', n: taken });
      taken = 0;
    }
  };
  // Twice the sender-side capacity: the main thread already enforces the bound with
  // credits; the slack is for the actor's own self-tells.
  const mailbox: Mailbox<Envelope> = new Mailbox<Envelope>(
    boot.capacity * 2,
    (env) => {
      current = env;
      replied = false;
      return behaviour.receive(env.msg, state, ctx);
    },
    {
      onError(e) {
        // Rethrow outside the mailbox loop so it is a genuine uncaught exception.
        setImmediate(() => {
          throw e;
        });
      },
      onTaken(env) {
        // Every message taken is a sign of life: a worker busy with a long queue (a
        // takeover replay) keeps beating even if its timers run late.
        Atomics.add(boot.heartbeat, BEAT_COUNT, 1);
        // Self-tells never took credit on the main thread, so they give none back.
        if (env.from === selfId && (env.replyTo === undefined || env.replyTo.local)) return;
        if (++taken >= boot.ackEvery) flushAck();
      },
      onIdle() {
        if (taken > 0 && !ackScheduled) {
          ackScheduled = true;
          // Coalesce the acks of one event-loop turn into one frame.
          setImmediate(flushAck);
        }
      },
    },
  );

  const stop = async (): Promise<void> => {
    clearInterval(heartbeat);
    mailbox.close();
    await behaviour.stop?.(state, ctx);
    postHeader({ t: 'Stopped' });
    process.exit(0);
  };

  port.on('message', (frame: Uint8Array) => {
    adoptFrame(frame);
    const { header, payloadAt } = decodeHeader<ToWorker>(frame);
    switch (header.t) {
      case 'Deliver':
        mailbox.offer({ msg: decodePayload(frame, payloadAt), from: header.from, replyTo: undefined });
        return;
      case 'Ask':
        mailbox.offer({
          msg: decodePayload(frame, payloadAt),
          from: header.from,
          replyTo: { to: header.from, askId: header.askId, local: false },
        });
        return;
      case 'Reply':
        resolveOrFail(asks, header.askId, header.fail, frame, payloadAt);
        return;
      case 'PoolDone':
        resolveOrFail(poolTasks, header.id, header.fail, frame, payloadAt);
        return;
      case 'Bounced': {
        const code = header.code as ActorErrorCode;
        if (header.askId !== undefined) {
          asks.get(header.askId)?.reject(new ActorError(code, `ask to ${header.target} refused`));
          settle(asks, header.askId);
        } else {
          behaviour.undelivered?.(decodePayload(frame, payloadAt), refOf(header.target), code, state, ctx);
        }
        return;
      }
      case 'Inject':
        fire(header.kind, undefined);
        return;
      case 'Arm':
        arm(armed, header.point, header.kind, { skip: header.skip, times: header.times });
        postHeader({ t: 'Armed', seq: header.seq });
        return;
      case 'Stop':
        void stop();
        return;
      default: {
        const never: never = header;
        throw new ActorError('BATON_ERR_CODEC', `unexpected frame ${(never as { t: string }).t}`);
      }
    }
  });

  const heartbeat = setInterval(() => {
    Atomics.store(boot.heartbeat, BEAT_BUSY_MS, Math.round(mailbox.busyMs()));
    Atomics.add(boot.heartbeat, BEAT_COUNT, 1);
  }, boot.heartbeatMs);
  postHeader({ t: 'Ready', threadId });
}

function pendingPromise<R>(table: Map<number, Pending>, id: number, timeoutMs: number, what: string): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            table.delete(id);
            reject(new ActorError('BATON_ERR_ASK_TIMEOUT', `${what} timed out after ${timeoutMs} ms`));
          }, timeoutMs)
        : undefined;
    table.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
  });
}

function settle(table: Map<number, Pending>, id: number): void {
  const p = table.get(id);
  if (p === undefined) return;
  if (p.timer !== undefined) clearTimeout(p.timer);
  table.delete(id);
}

function resolveOrFail(
  table: Map<number, Pending>,
  id: number,
  fail: WireFailure | undefined,
  frame: Uint8Array,
  payloadAt: number,
): void {
  const p = table.get(id);
  // A late reply to an ask that already timed out is dropped here, by design.
  if (p === undefined) return;
  settle(table, id);
  if (fail !== undefined) p.reject(failureToError(fail));
  else p.resolve(decodePayload(frame, payloadAt));
}

await main();
