/**
 * Supervisors in the Erlang/OTP sense: an ordered list of child specs, a restart
 * strategy (one_for_one, one_for_all, rest_for_one), restart types (permanent,
 * transient, temporary), a restart intensity (at most `intensity` restarts in
 * `periodMs`, then escalate to the parent), and a restart backoff.
 *
 * A supervisor is itself an actor: it has a ref, answers `WhichChildren` asks, and can be
 * the child of another supervisor. Children's crashes reach it by direct callback from
 * the crash path, not through its mailbox, so takeover listeners hear of a crash in the
 * same turn it is detected.
 */
import type { ActorBehaviour } from './actor.js';
import type { Crash, CrashReason } from './crash.js';
import { ActorError, type ActorErrorCode } from './errors.js';
import type { ArmOptions, FaultKind } from './faults.js';
import { backoffDelay, DEFAULT_BACKOFF, DEFAULT_INTENSITY, recordRestart, type Backoff } from './intensity.js';
import type { LocalEnvelope, ReplyTo } from './local-cell.js';
import { newActorId, refOf, type ActorRef } from './ref.js';
import type { WorkerActorOptions } from './worker-handle.js';
import type { Clock } from '../util/clock.js';

/** A supervised child as its supervisor sees it: a worker, a local actor or a supervisor. */
export interface ChildCell {
  readonly ref: ActorRef;
  readonly threadId: number | undefined;
  /** Starts (or restarts) the child; resolves with its thread id once it is ready. */
  start(): Promise<number>;
  /** Stops the child, restartable. */
  halt(): Promise<void>;
}

/**
 * What a supervisor needs of the actor system that hosts it. The system implements it
 * and hands itself in; the supervisor never imports the system (no module cycle).
 */
export interface SupervisorHost {
  readonly clock: Clock;
  createWorker(id: string, opts: WorkerActorOptions): ChildCell;
  createLocal(id: string, behaviour: ActorBehaviour<any, any, any>, args: unknown, capacity?: number): ChildCell;
  createSupervisor(spec: SupervisorSpec): ChildCell;
  /** The supervisor claims the crashes of a child it owns. */
  own(child: ChildCell, owner: Supervisor): void;
  stop(ref: ActorRef): Promise<void>;
  tryTellQuiet(to: ActorRef, msg: unknown): void;
  emit(e: SupervisorEvent): void;
  replyToAsk(rt: ReplyTo, value: unknown): void;
  failAsk(rt: ReplyTo, code: ActorErrorCode, message: string): void;
  /** A supervisor reports its own crash (escalation) here. */
  readonly supervisorHost: { crashed(cell: Supervisor, crash: Crash): void };
}

export type Strategy = 'one_for_one' | 'one_for_all' | 'rest_for_one';

/** permanent: always restarted; transient: only after an abnormal end; temporary: never. */
export type RestartType = 'permanent' | 'transient' | 'temporary';

/** How to start a child. */
export type ChildStart =
  | { readonly kind: 'worker'; readonly options: WorkerActorOptions }
  | { readonly kind: 'local'; readonly behaviour: ActorBehaviour<any, any, any>; readonly args?: unknown; readonly capacity?: number }
  | { readonly kind: 'supervisor'; readonly spec: SupervisorSpec };

/** A child spec: a name unique within its supervisor, how to start it, when to restart it. */
export interface ChildSpec {
  readonly id: string;
  readonly start: ChildStart;
  readonly restart?: RestartType;
}

/** What a supervisor tells its listeners, in order: Crashed, then Restarted or Escalated. */
export type SupervisorEvent =
  | { readonly type: 'Crashed'; readonly supervisor: ActorRef; readonly child: string; readonly crash: Crash }
  | {
      readonly type: 'Restarted';
      readonly supervisor: ActorRef;
      readonly child: string;
      readonly ref: ActorRef;
      readonly threadId: number;
      /** Restarts of this supervisor's children inside the current period. */
      readonly recent: number;
    }
  /** Intensity exceeded: the supervisor stopped its children and reported itself crashed. */
  | { readonly type: 'Escalated'; readonly supervisor: ActorRef; readonly child: string; readonly cause: CrashReason };

