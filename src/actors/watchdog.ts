/**
 * The heartbeat watchdog, only for hangs: worker `error`/`exit` events report every
 * other crash immediately. It fires when the worker's heartbeat counter has not moved
 * for `deadlineMs` (a busy loop starves the worker's timers) or when the worker reports
 * one message in progress longer than `messageDeadlineMs` (a stuck promise leaves the
 * loop free).
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

/** How often a worker beats for a deadline: ten beats per deadline (an atomic add each). */
export function heartbeatInterval(deadlineMs: number): number {
  return Math.max(5, Math.floor(deadlineMs / 10));
}

/** How often the main thread reads a heartbeat cell: often, so a hang is seen soon after the deadline. */
export function pollInterval(deadlineMs: number): number {
  return Math.max(5, Math.min(20, Math.floor(deadlineMs / 10)));
}

/** Slots of the shared heartbeat cell: a counter the worker bumps, and its current busy time. */
export const BEAT_COUNT = 0;
export const BEAT_BUSY_MS = 1;

/** The shared memory a worker beats into; the main thread only reads it. */
export function heartbeatCell(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(8));
}

/**
 * Polls the worker's heartbeat cell. Liveness is read from shared memory rather
 * than from messages, so a main thread that was itself busy (handshakes, socket
 * bursts) never mistakes heartbeats still queued for it for a hung worker: a
 * poll after a stall sees that the counter moved.
 */
export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private lastCount: number;
  private lastChange = performance.now();
  private readonly deadlineMs: number;
  private readonly messageDeadlineMs: number;

  constructor(
    opts: WatchdogOptions,
    private readonly cell: Int32Array,
    private readonly onHang: (r: HangReport) => void,
  ) {
    this.deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.messageDeadlineMs = opts.messageDeadlineMs ?? DEFAULT_MESSAGE_DEADLINE_MS;
    this.lastCount = Atomics.load(cell, BEAT_COUNT);
    this.timer = setInterval(() => this.check(), pollInterval(this.deadlineMs));
    // Supervision must not keep a process alive on its own.
    this.timer.unref();
  }

  private check(): void {
    const now = performance.now();
    const count = Atomics.load(this.cell, BEAT_COUNT);
    if (count !== this.lastCount) {
      this.lastCount = count;
      this.lastChange = now;
      const busyMs = Atomics.load(this.cell, BEAT_BUSY_MS);
      if (busyMs > this.messageDeadlineMs) this.expire(busyMs);
      return;
    }
    if (now - this.lastChange >= this.deadlineMs) this.expire(0);
  }

  /** Idempotent. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private expire(busyMs: number): void {
    if (this.timer === undefined) return;
    this.stop();
    this.onHang({ silentMs: Math.round(performance.now() - this.lastChange), busyMs });
  }
}
