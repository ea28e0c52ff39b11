/**
 * The main-thread side of one worker actor, across its incarnations: spawns the worker,
 * waits for Ready, enforces the mailbox bound with credits (sent minus acknowledged),
 * buffers while (re)starting, and turns every way the worker can die into exactly one
 * {@link Crash}: `error` and `exit` events, the watchdog, and the start deadline all feed
 * `crashed()`, and the first report wins.
 *
 * Order: a crash is reported only after every frame the dead incarnation posted has
 * been handled. A death is detected first (state `dying`), the report waits for the
 * thread's `exit` (Node delivers what is left in the port just before it) and for the
 * frames that came in one batch, without a microtask checkpoint between them (as in
 * that last delivery), which this handle queues and hands on in order, waiting for a
 * full main-thread mailbox rather than refusing the dead incarnation's mail.
 */
import { Worker, type ResourceLimits } from 'node:worker_threads';
import type { Clock } from '../util/clock.js';
import { isSource, siblingModule } from '../util/module-url.js';
import type { Crash, CrashReason } from './crash.js';
import { createDataChannel, mainEnd, ringCapacity, type ChannelEnd } from './data-channel.js';
import { ActorError, type ActorErrorCode } from './errors.js';
import type { ArmOptions, FaultKind } from './faults.js';
import { adoptFrame, decodeHeader, encodeFrame, encodeValue, postFrame, type FromWorker, type WorkerBoot } from './protocol.js';
import { refOf, type ActorRef } from './ref.js';
import { heartbeatCell, heartbeatInterval, Watchdog, type WatchdogOptions } from './watchdog.js';

/** How to run an actor module on a worker thread. */
export interface WorkerActorOptions {
  /** File URL or absolute path of the actor module (`.ts` is loaded through tsx). */
  readonly module: string | URL;
  /** Which export is the behaviour; `default` when omitted. */
  readonly exportName?: string;
  /**
   * Init args, msgpackr-encodable; or a function giving them, called at every start so a
   * restarted actor boots on current settings.
   */
  readonly args?: unknown | (() => unknown);
  /** Mailbox capacity (messages sent but not yet taken by the actor). Default 1024. */
  readonly capacity?: number;
  /** Heartbeat watchdog settings, or `false` to disable it. */
  readonly watchdog?: WatchdogOptions | false;
  /** V8 heap limits; keep them small for actors so OOM is contained and quick. */
  readonly resourceLimits?: ResourceLimits;
  /** Deadline for the worker to post Ready (includes loading TS through tsx). Default 15000. */
  readonly startTimeoutMs?: number;
  /** Graceful stop budget before terminate(). Default 2000. */
  readonly shutdownMs?: number;
  /**
   * A data channel for bulk bytes with the main thread: two rings of `bytes` each (see
   * data-channel.ts). Every incarnation gets a fresh one, so a zombie of a dead
   * incarnation can never write into its successor's.
   */
  readonly channel?: { readonly bytes: number };
  /**
   * Shared memory (SharedArrayBuffers, in any structured-cloneable value) every
   * incarnation is started with, as `ctx.shared`; msgpackr-encoded args cannot carry it.
   * It is the same memory for every incarnation: what one wrote, the next one sees.
   */
  readonly shared?: unknown;
}

/** What a handle needs from the system that owns it. */
export interface HandleHost {
  readonly clock: Clock;
  /**
   * Deliver/Ask/Reply/PoolRun frames coming out of the worker. With `wait`, a mailbox
   * frame whose receiver is full is not refused: a promise is returned instead, settled
   * when the receiver may have room (then the frame is routed again).
   */
  route(from: WorkerHandle, frame: Uint8Array, header: FromWorker, payloadAt: number, wait: boolean): Promise<void> | undefined;
  /** A mailbox frame that can no longer be delivered (actor stopped): fail it at its origin. */
  bounce(frame: Uint8Array, code: ActorErrorCode): void;
  /** Called once per incarnation that dies (never for a requested stop). */
  crashed(from: WorkerHandle, crash: Crash): void;
  /** An incarnation ended on request: asks it had not answered will never be. */
  halted(from: WorkerHandle): void;
}

