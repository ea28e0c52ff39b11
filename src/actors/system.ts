/**
 * The actor system on the main thread: the registry of actors (worker, main-thread and
 * supervisor cells), the hub that routes frames between threads, the table of asks in
 * flight, and the event stream (Crashed, Restarted, Escalated, DeadLetter).
 *
 * Routing: every cross-thread frame passes through here. Worker-to-worker frames are
 * forwarded as the same bytes after decoding only the header; frames for a main-thread
 * actor are decoded once; main-thread senders to main-thread actors pass values
 * without encoding (so treat messages as immutable once sent).
 */
import { systemClock, type Clock } from '../util/clock.js';
import type { ActorBehaviour, PoolTask } from './actor.js';
import type { Crash } from './crash.js';
import type { ChannelEnd } from './data-channel.js';
import { ActorError, type ActorErrorCode } from './errors.js';
import type { ArmOptions, FaultKind } from './faults.js';
import { LocalCell, type LocalEnvelope, type ReplyTo } from './local-cell.js';
import { TaskPool, type PoolOptions } from './pool.js';
import {
  decodeHeader,
  decodePayload,
  encodeFrame,
  errorToFailure,
  failureToError,
  rawPayload,
  type AskFrame,
  type DeliverFrame,
  type FromWorker,
  type ToWorker,
} from './protocol.js';
import { newActorId, refOf, type ActorRef } from './ref.js';
import { Supervisor, type SupervisorEvent, type SupervisorSpec } from './supervisor.js';
import { WorkerHandle, type WorkerActorOptions } from './worker-handle.js';

/** Every actor the system knows, whatever it runs on. */
export type Cell = WorkerHandle | LocalCell | Supervisor;

/** What the system reports to its listeners. */
export type SystemEvent =
  | SupervisorEvent
  /** An unsupervised actor (spawned directly) crashed. */
  | { readonly type: 'Crashed'; readonly crash: Crash; readonly supervisor?: undefined }
  /** A tell could not be delivered; its sender was told where possible. */
  | { readonly type: 'DeadLetter'; readonly to: string; readonly from: string | undefined; readonly code: ActorErrorCode };

/**
 * How a system reaches actors on other nodes: the NATS transport (remote.ts) attaches
 * itself with {@link ActorSystem.attachRemote}. Payloads already encoded (a worker's
 * frame) come as `raw` and are forwarded without decoding.
 */
export interface RemoteRouter {
  /** This node's name: refs naming it are local. */
  readonly node: string;
  /** Sends a tell; throws a coded ActorError (`BATON_ERR_UNREACHABLE`, `BATON_ERR_CODEC`) when it cannot go out. */
  tell(to: ActorRef, msg: unknown, raw?: Uint8Array): void;
  /** Sends an ask; rejects with the same coded errors as a local ask, or `BATON_ERR_UNREACHABLE`. */
  ask<R>(to: ActorRef, msg: unknown, timeoutMs: number, raw?: Uint8Array): Promise<R>;
}

export interface SystemOptions {
  readonly clock?: Clock;
  readonly pool?: PoolOptions;
  /** Default ask deadline. Default 5000. */
  readonly askTimeoutMs?: number;
}

interface PendingAsk {
  readonly target: string;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** Worker-originated ask in flight through the hub, so a crash can fail it at once. */
interface RoutedAsk {
  readonly target: string;
  readonly origin: string;
  readonly askId: number;
}

const DEFAULT_LOCAL_CAPACITY = 1024;

export class ActorSystem {
  /** The main thread's own endpoint: the sender of asks made outside any actor. */
  readonly ref: ActorRef;
  readonly clock: Clock;
  readonly pool: TaskPool;
  private readonly cells = new Map<string, Cell>();
  private readonly owners = new Map<string, Supervisor>();
  private readonly pending = new Map<number, PendingAsk>();
  private readonly routed = new Map<string, RoutedAsk>();
  private readonly listeners = new Set<(e: SystemEvent) => void>();
  private nextAsk = 1;
  private readonly askTimeoutMs: number;
  private remote: RemoteRouter | undefined;
  private closing: Promise<void> | undefined;

