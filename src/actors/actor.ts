/**
 * How an actor is written: a behaviour (init, receive, optional stop/undelivered hooks)
 * and the context it is given. The same behaviour runs on a worker thread or on the
 * main thread; only the context's plumbing differs.
 *
 * An actor module is a plain TS module whose default export is a behaviour:
 *
 * ```ts
 * export default defineActor<Msg, State, Args>({
 *   name: 'relay',
 *   init(args, ctx) { return { ... } },
 *   receive(msg, state, ctx) { ... ctx.reply(x) ... },
 * });
 * ```
 */
import type { ChannelEnd } from './data-channel.js';
import type { ActorErrorCode } from './errors.js';
import type { ArmOptions, FaultKind } from './faults.js';
import type { ActorRef } from './ref.js';

/** A stateless CPU-bound function on the shared piscina pool: `module`'s export `fn`. */
export interface PoolTask {
  /** File URL (or absolute path) of the task module; `.ts` works under tsx. */
  readonly module: string;
  /** Export name; `default` when omitted. */
  readonly fn?: string;
}

/** Access to the shared piscina pool from an actor (proxied through the main thread on workers). */
export interface PoolClient {
  run<R = unknown>(task: PoolTask, arg: unknown): Promise<R>;
}

/** A handle to answer one ask later (e.g. once some other work is done). */
export interface Replier {
  reply(value: unknown): void;
  fail(code: ActorErrorCode, message: string): void;
}

/** What an actor can do, given to `init`, `receive` and the hooks. */
export interface ActorContext {
  /** This actor's ref (stable across supervised restarts). */
  readonly self: ActorRef;
  /** The sender of the message being processed, if it was sent by an actor. */
  readonly sender: ActorRef | undefined;
  /** `threadId` of the thread this incarnation runs on (0 on the main thread). */
  readonly threadId: number;
  /** Fire and forget. Throws `BATON_ERR_MAILBOX_FULL` when a main-thread receiver is full. */
  tell<M>(to: ActorRef<M>, msg: M): void;
  /** Request/response with a deadline; rejects with a coded {@link ActorError}. */
  ask<R = unknown, M = unknown>(to: ActorRef<M>, msg: M, timeoutMs?: number): Promise<R>;
  /** Answers the ask being processed. Throws `BATON_ERR_NO_ASK` outside an ask or on a second reply. */
  reply(value: unknown): void;
  /** Takes the current ask's reply handle to answer later; undefined outside an ask. */
  replier(): Replier | undefined;
  /** A named fault point; a no-op unless armed (then it fires its fault right here). */
  faultPoint(name: string): void;
  /** The shared piscina pool for CPU-bound work off this actor's event loop. */
  readonly pool: PoolClient;
  /**
   * This incarnation's ends of its data channel with the main thread (it writes to main
   * on `writer`, reads from main on `reader`); undefined on main-thread actors and on
   * worker actors spawned without `channel`.
   */
  readonly channel: ChannelEnd | undefined;
  /** The shared memory a worker actor was started with (WorkerActorOptions.shared); undefined on main. */
  readonly shared: unknown;
}

/** An actor behaviour: `Msg` it receives, `State` it keeps, `Args` it starts from. */
export interface ActorBehaviour<Msg = unknown, State = unknown, Args = unknown> {
  /** For logs and ids. */
  readonly name?: string;
  /** Builds the initial state; the actor is Ready (and receives) only after this settles. */
  init(args: Args, ctx: ActorContext): State | Promise<State>;
  /**
   * Handles one message. Messages are processed one at a time: a returned promise is
   * awaited before the next. A throw or rejection crashes the actor (the supervisor decides).
   */
  receive(msg: Msg, state: State, ctx: ActorContext): void | Promise<void>;
  /** Graceful stop: runs before the actor ends on `stop()`, within the shutdown timeout. */
  stop?(state: State, ctx: ActorContext): void | Promise<void>;
  /** A tell from this actor was refused (`BATON_ERR_MAILBOX_FULL` / `BATON_ERR_ACTOR_DEAD`). */
  undelivered?(msg: unknown, to: ActorRef, code: ActorErrorCode, state: State, ctx: ActorContext): void;
}

/** Identity function that types a behaviour; the default export of an actor module. */
export function defineActor<Msg, State, Args = void>(
  behaviour: ActorBehaviour<Msg, State, Args>,
): ActorBehaviour<Msg, State, Args> {
  return behaviour;
}

/** Where a fault can be armed: used by the system to reach either kind of actor. */
export interface FaultTarget {
  armFaultPoint(point: string, kind: FaultKind, opts?: ArmOptions): Promise<void>;
}