export const DEFAULT_CAPACITY = 1024;
const DEFAULT_START_TIMEOUT_MS = 15_000;
const DEFAULT_SHUTDOWN_MS = 2_000;
/** How long a dead incarnation's `exit` is waited for before its crash is reported anyway. */
const EXIT_WAIT_MS = 2_000;
/** How long a dying worker's data-channel turn may take to end before only its exit counts. */
const FENCE_WAIT_MS = 200;

type State =
  | { readonly kind: 'idle' }
  | { readonly kind: 'starting'; readonly worker: Worker; readonly timer: NodeJS.Timeout }
  | { readonly kind: 'running'; readonly worker: Worker; readonly threadId: number; readonly watchdog: Watchdog | undefined }
  /** Dead, its crash not yet reported: waiting for the thread's exit and for its last frames to be handled. */
  | {
      readonly kind: 'dying';
      readonly worker: Worker;
      readonly crash: Crash;
      exited: boolean;
      /** Its data channel's producer is fenced: it writes no more shared memory (see RingReader.fence). */
      fenced: boolean;
      readonly timer: NodeJS.Timeout;
    }
  | { readonly kind: 'down'; readonly crash: Crash }
  | { readonly kind: 'stopping'; readonly worker: Worker; readonly done: Promise<void>; readonly final: boolean }
  | { readonly kind: 'stopped' };

// tsx is a dev dependency (the package runs compiled JavaScript from dist/): it is
// resolved only when a .ts module has to be loaded, i.e. from src/ (the tests, or a
// checkout run without a build).
function tsxApiUrl(): string {
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch (e) {
    throw new ActorError('BATON_ERR_START_FAILED', 'loading a .ts actor module needs tsx installed', { cause: e });
  }
}

const HOST_URL = siblingModule(import.meta.url, './worker-host').href;

/**
 * The worker's entry: an eval'd bootstrap. Node 20 ignores `--import tsx` in a worker's
 * execArgv, so the bootstrap registers tsx's hooks itself before importing the host.
 */
function bootstrapCode(moduleUrl: string): string {
  const needsTsx = isSource(HOST_URL) || isSource(moduleUrl);
  const host = JSON.stringify(HOST_URL);
  if (!needsTsx) return `import(${host});`;
  return `import(${JSON.stringify(tsxApiUrl())}).then((m) => { m.register(); return import(${host}); });`;
}

/** V8 flags that a Worker refuses in its execArgv; they are process-wide, so they already cover every worker. */
const PROCESS_WIDE_FLAGS = new Set([
  '--perf-basic-prof',
  '--perf-basic-prof-only-functions',
  '--perf-prof',
  '--interpreted-frames-native-stack',
  // JIT and GC tracing and tuning (bench/handshake-cpu.ts HANDSHAKE_CPU_NODE_ARGS)
  '--trace-opt',
  '--trace-deopt',
  '--single-threaded-gc',
  '--max-semi-space-size',
  '--maglev',
  '--no-opt',
  '--max-inlined-bytecode-size-cumulative',
]);

/** execArgv for runtime workers: the parent's, minus tsx loader flags and process-wide V8 flags. */
// Flags of a parent started through the tsx CLI do not work in a worker on Node 20 and
// would register a second loader. Everything else (e.g. --enable-source-maps) is kept.

export function workerExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if ((a === '--import' || a === '--require' || a === '--loader' || a === '--experimental-loader') && i + 1 < argv.length) {
      if (argv[i + 1]!.includes('tsx')) {
        i++;
        continue;
      }
    }
    if (/^--(import|require|loader|experimental-loader)=.*tsx/.test(a)) continue;
    if (PROCESS_WIDE_FLAGS.has(a.split('=')[0]!)) continue;
    out.push(a);
  }
  return out;
}