export interface SupervisorSpec {
  /** Readable prefix of the supervisor's actor id. */
  readonly id?: string;
  readonly strategy: Strategy;
  /** Default 3. */
  readonly intensity?: number;
  /** Default 5000. */
  readonly periodMs?: number;
  readonly backoff?: Partial<Backoff>;
  readonly children: readonly ChildSpec[];
  /** Called synchronously for every event (keep it quick). */
  readonly listener?: (e: SupervisorEvent) => void;
  /** An actor told every event, e.g. the gateway that starts takeover. */
  readonly notify?: ActorRef<SupervisorEvent>;
  /**
   * Awaited (with the backoff) before a crashed child starts again: what its crash set
   * off may finish first. It should settle soon whatever happens; a rejection counts as settled.
   */
  readonly beforeRestart?: (child: string) => Promise<void>;
}

/** Asks a supervisor answers (send with `system.ask(supervisor.ref, ...)`). */
export type SupervisorRequest = { readonly type: 'WhichChildren' };

/** One row of `WhichChildren`. */
export interface ChildInfo {
  readonly id: string;
  readonly ref: ActorRef;
  readonly threadId: number | undefined;
}

interface Child {
  readonly spec: ChildSpec;
  readonly cell: ChildCell;
  /** A temporary child that ended, or a transient one that ended normally. */
  gone: boolean;
  /**
   * Bumped by every restart pass that includes this child: a pass gives way to a newer
   * one for the same child only. (One counter for all children would let a sibling's
   * crash silently cancel this child's one_for_one restart.)
   */
  restarts: number;
}

