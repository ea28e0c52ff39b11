/**
 * Restart intensity and backoff, as small pure functions (OTP `supervisor`: at most
 * `intensity` restarts in `periodMs`, else the supervisor gives up and escalates).
 * Nested limits multiply: a child under a supervisor that may itself be restarted
 * `P` times by its parent can restart up to `(intensity + 1) * (P + 1) - 1` times
 * inside overlapping periods before the top gives up.
 */

export interface IntensityLimit {
  /** Restarts allowed inside one period. OTP's default is 1; ours is 3. */
  readonly intensity: number;
  readonly periodMs: number;
}

export interface Backoff {
  /** Delay before the second restart in a row; the first is immediate after a run-time crash. */
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
}

export const DEFAULT_INTENSITY: IntensityLimit = { intensity: 3, periodMs: 5_000 };
export const DEFAULT_BACKOFF: Backoff = { initialMs: 50, maxMs: 2_000, factor: 2 };

/** The outcome of asking for one more restart at `now`. */
export interface RestartDecision {
  /** Restart times still inside the period, including `now`. */
  readonly history: readonly number[];
  /** False: the limit is exceeded, escalate instead of restarting. */
  readonly allowed: boolean;
}

/** Adds a restart at `now` to `history` and decides whether it is within the limit. */
export function recordRestart(history: readonly number[], now: number, limit: IntensityLimit): RestartDecision {
  const kept = history.filter((t) => now - t < limit.periodMs);
  kept.push(now);
  return { history: kept, allowed: kept.length <= limit.intensity };
}

/**
 * How long to wait before restart number `recent` (restarts already in the window,
 * 0 for the first). A child that died while starting always waits at least
 * `initialMs`, so a broken module is never respawned in a tight loop.
 */
export function backoffDelay(recent: number, diedWhileStarting: boolean, b: Backoff): number {
  if (recent <= 0) return diedWhileStarting ? b.initialMs : 0;
  return Math.min(b.maxMs, b.initialMs * b.factor ** (recent - 1));
}