export class WorkerHandle {
  readonly ref: ActorRef;
  readonly capacity: number;

  private state: State = { kind: 'idle' };
  /** This incarnation's shared heartbeat cell (a fresh one per start). */
  private heartbeat: Int32Array = heartbeatCell();
  private readonly moduleUrl: string;
  /** The encoded args when they are a value (encoded once); undefined when they are a function. */
  private readonly bootArgs: Uint8Array | undefined;
  /** The main end of the live incarnation's data channel. */
  private liveChannel: ChannelEnd | undefined;
  private inflight = 0;
  private buffered: Uint8Array[] = [];
  private drainWaiters: Array<{ resolve(): void; reject(e: Error): void }> = [];
  private startWaiters: Array<{ resolve(threadId: number): void; reject(e: Error): void }> = [];
  private lastFault: { kind: FaultKind; point?: string } | undefined;
  private armSeq = 0;
  private readonly armWaiters = new Map<number, { resolve(): void; reject(e: Error): void }>();
  private lastThreadId: number | undefined;
  /** Frames that came in one batch, waiting to be handled in order (see the file comment). */
  private inbox: Uint8Array[] = [];
  private flushing = false;
  /** A frame was handled and no microtask checkpoint has run since. */
  private inBatch = false;

  constructor(
    readonly id: string,
    private readonly opts: WorkerActorOptions,
    private readonly host: HandleHost,
  ) {
    this.ref = refOf(id);
    this.capacity = opts.capacity ?? DEFAULT_CAPACITY;
    this.moduleUrl = opts.module instanceof URL ? opts.module.href : opts.module.startsWith('file:') ? opts.module : `file://${opts.module}`;
    if (opts.channel !== undefined) ringCapacity(opts.channel.bytes); // a bad size fails at spawn, not at every start
    this.bootArgs = typeof opts.args === 'function' ? undefined : encodeValue(opts.args ?? null);
  }

  /**
   * The main thread's end of the live incarnation's data channel (it writes to the
   * worker on `writer`, reads from it on `reader`); undefined when the actor has no
   * channel or no live incarnation. A restart brings a new one; an end kept from a dead
   * incarnation stays readable (its rings are closed, their published entries remain).
   */
  get channel(): ChannelEnd | undefined {
    return this.liveChannel;
  }

  /** Current lifecycle state, for diagnostics and tests. */
  get status(): State['kind'] {
    return this.state.kind;
  }

  /** threadId of the live incarnation, if running. */
  get threadId(): number | undefined {
    return this.state.kind === 'running' ? this.state.threadId : undefined;
  }

