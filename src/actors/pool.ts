/**
 * The shared piscina pool for stateless CPU-bound work that must stay off actors' event
 * loops (certificate signatures in handshake storms, load generation). Created lazily
 * on the main thread; worker actors reach it through `ctx.pool`, which the main thread
 * proxies (PoolRun / PoolDone frames), so there is one pool per process, not one per actor.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { PoolTask } from './actor.js';
import { ActorError } from './errors.js';
import { workerExecArgv } from './worker-handle.js';

export interface PoolOptions {
  /** Default: half the cores, at least 1. */
  readonly maxThreads?: number;
  readonly minThreads?: number;
  /** Idle threads exit after this long. Default 10000. */
  readonly idleTimeoutMs?: number;
}

const BOOTSTRAP = new URL('./pool-bootstrap.mjs', import.meta.url);

/** A lazily started piscina pool running {@link PoolTask}s. `close()` is idempotent. */
export class TaskPool {
  private piscina: Piscina | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: PoolOptions = {}) {}

  /** Runs `task` with `arg` on a pool thread; rejects with `BATON_ERR_POOL` on failure. */
  async run<R = unknown>(task: PoolTask, arg: unknown): Promise<R> {
    if (this.closed) throw new ActorError('BATON_ERR_CLOSED', 'pool is closed');
    const pool = (this.piscina ??= this.create());
    const module = task.module.startsWith('file:') ? task.module : `file://${task.module}`;
    try {
      return (await pool.run({ module, fn: task.fn ?? 'default', arg })) as R;
    } catch (e) {
      if (this.closed) throw new ActorError('BATON_ERR_CLOSED', 'pool closed while the task ran', { cause: e });
      throw new ActorError('BATON_ERR_POOL', `pool task ${task.fn ?? 'default'} failed: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Stops the pool threads; pending tasks fail. Idempotent. */
  close(): Promise<void> {
    this.closed = true;
    this.closing ??= this.piscina?.destroy() ?? Promise.resolve();
    return this.closing;
  }

  private create(): Piscina {
    const max = this.opts.maxThreads ?? Math.max(1, Math.floor(availableParallelism() / 2));
    return new Piscina({
      filename: BOOTSTRAP.href,
      maxThreads: max,
      minThreads: Math.min(max, this.opts.minThreads ?? 0),
      idleTimeout: this.opts.idleTimeoutMs ?? 10_000,
      // Same reason as the actor workers: tsx CLI flags do not work in Node 20 workers.
      execArgv: workerExecArgv(),
    });
  }
}

