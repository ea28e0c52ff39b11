/**
 * A main-thread actor: the same behaviour API as a worker actor, run over a bounded
 * {@link Mailbox} on the main event loop. Used for the gateway and for small
 * coordinating actors. Only `throw` faults apply here: exiting, terminating, exhausting
 * memory or hanging the main thread would take every actor down with it.
 */
import type { ActorBehaviour, ActorContext, PoolClient, Replier } from './actor.js';
import type { Crash } from './crash.js';
import { ActorError, type ActorErrorCode } from './errors.js';
import { arm, hit, type ArmOptions, type ArmedTable, type FaultKind } from './faults.js';
import { Mailbox } from './mailbox.js';
import { refOf, type ActorRef } from './ref.js';

/** Where an ask's reply goes: the asker's id and its ask number. */
export interface ReplyTo {
  readonly to: string;
  readonly askId: number;
}

/** A message waiting in a main-thread mailbox. */
export interface LocalEnvelope {
  readonly msg: unknown;
  readonly from: string | undefined;
  readonly replyTo: ReplyTo | undefined;
}

/** What a local cell needs from its system. */
export interface LocalHost {
  readonly clock: { now(): number };
  readonly pool: PoolClient;
  tellFrom(from: string, to: ActorRef, msg: unknown): void;
  askFrom<R>(from: string, to: ActorRef, msg: unknown, timeoutMs?: number): Promise<R>;
  reply(replyTo: ReplyTo, value: unknown): void;
  replyFail(replyTo: ReplyTo, code: ActorErrorCode, message: string): void;
  /** An undeliverable envelope (actor stopped): fail it at its origin. */
  bounceLocal(to: string, env: LocalEnvelope, code: ActorErrorCode): void;
  crashed(cell: LocalCell, crash: Crash): void;
  halted(cell: LocalCell): void;
}

export class LocalCell {
  readonly ref: ActorRef;
  private status: 'idle' | 'starting' | 'running' | 'down' | 'stopped' = 'idle';
  private mailbox: Mailbox<LocalEnvelope> | undefined;
  /** Messages that arrived while (re)starting; counted against the capacity. */
  private waiting: LocalEnvelope[] = [];
  private readonly armed: ArmedTable = new Map();
  private state: unknown;
  private current: LocalEnvelope | undefined;
  private replied = false;
  private lastFault: { kind: FaultKind; point?: string } | undefined;
  private readonly ctx: ActorContext;
  private readonly drainWaiters: Array<() => void> = [];

  constructor(
    readonly id: string,
    private readonly behaviour: ActorBehaviour<any, any, any>,
    private readonly args: unknown,
    readonly capacity: number,
    private readonly host: LocalHost,
  ) {
    this.ref = refOf(id);
    const cell = this;
    this.ctx = {
      self: this.ref,
      get sender() {
        return cell.current?.from === undefined ? undefined : refOf(cell.current.from);
      },
      threadId: 0,
      tell: (to, msg) => host.tellFrom(id, to, msg),
      ask: (to, msg, timeoutMs) => host.askFrom(id, to, msg, timeoutMs),
      reply: (value) => {
        const r = this.ctx.replier();
        if (r === undefined) throw new ActorError('BATON_ERR_NO_ASK', 'reply() outside an ask or after the reply was taken');
        r.reply(value);
      },
      replier: () => {
        const rt = this.current?.replyTo;
        if (rt === undefined || this.replied) return undefined;
        this.replied = true;
        return this.replierFor(rt);
      },
      faultPoint: (name) => {
        if (this.armed.size === 0) return;
        const kind = hit(this.armed, name);
        if (kind === undefined) return;
        this.lastFault = { kind, point: name };
        throw new ActorError('BATON_ERR_FAULT_INJECTED', `injected ${kind} at ${name}`);
      },
      pool: host.pool,
      // Bulk bytes between threads only: a main-thread actor shares the gateway's memory.
      channel: undefined,
      shared: undefined,
    };
  }

  get threadId(): number | undefined {
    return this.status === 'running' ? 0 : undefined;
  }

  get writable(): boolean {
    return this.pendingCount() < this.capacity;
  }