  constructor(opts: SystemOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.pool = new TaskPool(opts.pool);
    this.askTimeoutMs = opts.askTimeoutMs ?? 5_000;
    this.ref = refOf(newActorId('main'));
  }

  // ---- nodes ---------------------------------------------------------------------

  /** This node's name once a remote transport is attached; undefined for a node alone. */
  get node(): string | undefined {
    return this.remote?.node;
  }

  /** @internal the NATS transport attaches itself; refs naming other nodes go through it. */
  attachRemote(router: RemoteRouter): void {
    if (this.remote !== undefined && this.remote !== router) throw new ActorError('BATON_ERR_SUPERVISOR', 'a remote transport is already attached');
    this.remote = router;
  }

  /** @internal */
  detachRemote(router: RemoteRouter): void {
    if (this.remote === router) this.remote = undefined;
  }

  /**
   * A ref to a local actor that other nodes can use: `ref` with this node's name. On a
   * node alone (no transport) it is `ref` unchanged.
   */
  publicRef<M>(ref: ActorRef<M>): ActorRef<M> {
    const node = this.remote?.node;
    return node === undefined || ref.node !== undefined ? ref : refOf<M>(ref.id, node);
  }

  /** True when `ref` names another node than this one (its messages go over NATS). */
  isRemote(ref: ActorRef): boolean {
    return this.isOtherNode(ref.node);
  }

  /** True for a node name that is set and not this node's. */
  private isOtherNode(node: string | undefined): boolean {
    return node !== undefined && node !== this.remote?.node;
  }

  // ---- spawning ------------------------------------------------------------------

  /** Spawns an unsupervised worker actor; resolves once it is Ready. Crashes are only reported. */
  async spawnWorker<M = unknown>(opts: WorkerActorOptions, id = newActorId('actor')): Promise<ActorRef<M>> {
    const h = this.createWorker(id, opts);
    await h.start();
    return h.ref as ActorRef<M>;
  }

  /** Spawns an unsupervised main-thread actor running `behaviour`. */
  async spawnLocal<M, S, A>(
    behaviour: ActorBehaviour<M, S, A>,
    args: A,
    opts: { id?: string; capacity?: number } = {},
  ): Promise<ActorRef<M>> {
    const c = this.createLocal(opts.id ?? newActorId(behaviour.name ?? 'local'), behaviour, args, opts.capacity);
    await c.start();
    return c.ref as ActorRef<M>;
  }

  /** Starts a top-level supervisor and its children; resolves once every child is Ready. */
  async supervise(spec: SupervisorSpec): Promise<Supervisor> {
    const s = this.createSupervisor(spec);
    await s.start();
    return s;
  }

  /** @internal used by supervisors to create their children. */
  createWorker(id: string, opts: WorkerActorOptions): WorkerHandle {
    return this.register(new WorkerHandle(id, opts, this.handleHost));
  }

  /** @internal */
  createLocal(id: string, behaviour: ActorBehaviour<any, any, any>, args: unknown, capacity?: number): LocalCell {
    return this.register(new LocalCell(id, behaviour, args, capacity ?? DEFAULT_LOCAL_CAPACITY, this.localHost));
  }

  /** @internal */
  createSupervisor(spec: SupervisorSpec): Supervisor {
    return this.register(new Supervisor(this, spec));
  }

  /** @internal a supervisor claims the crashes of a cell it owns. */
  own(child: Cell, owner: Supervisor): void {
    this.owners.set(child.ref.id, owner);
  }

  private register<C extends Cell>(c: C): C {
    if (this.closing) throw new ActorError('BATON_ERR_CLOSED', 'actor system is closed');
    if (this.cells.has(c.ref.id)) throw new ActorError('BATON_ERR_SUPERVISOR', `duplicate actor id ${c.ref.id}`);
    this.cells.set(c.ref.id, c);
    return c;
  }

  // ---- messaging -----------------------------------------------------------------

