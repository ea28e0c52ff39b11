/**
 * The heartbeat watchdog, only for hangs: worker `error`/`exit` events report every
 * other crash immediately. It fires when no heartbeat arrived for `deadlineMs` (a busy
 * loop starves the worker's timers) or when a heartbeat says one message has been in
 * progress longer than `messageDeadlineMs` (a stuck promise leaves the loop free).
 */
export interface WatchdogOptions {
  /** No heartbeat for this long means the worker's event loop is stuck. Default 1000. */
  readonly deadlineMs?: number;
  /** One message in progress for this long means the actor is stuck. Default 30000. */
  readonly messageDeadlineMs?: number;
}

export const DEFAULT_DEADLINE_MS = 1_000;
export const DEFAULT_MESSAGE_DEADLINE_MS = 30_000;

/** What the watchdog saw when it fired. */
export interface HangReport {
  readonly silentMs: number;
  readonly busyMs: number;
}

/** How often a worker should heartbeat for a deadline: four beats per deadline. */
export function heartbeatInterval(deadlineMs: number): number {
  return Math.max(5, Math.floor(deadlineMs / 4));
}

export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private lastBeat = performance.now();
  private readonly deadlineMs: number;
  private readonly messageDeadlineMs: number;

  constructor(opts: WatchdogOptions, private readonly onHang: (r: HangReport) => void) {
    this.deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.messageDeadlineMs = opts.messageDeadlineMs ?? DEFAULT_MESSAGE_DEADLINE_MS;
    this.timer = setTimeout(() => this.expire(0), this.deadlineMs);
    // Supervision must not keep a process alive on its own.
    this.timer.unref();
  }

  /** A heartbeat arrived; `busyMs` is how long the current message has been running. */
  beat(busyMs: number): void {
    if (this.timer === undefined) return;
    this.lastBeat = performance.now();
    if (busyMs > this.messageDeadlineMs) {
      this.expire(busyMs);
      return;
    }
    this.timer.refresh();
  }

  /** Idempotent. */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private expire(busyMs: number): void {
    if (this.timer === undefined) return;
    this.stop();
    this.onHang({ silentMs: Math.round(performance.now() - this.lastBeat), busyMs });
  }
}
