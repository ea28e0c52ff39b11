/**
 * Graceful drain (issue 14): stop taking new connections, let the live ones finish
 * for up to a timeout, then end the rest with a TLS close_notify and a TCP FIN, and
 * wait (bounded) for those writes to reach the kernel. Started by SIGTERM or the admin
 * API's `POST /drain`; the caller closes the cluster and exits once `run()` resolves.
 *
 * The drain owns no sockets: it drives the gateway through three small methods, so it
 * can be tested with a stand-in.
 */
import { systemClock, type Clock } from '../util/clock.js';

/** What the drain needs of the gateway. */
export interface DrainTarget {
  /** Closes the listener; live connections carry on. */
  stopAccepting(): void;
  /** Ends every connection with close_notify and FIN; resolves once those are written. */
  closeAllWithNotify(): Promise<void>;
  /** Client connections still open. */
  readonly openConnections: number;
  on(event: 'connectionClosed', listener: () => void): unknown;
  off(event: 'connectionClosed', listener: () => void): unknown;
}

/** Default of `--drain-timeout`, in seconds. */
export const DEFAULT_DRAIN_TIMEOUT_SECONDS = 30;
/** Longest `--drain-timeout` we accept (a day): a longer one is a typo more likely than a wish. */
export const MAX_DRAIN_TIMEOUT_SECONDS = 86_400;
/** How long the close_notify and FIN writes at the timeout may take before we exit anyway. */
export const DRAIN_FLUSH_MS = 5_000;

/** Why the drain was started, for status and logs. */
export type DrainCause = 'SIGTERM' | 'admin';

/** How a drain ended: every connection ended on its own, or the timeout closed the rest. */
export type DrainOutcome =
  | { readonly kind: 'empty' }
  | { readonly kind: 'timedOut'; readonly closed: number; readonly flushed: boolean };

/** `/status`'s view of a drain in progress (times in epoch milliseconds). */
export interface DrainStatus {
  readonly cause: DrainCause;
  readonly since: number;
  readonly deadline: number;
  readonly connections: number;
}

export interface DrainOptions {
  readonly timeoutMs: number;
  /** Bound on the close_notify writes at the timeout; default {@link DRAIN_FLUSH_MS}. */
  readonly flushMs?: number;
  /** Told at the timeout, before the rest are closed: how many there are (for the log). */
  readonly onTimeout?: (connections: number) => void;
  readonly clock?: Clock;
}

/** One drain of one gateway; `run()` once. */
export class Drain {
  private readonly clock: Clock;
  private started: { readonly cause: DrainCause; readonly since: number } | null = null;
  private result: Promise<DrainOutcome> | null = null;

  constructor(
    private readonly target: DrainTarget,
    private readonly opts: DrainOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  /** Whether the drain has started. */
  get draining(): boolean {
    return this.started !== null;
  }

  /** Since when, until when, and how many connections are left; null before `run()`. */
  status(): DrainStatus | null {
    if (!this.started) return null;
    return {
      cause: this.started.cause,
      since: this.started.since,
      deadline: this.started.since + this.opts.timeoutMs,
      connections: this.target.openConnections,
    };
  }

  /** Starts the drain (a second call returns the same outcome). */
  run(cause: DrainCause): Promise<DrainOutcome> {
    if (this.result) return this.result;
    this.started = { cause, since: this.clock.now() };
    this.target.stopAccepting();
    this.result = this.untilEmptyOrTimeout().then((empty) => (empty ? { kind: 'empty' as const } : this.closeTheRest()));
    return this.result;
  }

  /** True once no connection is left, false at the timeout. */
  private untilEmptyOrTimeout(): Promise<boolean> {
    if (this.target.openConnections === 0) return Promise.resolve(true);
    if (this.opts.timeoutMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      // The event comes while the gateway still counts the connection: look after it.
      const onClosed = () =>
        queueMicrotask(() => {
          if (this.target.openConnections === 0) done(true);
        });
      // Unref'd: a drain cut short by a signal must not keep the process alive.
      const timer = setTimeout(() => done(false), this.opts.timeoutMs).unref();
      const done = (empty: boolean) => {
        clearTimeout(timer);
        this.target.off('connectionClosed', onClosed);
        resolve(empty);
      };
      this.target.on('connectionClosed', onClosed);
    });
  }

  private async closeTheRest(): Promise<DrainOutcome> {
    const closed = this.target.openConnections;
    this.opts.onTimeout?.(closed);
    let timer: NodeJS.Timeout | undefined;
    const flushed = await Promise.race([
      this.target.closeAllWithNotify().then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(resolve, this.opts.flushMs ?? DRAIN_FLUSH_MS, false).unref())),
    ]);
    clearTimeout(timer);
    return { kind: 'timedOut', closed, flushed };
  }
}