export class Supervisor {
  readonly ref: ActorRef;
  private readonly children: Child[] = [];
  private history: readonly number[] = [];
  private status: 'idle' | 'starting' | 'running' | 'down' | 'stopped' = 'idle';
  /** A child that crashed while `start()` was still bringing the others up. */
  private startCrash: Crash | undefined;
  /** Bumped on every restart pass, so a superseded pass stops where it is. */
  private generation = 0;
  private readonly intensity: number;
  private readonly periodMs: number;
  private readonly backoff: Backoff;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly system: SupervisorHost,
    private readonly spec: SupervisorSpec,
  ) {
    this.ref = refOf(newActorId(spec.id ?? 'supervisor'));
    this.intensity = spec.intensity ?? DEFAULT_INTENSITY.intensity;
    this.periodMs = spec.periodMs ?? DEFAULT_INTENSITY.periodMs;
    this.backoff = { ...DEFAULT_BACKOFF, ...spec.backoff };
    const seen = new Set<string>();
    for (const c of spec.children) {
      if (seen.has(c.id)) throw new ActorError('BATON_ERR_SUPERVISOR', `duplicate child id ${c.id}`);
      seen.add(c.id);
      const cell = this.createCell(c);
      system.own(cell, this);
      this.children.push({ spec: c, cell, gone: false, restarts: 0 });
    }
  }

  /** The ref of child `id` (stable across restarts). */
  childRef<M = unknown>(id: string): ActorRef<M> {
    return this.child(id).cell.ref as ActorRef<M>;
  }

  /** Current children in start order. */
  whichChildren(): ChildInfo[] {
    return this.children.filter((c) => !c.gone).map((c) => ({ id: c.spec.id, ref: c.cell.ref, threadId: c.cell.threadId }));
  }

  get threadId(): number | undefined {
    return this.status === 'running' ? 0 : undefined;
  }

  get writable(): boolean {
    return true;
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Starts the children in order. As in OTP, if one cannot start, those already started
   * are stopped and the start fails (no restart loop at start-up).
   */
  async start(): Promise<number> {
    if (this.status === 'running') return 0;
    if (this.status === 'stopped') throw new ActorError('BATON_ERR_ACTOR_DEAD', `${this.ref.id} is stopped`);
    this.status = 'starting';
    this.startCrash = undefined;
    this.history = [];
    const gen = ++this.generation;
    let failure: unknown;
    for (const c of this.children) {
      c.gone = false;
      try {
        await c.cell.start();
      } catch (e) {
        failure = e;
        break;
      }
      if (this.startCrash !== undefined) break;
    }
    if (gen !== this.generation) return 0; // stopped meanwhile
    if (failure !== undefined || this.startCrash !== undefined) {
      this.generation++;
      await this.stopChildren(this.children);
      this.status = 'down';
      throw new ActorError('BATON_ERR_START_FAILED', `a child of ${this.ref.id} failed to start`, { cause: failure ?? this.startCrash });
    }
    this.status = 'running';
    return 0;
  }

  /** Stops the children (restartable: a parent's restart calls `start()` again). */
  async halt(): Promise<void> {
    if (this.status !== 'running' && this.status !== 'starting') return;
    this.status = 'idle';
    this.generation++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.stopChildren(this.children);
  }

  /** Stops the children in reverse start order, then itself. Idempotent. */
  async stop(): Promise<void> {
    if (this.status === 'stopped') return;
    this.status = 'stopped';
    this.generation++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.stopChildren(this.children);
    for (const c of this.children) await this.system.stop(c.cell.ref);
  }

  /** Answers `WhichChildren`; anything else is refused inside the protocol. */
  deliver(env: LocalEnvelope): 'ok' | 'full' | 'dead' {
    if (this.status === 'stopped') return 'dead';
    const req = env.msg as SupervisorRequest | undefined;
    if (env.replyTo !== undefined) {
      if (req?.type === 'WhichChildren') this.reply(env, this.whichChildren());
      else this.replyFail(env, `unknown supervisor request`);
    }
    return 'ok';
  }

  /** `throw` crashes the supervisor itself (its children are stopped, its parent decides). */
  inject(kind: FaultKind): void {
    if (kind !== 'throw') throw new ActorError('BATON_ERR_FAULT_UNSUPPORTED', `fault '${kind}' on a supervisor`);
    this.giveUp('(injected)', { kind: 'throw', message: 'injected throw' }, { kind });
  }

  armFaultPoint(_point: string, kind: FaultKind, _opts?: ArmOptions): Promise<void> {
    return Promise.reject(new ActorError('BATON_ERR_FAULT_UNSUPPORTED', `fault point '${kind}' on a supervisor`));
  }

  /** @internal the crash path of a child ends here. */
  childCrashed(cell: ChildCell, crash: Crash): void {
    const child = this.children.find((c) => c.cell === cell);
    if (child === undefined) return;
    if (this.status === 'starting') {
      this.startCrash ??= crash;
      return;
    }
    if (this.status !== 'running') return;
    this.emit({ type: 'Crashed', supervisor: this.ref, child: child.spec.id, crash });
    if (this.status !== 'running') return; // a listener stopped us
    const type = child.spec.restart ?? 'permanent';
    const normal = crash.reason.kind === 'exit' && crash.reason.exitCode === 0;
    if (type === 'temporary' || (type === 'transient' && normal)) {
      child.gone = true;
      return;
    }
    const decision = recordRestart(this.history, this.system.clock.now(), { intensity: this.intensity, periodMs: this.periodMs });
    this.history = decision.history;
    if (!decision.allowed) {
      this.giveUp(child.spec.id, crash.reason);
      return;
    }
    const idx = this.children.indexOf(child);
    const affected =
      this.spec.strategy === 'one_for_one'
        ? [child]
        : this.spec.strategy === 'one_for_all'
          ? this.children.filter((c) => !c.gone)
          : this.children.slice(idx).filter((c) => !c.gone || c === child);
    const delay = backoffDelay(decision.history.length - 1, crash.phase === 'start', this.backoff);
    void this.restart(affected, child, delay, decision.history.length);
  }

  private async restart(affected: Child[], crashed: Child, delayMs: number, recent: number): Promise<void> {
    const gen = this.generation;
    const passes = new Map(affected.map((c) => [c, ++c.restarts]));
    const current = (c: Child) => gen === this.generation && passes.get(c) === c.restarts && this.status === 'running';
    // Siblings go down in reverse start order before anything comes back, as in OTP.
    await this.stopChildren(affected.filter((c) => c !== crashed));
    const backoff =
      delayMs > 0
        ? new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              this.timers.delete(t);
              resolve();
            }, delayMs);
            this.timers.add(t);
          })
        : undefined;
    await Promise.all([backoff, this.spec.beforeRestart?.(crashed.spec.id).catch(() => {})]);
    for (const c of affected) {
      if (!current(c)) continue;
      c.gone = false;
      try {
        const threadId = await c.cell.start();
        if (!current(c)) continue;
        this.emit({ type: 'Restarted', supervisor: this.ref, child: c.spec.id, ref: c.cell.ref, threadId, recent });
      } catch {
        // Its crash has already come through childCrashed and started a newer pass for it.
        continue;
      }
    }
  }

  /** Intensity exceeded (or the supervisor itself crashed): stop everything and report upward. */
  private giveUp(child: string, cause: CrashReason, fault?: { kind: FaultKind }): void {
    if (this.status !== 'running') return;
    this.status = 'down';
    this.generation++;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.emit({ type: 'Escalated', supervisor: this.ref, child, cause });
    void this.stopChildren(this.children).then(() => {
      const crash: Crash = {
        ref: this.ref,
        reason: { kind: 'escalated', child, cause },
        detectedAt: this.system.clock.now(),
        threadId: 0,
        phase: 'run',
        ...(fault ? { fault } : {}),
      };
      this.system.supervisorHost.crashed(this, crash);
    });
  }

  /**
   * Stops children for a restart or shutdown. Their cells stay registered (refs are
   * stable); a restart calls `start()` on the same cell.
   */
  private async stopChildren(children: readonly Child[]): Promise<void> {
    for (const c of [...children].reverse()) await c.cell.halt();
  }

  private child(id: string): Child {
    const c = this.children.find((x) => x.spec.id === id);
    if (c === undefined) throw new ActorError('BATON_ERR_SUPERVISOR', `no child ${id} in ${this.ref.id}`);
    return c;
  }

  private createCell(c: ChildSpec): ChildCell {
    const id = newActorId(c.id);
    switch (c.start.kind) {
      case 'worker':
        return this.system.createWorker(id, c.start.options);
      case 'local':
        return this.system.createLocal(id, c.start.behaviour, c.start.args, c.start.capacity);
      case 'supervisor':
        return this.system.createSupervisor(c.start.spec);
      default: {
        const never: never = c.start;
        throw new ActorError('BATON_ERR_SUPERVISOR', `unknown child kind ${String(never)}`);
      }
    }
  }

  private emit(e: SupervisorEvent): void {
    try {
      this.spec.listener?.(e);
    } catch {
      // A listener's bug must not stop supervision.
    }
    if (this.spec.notify !== undefined) {
      // Best effort: a full or dead listener is the listener's problem, not a reason to stop restarting.
      this.system.tryTellQuiet(this.spec.notify, e);
    }
    this.system.emit(e);
  }

  private reply(env: LocalEnvelope, value: unknown): void {
    this.system.replyToAsk(env.replyTo!, value);
  }

  private replyFail(env: LocalEnvelope, message: string): void {
    this.system.failAsk(env.replyTo!, 'BATON_ERR_SUPERVISOR', message);
  }
}