  /** Spawns a new incarnation; resolves with its threadId once Ready. */
  start(): Promise<number> {
    const s = this.state;
    if (s.kind === 'running') return Promise.resolve(s.threadId);
    if (s.kind === 'stopping' || s.kind === 'stopped') {
      return Promise.reject(new ActorError('BATON_ERR_ACTOR_DEAD', `${this.id} is stopped`));
    }
    const p = new Promise<number>((resolve, reject) => this.startWaiters.push({ resolve, reject }));
    if (s.kind === 'starting') return p;
    this.lastFault = undefined;
    let args: Uint8Array;
    try {
      args = this.bootArgs ?? encodeValue((this.opts.args as () => unknown)() ?? null);
    } catch (e) {
      this.startFailed(e);
      return p;
    }
    this.heartbeat = heartbeatCell();
    const channel = this.opts.channel === undefined ? undefined : createDataChannel(this.opts.channel.bytes);
    const wd = this.opts.watchdog;
    const boot: WorkerBoot = {
      actorId: this.id,
      module: this.moduleUrl,
      exportName: this.opts.exportName ?? 'default',
      args,
      heartbeatMs: heartbeatInterval(wd === false ? 1_000 : (wd?.deadlineMs ?? 1_000)),
      heartbeat: this.heartbeat,
      capacity: this.capacity,
      ackEvery: Math.max(1, Math.floor(this.capacity / 4)),
      terminateWaitMs: 10_000,
      ...(channel === undefined ? {} : { channel }),
      ...(this.opts.shared === undefined ? {} : { shared: this.opts.shared }),
    };
    let worker: Worker;
    try {
      worker = new Worker(bootstrapCode(this.moduleUrl), {
        eval: true,
        workerData: boot,
        execArgv: workerExecArgv(),
        ...(this.opts.resourceLimits ? { resourceLimits: this.opts.resourceLimits } : {}),
      });
    } catch (e) {
      this.startWaiters.splice(0).forEach((w) => w.reject(new ActorError('BATON_ERR_START_FAILED', String(e), { cause: e })));
      return p;
    }
    const startTimeoutMs = this.opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const timer = setTimeout(() => {
      if (this.state.kind === 'starting' && this.state.worker === worker) {
        this.kill({ kind: 'start-timeout', afterMs: startTimeoutMs });
      }
    }, startTimeoutMs);
    timer.unref();
    this.state = { kind: 'starting', worker, timer };
    this.liveChannel = channel === undefined ? undefined : mainEnd(channel);
    worker.on('message', (frame: Uint8Array) => {
      if (this.liveWorker() !== worker) return;
      adoptFrame(frame);
      if (this.inBatch || this.inbox.length > 0) {
        // Node is delivering a batch (a dying worker's last frames come all at once): a
        // main-thread receiver gets no turn between them, so they are handed on from a
        // queue, in order, where they can wait for room.
        this.inbox.push(frame);
        if (!this.flushing) {
          this.flushing = true;
          queueMicrotask(() => void this.flush());
        }
        return;
      }
      this.inBatch = true;
      queueMicrotask(() => (this.inBatch = false));
      this.onFrame(frame, false);
    });
    worker.on('error', (err: Error & { code?: string }) => {
      if (this.liveWorker() !== worker || this.state.kind === 'stopping') return;
      this.crashed(
        err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? { kind: 'oom', message: err.message }
          : { kind: 'throw', message: err.message, ...(typeof err.code === 'string' ? { code: err.code } : {}) },
      );
    });
    worker.on('exit', (exitCode: number) => {
      if (this.liveWorker() !== worker) return;
      if (this.state.kind === 'dying') {
        this.state.exited = true;
        this.reportWhenHandled();
        return;
      }
      if (this.state.kind === 'stopping') {
        const final = this.state.final;
        this.state = final ? { kind: 'stopped' } : { kind: 'idle' };
        this.endChannel();
        this.inflight = 0;
        this.host.halted(this);
        if (final) this.failBuffered('BATON_ERR_ACTOR_DEAD');
        return;
      }
      this.crashed({ kind: 'exit', exitCode }, true);
    });
    return p;
  }

  /**
   * Sends a mailbox frame (Deliver/Ask). `full` when at capacity, `dead` once stopped;
   * while (re)starting the frame waits in a buffer that counts against the capacity.
   */
  send(frame: Uint8Array): 'ok' | 'full' | 'dead' {
    const s = this.state;
    if (s.kind === 'stopped' || s.kind === 'stopping') return 'dead';
    if (this.inflight + this.buffered.length >= this.capacity) return 'full';
    if (s.kind === 'running') {
      this.inflight++;
      postFrame(s.worker, frame);
    } else {
      this.buffered.push(frame);
    }
    return 'ok';
  }

  /** Sends a frame outside the mailbox (Reply, Bounced, PoolDone); dropped if no live incarnation. */
  sendControl(frame: Uint8Array): void {
    if (this.state.kind === 'running') postFrame(this.state.worker, frame);
  }

  /** True when a `send` would not be refused for capacity. */
  get writable(): boolean {
    return this.inflight + this.buffered.length < this.capacity;
  }