  /**
   * Fire and forget from outside any actor. Throws `BATON_ERR_MAILBOX_FULL` when the
   * receiver is at capacity (nothing was enqueued; wait for {@link drained}),
   * `BATON_ERR_ACTOR_DEAD` when it is stopped, `BATON_ERR_NO_SUCH_ACTOR` when unknown.
   */
  tell<M>(to: ActorRef<M>, msg: M): void {
    this.tellFrom(undefined, to, msg);
  }

  /** Like {@link tell} but returns false instead of throwing when the mailbox is full. */
  tryTell<M>(to: ActorRef<M>, msg: M): boolean {
    try {
      this.tellFrom(undefined, to, msg);
      return true;
    } catch (e) {
      if (e instanceof ActorError && e.code === 'BATON_ERR_MAILBOX_FULL') return false;
      throw e;
    }
  }

  /** Resolves when `to` has mailbox room again. */
  drained(to: ActorRef): Promise<void> {
    return this.cellOf(to).drained();
  }

  /** Request/response from outside any actor; rejects with a coded {@link ActorError}. */
  ask<R = unknown, M = unknown>(to: ActorRef<M>, msg: M, timeoutMs?: number): Promise<R> {
    return this.askFrom<R>(this.ref.id, to, msg, timeoutMs);
  }

  /** @internal tell with a sender id (main-thread actors). */
  tellFrom(from: string | undefined, to: ActorRef, msg: unknown): void {
    // Across nodes there is no sender ref: `from` stays on this node.
    if (this.isOtherNode(to.node)) return this.remoteRouter(to).tell(to, msg);
    const cell = this.cellOf(to);
    const r =
      cell instanceof WorkerHandle
        ? cell.send(encodeFrame(from === undefined ? { t: 'Deliver', to: to.id } : { t: 'Deliver', to: to.id, from }, msg))
        : cell.deliver({ msg, from, replyTo: undefined });
    if (r !== 'ok') throw refusal(r, to.id);
  }