  /** Runs `init` and opens the mailbox; resolves with threadId 0. */
  async start(): Promise<number> {
    if (this.status === 'running') return 0;
    if (this.status === 'stopped') throw new ActorError('BATON_ERR_ACTOR_DEAD', `${this.id} is stopped`);
    this.status = 'starting';
    this.armed.clear();
    this.lastFault = undefined;
    try {
      this.state = await this.behaviour.init(this.args, this.ctx);
    } catch (e) {
      this.fail(e, 'start');
      throw new ActorError('BATON_ERR_START_FAILED', `${this.id} failed to start: ${(e as Error).message}`, { cause: e });
    }
    if ((this.status as string) !== 'starting') return 0;
    const mb = new Mailbox<LocalEnvelope>(
      this.capacity,
      (env) => {
        this.current = env;
        this.replied = false;
        return this.behaviour.receive(env.msg, this.state, this.ctx);
      },
      {
        onError: (e) => this.fail(e, 'run'),
        onTaken: () => {
          if (this.drainWaiters.length > 0) this.drainWaiters.splice(0).forEach((w) => w());
        },
      },
    );
    this.mailbox = mb;
    this.status = 'running';
    const waiting = this.waiting;
    this.waiting = [];
    for (const env of waiting) mb.offer(env);
    return 0;
  }

  /** Enqueues a message; `full` at capacity, `dead` once stopped. */
  deliver(env: LocalEnvelope): 'ok' | 'full' | 'dead' {
    switch (this.status) {
      case 'stopped':
        return 'dead';
      case 'running':
        return this.mailbox!.offer(env) ? 'ok' : 'full';
      default:
        if (this.pendingCount() >= this.capacity) return 'full';
        this.waiting.push(env);
        return 'ok';
    }
  }

  drained(): Promise<void> {
    if (this.status === 'stopped') return Promise.reject(new ActorError('BATON_ERR_ACTOR_DEAD', `${this.id} is stopped`));
    if (this.writable) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Only `throw` is meaningful on the main thread. */
  inject(kind: FaultKind): void {
    if (kind !== 'throw') {
      throw new ActorError('BATON_ERR_FAULT_UNSUPPORTED', `fault '${kind}' would take down the main thread`);
    }
    if (this.status !== 'running') throw new ActorError('BATON_ERR_ACTOR_DEAD', `${this.id} is not running`);
    this.lastFault = { kind };
    this.fail(new ActorError('BATON_ERR_FAULT_INJECTED', 'injected throw'), 'run');
  }

  armFaultPoint(point: string, kind: FaultKind, opts?: ArmOptions): Promise<void> {
    if (kind !== 'throw') {
      return Promise.reject(new ActorError('BATON_ERR_FAULT_UNSUPPORTED', `fault '${kind}' would take down the main thread`));
    }
    arm(this.armed, point, kind, opts);
    return Promise.resolve();
  }

  /** Ends this incarnation only (a sibling's restart); queued messages wait for `start()`. */
  async halt(): Promise<void> {
    if (this.status !== 'running' && this.status !== 'starting') return;
    const wasRunning = this.status === 'running';
    this.status = 'idle';
    this.waiting = [...(this.mailbox?.close() ?? []), ...this.waiting];
    this.mailbox = undefined;
    this.host.halted(this);
    if (wasRunning) await this.behaviour.stop?.(this.state, this.ctx);
  }

  /** Runs the stop hook and closes; pending messages are bounced with ACTOR_DEAD. Idempotent. */
  async stop(): Promise<void> {
    if (this.status === 'stopped') return;
    const wasRunning = this.status === 'running';
    this.status = 'stopped';
    const rest = [...(this.mailbox?.close() ?? []), ...this.waiting.splice(0)];
    for (const env of rest) this.host.bounceLocal(this.id, env, 'BATON_ERR_ACTOR_DEAD');
    if (wasRunning) await this.behaviour.stop?.(this.state, this.ctx);
  }

  private pendingCount(): number {
    return (this.mailbox?.size ?? 0) + this.waiting.length;
  }

  private replierFor(rt: ReplyTo): Replier {
    let done = false;
    const once = (): void => {
      if (done) throw new ActorError('BATON_ERR_NO_ASK', 'this ask was already answered');
      done = true;
    };
    return {
      reply: (value) => {
        once();
        this.host.reply(rt, value);
      },
      fail: (code, message) => {
        once();
        this.host.replyFail(rt, code, message);
      },
    };
  }

  private fail(e: unknown, phase: 'start' | 'run'): void {
    if (this.status === 'stopped' || this.status === 'down') return;
    this.status = 'down';
    // What was queued behind the failing message stays for the next incarnation.
    const rest = this.mailbox?.close() ?? [];
    this.mailbox = undefined;
    this.waiting = [...rest, ...this.waiting].slice(0, this.capacity);
    const err = e as { message?: unknown; code?: unknown };
    const crash: Crash = {
      ref: this.ref,
      reason: {
        kind: 'throw',
        message: typeof err?.message === 'string' ? err.message : String(e),
        ...(typeof err?.code === 'string' ? { code: err.code } : {}),
      },
      detectedAt: this.host.clock.now(),
      threadId: 0,
      phase,
      ...(this.lastFault ? { fault: this.lastFault } : {}),
    };
    this.host.crashed(this, crash);
  }
}