  /** Resolves when the mailbox has room again (rejects if the actor is stopped). */
  drained(): Promise<void> {
    if (this.state.kind === 'stopped') return Promise.reject(new ActorError('BATON_ERR_ACTOR_DEAD', `${this.id} is stopped`));
    if (this.writable) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /** Injects a crash of `kind` into the running incarnation. */
  inject(kind: FaultKind): void {
    const s = this.state;
    if (s.kind !== 'running' && s.kind !== 'starting') {
      throw new ActorError('BATON_ERR_ACTOR_DEAD', `${this.id} is not running`);
    }
    this.lastFault = { kind };
    if (kind === 'terminate') {
      this.kill({ kind: 'terminated', by: 'inject' });
      return;
    }
    if (s.kind !== 'running') throw new ActorError('BATON_ERR_ACTOR_DEAD', `${this.id} is still starting`);
    postFrame(s.worker, encodeFrame({ t: 'Inject', kind }));
  }

  /** Arms a named fault point in the running incarnation; resolves once the worker confirmed. */
  armFaultPoint(point: string, kind: FaultKind, opts: ArmOptions = {}): Promise<void> {
    const s = this.state;
    if (s.kind !== 'running') return Promise.reject(new ActorError('BATON_ERR_ACTOR_DEAD', `${this.id} is not running`));
    const seq = ++this.armSeq;
    const done = new Promise<void>((resolve, reject) => this.armWaiters.set(seq, { resolve, reject }));
    postFrame(
      s.worker,
      encodeFrame({ t: 'Arm', seq, point, kind, skip: opts.skip ?? 0, times: opts.times ?? 1 }),
    );
    return done;
  }

  /** Graceful stop for good: stop hook, exit, terminate() after the shutdown budget. Idempotent. */
  stop(): Promise<void> {
    return this.shutdown(true);
  }

  /** Graceful stop of this incarnation only (a sibling's restart); `start()` may follow. */
  halt(): Promise<void> {
    return this.shutdown(false);
  }

  private shutdown(final: boolean): Promise<void> {
    const s = this.state;
    switch (s.kind) {
      case 'stopped':
        return Promise.resolve();
      case 'stopping':
        if (final) this.state = { ...s, final };
        return s.done;
      case 'dying':
        // Its crash is still to be reported; once it is, the supervisor finds it stopped.
        clearTimeout(s.timer);
        this.state = { kind: 'down', crash: s.crash };
        if (final) {
          this.state = { kind: 'stopped' };
          this.failBuffered('BATON_ERR_ACTOR_DEAD');
        }
        return Promise.resolve();
      case 'idle':
      case 'down':
        if (final) {
          this.state = { kind: 'stopped' };
          this.failBuffered('BATON_ERR_ACTOR_DEAD');
        }
        return Promise.resolve();
      case 'starting':
      case 'running': {
        if (s.kind === 'starting') clearTimeout(s.timer);
        else s.watchdog?.stop();
        const worker = s.worker;
        const done = new Promise<void>((resolve) => {
          const kill = setTimeout(() => void worker.terminate(), this.opts.shutdownMs ?? DEFAULT_SHUTDOWN_MS);
          kill.unref();
          worker.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
        });
        this.state = { kind: 'stopping', worker, done, final };
        this.startWaiters.splice(0).forEach((w) => w.reject(new ActorError('BATON_ERR_ACTOR_DEAD', `${this.id} stopped while starting`)));
        if (s.kind === 'running') postFrame(worker, encodeFrame({ t: 'Stop' }));
        else void worker.terminate();
        return done;
      }
      default: {
        const never: never = s;
        return Promise.reject(new Error(String(never)));
      }
    }
  }

  /** The crash report of the last dead incarnation, while it is down. */
  get lastCrash(): Crash | undefined {
    return this.state.kind === 'down' ? this.state.crash : undefined;
  }

  private liveWorker(): Worker | undefined {
    const s = this.state;
    return s.kind === 'starting' || s.kind === 'running' || s.kind === 'stopping' || s.kind === 'dying' ? s.worker : undefined;
  }

  /** Declares the incarnation dead now (watchdog, start deadline, injected terminate), then kills it. */
  private kill(reason: CrashReason): void {
    const w = this.liveWorker();
    // Stop its JavaScript first (terminate() interrupts the isolate at once; the thread
    // winds down later), then report: whoever handles the crash must not race a worker
    // that is still running.
    if (w !== undefined) void w.terminate();
    this.crashed(reason);
  }

  /**
   * The one crash path: every detector ends here; later reports of the same death are
   * ignored. The incarnation is dead from here on (no mail reaches it, its channel is
   * closed); the crash is reported once its thread has exited, or its data channel's
   * producer is fenced (it writes shared memory only in turns, and the fence stops the
   * next one), and every frame it posted so far was handled ({@link reportWhenHandled}).
   */
  private crashed(reason: CrashReason, exited = false): void {
    const s = this.state;
    if (s.kind !== 'starting' && s.kind !== 'running') return;
    if (s.kind === 'starting') clearTimeout(s.timer);
    else s.watchdog?.stop();
    const crash: Crash = {
      ref: this.ref,
      reason,
      detectedAt: this.host.clock.now(),
      threadId: s.kind === 'running' ? s.threadId : this.lastThreadId,
      phase: s.kind === 'starting' ? 'start' : 'run',
      ...(this.lastFault ? { fault: this.lastFault } : {}),
    };
    const worker = s.worker;
    // An exit that never comes (a thread stuck in native code) does not hold the report for ever.
    const timer = setTimeout(() => {
      if (this.state.kind !== 'dying' || this.state.worker !== worker) return;
      this.state.exited = true;
      this.reportWhenHandled();
    }, EXIT_WAIT_MS);
    timer.unref();
    const dying = { kind: 'dying' as const, worker, crash, exited, fenced: false, timer };
    this.state = dying;
    // A worker that writes shared memory only in turns (a relay: its rings, the arena, the
    // state store) is done with it once fenced, which is long before its thread has torn
    // down (tens of ms on a loaded machine): the crash may be handled from there.
    if (!exited && this.liveChannel !== undefined) {
      void this.liveChannel.reader.fence(FENCE_WAIT_MS).then((fenced) => {
        if (!fenced || this.state !== dying) return;
        dying.fenced = true;
        this.reportWhenHandled();
      });
    }
    this.endChannel();
    // Whatever the dead worker had taken or queued is gone; buffered frames wait for the next incarnation.
    this.inflight = 0;
    const err = new ActorError('BATON_ERR_START_FAILED', `${this.id} died while starting`);
    this.startWaiters.splice(0).forEach((w) => w.reject(err));
    // An Arm the dead incarnation never confirmed will never be.
    for (const w of this.armWaiters.values()) w.reject(new ActorError('BATON_ERR_ACTOR_DEAD', `${this.id} died before it confirmed the fault point`));
    this.armWaiters.clear();
    this.wakeDrainWaiters();
    if (exited) this.reportWhenHandled();
  }

  /**
   * Reports the crash of a dying incarnation once its thread has exited and its last
   * frames are handled: after the inbox is empty, and a turn later, so that main-thread
   * receivers have run the frames routed to them (their mailboxes drain in microtasks).
   */
  private reportWhenHandled(): void {
    const s = this.state;
    if (s.kind !== 'dying' || !(s.exited || s.fenced) || this.flushing) return;
    setImmediate(() => {
      if (this.state !== s || this.flushing) return;
      clearTimeout(s.timer);
      this.state = { kind: 'down', crash: s.crash };
      this.host.crashed(this, s.crash);
    });
  }

  /**
   * Hands on the frames of a batch, in order. A mailbox frame whose main-thread
   * receiver is full waits for room while its sender is dead (a live one is refused
   * and told, as ever: that is its backpressure).
   */
  private async flush(): Promise<void> {
    try {
      while (this.inbox.length > 0) {
        const frame = this.inbox[0]!;
        const wait = this.onFrame(frame, this.state.kind === 'dying');
        if (wait !== undefined) {
          await wait;
          continue;
        }
        this.inbox.shift();
      }
    } finally {
      this.flushing = false;
    }
    this.reportWhenHandled();
  }

  /**
   * The live incarnation is over: its channel is closed (waiters on either side wake and
   * see `closed`; published entries stay readable for whoever kept the end) and no
   * longer offered.
   */
  private endChannel(): void {
    const c = this.liveChannel;
    if (c === undefined) return;
    this.liveChannel = undefined;
    c.writer.close();
    c.reader.close();
  }

  /** A start that failed before a worker existed (its args could not be made): a start crash. */
  private startFailed(e: unknown): void {
    const err = e as { message?: unknown; code?: unknown };
    const crash: Crash = {
      ref: this.ref,
      reason: {
        kind: 'throw',
        message: `init args of ${this.id}: ${typeof err?.message === 'string' ? err.message : String(e)}`,
        code: typeof err?.code === 'string' ? err.code : 'BATON_ERR_START_FAILED',
      },
      detectedAt: this.host.clock.now(),
      threadId: this.lastThreadId,
      phase: 'start',
    };
    this.state = { kind: 'down', crash };
    const failure = new ActorError('BATON_ERR_START_FAILED', crash.reason.kind === 'throw' ? crash.reason.message : this.id, { cause: e });
    this.startWaiters.splice(0).forEach((w) => w.reject(failure));
    this.host.crashed(this, crash);
  }

  /** Handles one frame; a promise when it must wait for room and be handled again (only with `wait`). */
  private onFrame(frame: Uint8Array, wait: boolean): Promise<void> | undefined {
    const { header, payloadAt } = decodeHeader<FromWorker>(frame);
    switch (header.t) {
      case 'Ack':
        this.inflight = Math.max(0, this.inflight - header.n);
        this.wakeDrainWaiters();
        return;
      case 'Ready':
        this.onReady(header.threadId);
        return;
      case 'Armed':
        this.armWaiters.get(header.seq)?.resolve();
        this.armWaiters.delete(header.seq);
        return;
      case 'FaultFired':
        this.lastFault = header.point === undefined ? { kind: header.kind } : { kind: header.kind, point: header.point };
        if (header.kind === 'terminate') this.kill({ kind: 'terminated', by: 'fault-point' });
        return;
      case 'Stopped':
        return;
      case 'Deliver':
      case 'Ask':
      case 'Reply':
      case 'PoolRun':
        return this.host.route(this, frame, header, payloadAt, wait);
      default: {
        const never: never = header;
        throw new ActorError('BATON_ERR_CODEC', `unexpected frame ${(never as { t: string }).t}`);
      }
    }
  }

  private onReady(threadId: number): void {
    const s = this.state;
    if (s.kind !== 'starting') return;
    clearTimeout(s.timer);
    const wd = this.opts.watchdog;
    const watchdog =
      wd === false ? undefined : new Watchdog(wd ?? {}, this.heartbeat, (r) => this.kill({ kind: 'hang', silentMs: r.silentMs, busyMs: r.busyMs }));
    this.state = { kind: 'running', worker: s.worker, threadId, watchdog };
    this.lastThreadId = threadId;
    const queued = this.buffered;
    this.buffered = [];
    for (const f of queued) {
      this.inflight++;
      postFrame(s.worker, f);
    }
    this.startWaiters.splice(0).forEach((w) => w.resolve(threadId));
  }

  private wakeDrainWaiters(): void {
    if (this.drainWaiters.length === 0 || !this.writable) return;
    this.drainWaiters.splice(0).forEach((w) => w.resolve());
  }

  private failBuffered(code: ActorErrorCode): void {
    const queued = this.buffered;
    this.buffered = [];
    for (const f of queued) this.host.bounce(f, code);
    const err = new ActorError(code, `${this.id} is stopped`);
    this.drainWaiters.splice(0).forEach((w) => w.reject(err));
  }
}