  /** @internal ask with a sender id (main-thread actors, or the system's own endpoint). */
  askFrom<R>(from: string, to: ActorRef, msg: unknown, timeoutMs = this.askTimeoutMs): Promise<R> {
    if (this.closing) return Promise.reject(new ActorError('BATON_ERR_CLOSED', 'actor system is closed'));
    let cell: Cell;
    try {
      if (this.isOtherNode(to.node)) return this.remoteRouter(to).ask<R>(to, msg, timeoutMs);
      cell = this.cellOf(to);
    } catch (e) {
      return Promise.reject(e);
    }
    const askId = this.nextAsk++;
    const p = new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(askId);
        reject(new ActorError('BATON_ERR_ASK_TIMEOUT', `ask to ${to.id} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(askId, { target: to.id, resolve: resolve as (v: unknown) => void, reject, timer });
    });
    const r =
      cell instanceof WorkerHandle
        ? cell.send(encodeFrame({ t: 'Ask', to: to.id, from, askId }, msg))
        : cell.deliver({ msg, from, replyTo: { to: from, askId } });
    if (r !== 'ok') this.settle(askId, refusal(r, to.id));
    return p;
  }

  // ---- faults and introspection --------------------------------------------------

  /** Injects a crash of `kind` into `ref` (see DESIGN.md, "Fault model"). */
  inject(ref: ActorRef, kind: FaultKind): void {
    this.cellOf(ref).inject(kind);
  }

  /** Arms the named fault point in `ref`'s current incarnation; resolves once armed. */
  armFaultPoint(ref: ActorRef, point: string, kind: FaultKind, opts?: ArmOptions): Promise<void> {
    return this.cellOf(ref).armFaultPoint(point, kind, opts);
  }

  /** The thread the actor runs on now (0 = main), undefined while it is down. */
  threadIdOf(ref: ActorRef): number | undefined {
    return this.cells.get(ref.id)?.threadId;
  }

  /**
   * The main thread's end of `ref`'s data channel for its live incarnation (see
   * {@link WorkerActorOptions.channel}); undefined for actors without one, for actors
   * that are down, and for unknown refs. Take it again after a restart: every
   * incarnation has its own.
   */
  channelOf(ref: ActorRef): ChannelEnd | undefined {
    const c = this.cells.get(ref.id);
    return c instanceof WorkerHandle ? c.channel : undefined;
  }

  /** Stops one actor gracefully. Idempotent. */
  async stop(ref: ActorRef): Promise<void> {
    const c = this.cells.get(ref.id);
    if (c === undefined) return;
    this.owners.delete(ref.id);
    await c.stop();
    this.cells.delete(ref.id);
  }

  /** Runs a task on the shared pool from the main thread. */
  runTask<R>(task: PoolTask, arg: unknown): Promise<R> {
    return this.pool.run<R>(task, arg);
  }

  /** Subscribes to system events; returns the unsubscribe function. */
  on(listener: (e: SystemEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** @internal */
  emit(e: SystemEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A faulty listener must not break crash handling for everyone else.
      }
    }
  }

  /**
   * Stops every actor (supervisors first, which stop their children), fails pending asks
   * with `BATON_ERR_CLOSED`, and closes the pool. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new ActorError('BATON_ERR_CLOSED', 'actor system closed'));
        this.pending.delete(id);
      }
      const all = [...this.cells.values()];
      const tops = all.filter((c) => c instanceof Supervisor && !this.owners.has(c.ref.id));
      await Promise.allSettled(tops.map((c) => c.stop()));
      await Promise.allSettled(all.map((c) => c.stop()));
      this.cells.clear();
      this.owners.clear();
      await this.pool.close();
    })();
    return this.closing;
  }

  // ---- internals ---------------------------------------------------------------

  /** The transport for a ref on another node; `BATON_ERR_UNREACHABLE` on a node alone. */
  private remoteRouter(to: ActorRef): RemoteRouter {
    if (this.remote === undefined) {
      throw new ActorError('BATON_ERR_UNREACHABLE', `${to.id} is on node ${to.node}, and this node has no NATS transport`);
    }
    return this.remote;
  }

  /** A worker's frame for an actor on another node: sent over the transport, its payload as is. */
  private routeRemote(frame: Uint8Array, header: DeliverFrame | AskFrame, payloadAt: number): void {
    const to = refOf(header.to, header.node);
    const raw = rawPayload(frame, payloadAt);
    if (header.t === 'Deliver') {
      try {
        this.remoteRouter(to).tell(to, undefined, raw);
      } catch (e) {
        this.bounceFrame(frame, header, payloadAt, e instanceof ActorError ? e.code : 'BATON_ERR_UNREACHABLE');
      }
      return;
    }
    const rt = { to: header.from, askId: header.askId };
    let p: Promise<unknown>;
    try {
      p = this.remoteRouter(to).ask(to, undefined, header.timeoutMs ?? this.askTimeoutMs, raw);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (value) => this.replyTo(rt, { value }),
      (e: unknown) => this.replyTo(rt, errorToFailure(e) as { code: ActorErrorCode; message: string }),
    );
  }

  private cellOf(ref: ActorRef): Cell {
    const c = this.cells.get(ref.id);
    if (c === undefined) {
      throw new ActorError(this.closing ? 'BATON_ERR_CLOSED' : 'BATON_ERR_NO_SUCH_ACTOR', `no actor ${ref.id}`);
    }
    return c;
  }

  private settle(askId: number, result: { value: unknown } | Error): void {
    const p = this.pending.get(askId);
    if (p === undefined) return; // late reply after a timeout: dropped by design
    this.pending.delete(askId);
    clearTimeout(p.timer);
    if (result instanceof Error) p.reject(result);
    else p.resolve(result.value);
  }

  /** Sends a reply to an asker, wherever it lives. */
  private replyTo(rt: ReplyTo, value: { value: unknown } | { code: ActorErrorCode; message: string }): void {
    const asker = this.cells.get(rt.to);
    if (asker instanceof WorkerHandle) {
      this.routed.delete(`${rt.to}:${rt.askId}`);
      asker.sendControl(
        'value' in value
          ? encodeFrame({ t: 'Reply', to: rt.to, askId: rt.askId }, value.value)
          : encodeFrame({ t: 'Reply', to: rt.to, askId: rt.askId, fail: value }),
      );
    } else {
      this.settle(rt.askId, 'value' in value ? value : new ActorError(value.code, value.message));
    }
  }

  /** @internal best-effort tell for event notifications: refusals become dead letters. */
  tryTellQuiet(to: ActorRef, msg: unknown): void {
    try {
      this.tellFrom(undefined, to, msg);
    } catch (e) {
      const code = e instanceof ActorError ? e.code : 'BATON_ERR_CODEC';
      this.emit({ type: 'DeadLetter', to: to.id, from: undefined, code });
    }
  }

  /** @internal answers an ask on behalf of a main-thread cell. */
  replyToAsk(rt: ReplyTo, value: unknown): void {
    this.replyTo(rt, { value });
  }

  /** @internal fails an ask on behalf of a main-thread cell. */
  failAsk(rt: ReplyTo, code: ActorErrorCode, message: string): void {
    this.replyTo(rt, { code, message });
  }

  /** Fails every ask in flight to `id`: it will never answer them. */
  private failAsksTo(id: string, why: string): void {
    for (const [askId, p] of this.pending) {
      if (p.target === id) this.settle(askId, new ActorError('BATON_ERR_ACTOR_DEAD', `${id} ${why}`));
    }
    for (const [key, r] of this.routed) {
      if (r.target !== id) continue;
      this.routed.delete(key);
      this.replyTo({ to: r.origin, askId: r.askId }, { code: 'BATON_ERR_ACTOR_DEAD', message: `${id} ${why}` });
    }
  }

  private cellCrashed(cell: Cell, crash: Crash): void {
    const id = cell.ref.id;
    this.failAsksTo(id, 'crashed');
    const owner = this.owners.get(id);
    if (owner !== undefined) {
      owner.childCrashed(cell, crash);
      return;
    }
    this.emit({ type: 'Crashed', crash });
    // Nobody will restart an unsupervised actor: refuse its mail from now on rather than
    // buffering it for an incarnation that never comes.
    void cell.stop();
  }

  /**
   * A frame came out of a worker: route it to its receiver. With `wait` (the sender is
   * dead and cannot be told), a full receiver is waited for: the promise says when to
   * route the frame again.
   */
  private route(from: WorkerHandle, frame: Uint8Array, header: FromWorker, payloadAt: number, wait: boolean): Promise<void> | undefined {
    switch (header.t) {
      case 'Deliver':
      case 'Ask':
        return this.routeMailboxFrame(frame, header, payloadAt, wait);
      case 'Reply': {
        this.routed.delete(`${header.to}:${header.askId}`);
        const asker = this.cells.get(header.to);
        if (asker instanceof WorkerHandle) asker.sendControl(frame);
        else this.settle(header.askId, header.fail ? failureToError(header.fail) : { value: decodePayload(frame, payloadAt) });
        return;
      }
      case 'PoolRun': {
        const arg = decodePayload(frame, payloadAt);
        this.pool.run({ module: header.module, fn: header.fn }, arg).then(
          (v) => from.sendControl(encodeFrame({ t: 'PoolDone', id: header.id }, v)),
          (e) => from.sendControl(encodeFrame({ t: 'PoolDone', id: header.id, fail: errorToFailure(e) })),
        );
        return;
      }
      default:
        return;
    }
  }

  private routeMailboxFrame(frame: Uint8Array, header: DeliverFrame | AskFrame, payloadAt: number, wait = false): Promise<void> | undefined {
    if (this.isOtherNode(header.node)) {
      this.routeRemote(frame, header, payloadAt);
      return undefined;
    }
    const target = this.cells.get(header.to);
    if (target === undefined) {
      this.bounceFrame(frame, header, payloadAt, 'BATON_ERR_NO_SUCH_ACTOR');
      return undefined;
    }
    let r: 'ok' | 'full' | 'dead';
    if (target instanceof WorkerHandle) {
      r = target.send(frame);
      if (r === 'ok' && header.t === 'Ask') {
        this.routed.set(`${header.from}:${header.askId}`, { target: header.to, origin: header.from, askId: header.askId });
      }
    } else {
      r = target.deliver({
        msg: decodePayload(frame, payloadAt),
        from: header.from,
        replyTo: header.t === 'Ask' ? { to: header.from, askId: header.askId } : undefined,
      });
    }
    // A stopped receiver rejects drained(): the frame is routed again and refused as dead.
    if (r === 'full' && wait) return target.drained().catch(() => undefined);
    if (r !== 'ok') this.bounceFrame(frame, header, payloadAt, r === 'full' ? 'BATON_ERR_MAILBOX_FULL' : 'BATON_ERR_ACTOR_DEAD');
    return undefined;
  }

  /** Tells the sender of a refused frame, and records a dead letter for tells. */
  private bounceFrame(frame: Uint8Array, header: DeliverFrame | AskFrame, payloadAt: number, code: ActorErrorCode): void {
    const origin = header.from === undefined ? undefined : this.cells.get(header.from);
    if (header.t === 'Ask') {
      if (origin instanceof WorkerHandle) {
        origin.sendControl(
          encodeFrame({ t: 'Bounced', to: header.from, target: header.to, askId: header.askId, code } satisfies ToWorker),
        );
      } else {
        this.settle(header.askId, refusal(code, header.to));
      }
      return;
    }
    this.emit({ type: 'DeadLetter', to: header.to, from: header.from, code });
    if (origin instanceof WorkerHandle) {
      origin.sendControl(
        encodeFrame({ t: 'Bounced', to: header.from!, target: header.to, code }, undefined, rawPayload(frame, payloadAt)),
      );
    }
  }

  private readonly handleHost = {
    clock: { now: () => this.clock.now() },
    route: (from: WorkerHandle, frame: Uint8Array, header: FromWorker, payloadAt: number, wait: boolean) =>
      this.route(from, frame, header, payloadAt, wait),
    bounce: (frame: Uint8Array, code: ActorErrorCode) => {
      const { header, payloadAt } = decodeHeader<DeliverFrame | AskFrame>(frame);
      this.bounceFrame(frame, header, payloadAt, code);
    },
    crashed: (cell: WorkerHandle, crash: Crash) => this.cellCrashed(cell, crash),
    halted: (cell: WorkerHandle) => this.failAsksTo(cell.ref.id, 'was stopped'),
  };

  private readonly localHost = {
    clock: { now: () => this.clock.now() },
    pool: { run: <R>(task: PoolTask, arg: unknown) => this.pool.run<R>(task, arg) },
    tellFrom: (from: string, to: ActorRef, msg: unknown) => this.tellFrom(from, to, msg),
    askFrom: <R>(from: string, to: ActorRef, msg: unknown, timeoutMs?: number) => this.askFrom<R>(from, to, msg, timeoutMs),
    reply: (rt: ReplyTo, value: unknown) => this.replyTo(rt, { value }),
    replyFail: (rt: ReplyTo, code: ActorErrorCode, message: string) => this.replyTo(rt, { code, message }),
    bounceLocal: (to: string, env: LocalEnvelope, code: ActorErrorCode) => {
      if (env.replyTo !== undefined) this.replyTo(env.replyTo, { code, message: `${to} is stopped` });
      else this.emit({ type: 'DeadLetter', to, from: env.from, code });
    },
    crashed: (cell: LocalCell | Supervisor, crash: Crash) => this.cellCrashed(cell, crash),
    halted: (cell: LocalCell) => this.failAsksTo(cell.ref.id, 'was stopped'),
  };

  /** @internal supervisors report their own crash (escalation) through here. */
  get supervisorHost(): { crashed(cell: Supervisor, crash: Crash): void } {
    return this.localHost;
  }
}

function refusal(r: 'full' | 'dead' | ActorErrorCode, id: string): ActorError {
  if (r === 'full' || r === 'BATON_ERR_MAILBOX_FULL') return new ActorError('BATON_ERR_MAILBOX_FULL', `mailbox of ${id} is full`);
  if (r === 'dead' || r === 'BATON_ERR_ACTOR_DEAD') return new ActorError('BATON_ERR_ACTOR_DEAD', `${id} is stopped`);
  return new ActorError(r, `cannot deliver to ${id}`);
}
