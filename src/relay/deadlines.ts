/**
 * Per-connection deadlines, kept by the gateway on the main thread (so they outlive
 * any relay crash and carry on through a takeover): one sweep over the connection
 * table every {@link sweepPeriodMs}, no timer per connection.
 *
 * - handshake: a client that has not completed its handshake this long after it was
 *   accepted is closed (TCP close; no alert: its relay may not have keys for one);
 * - idle: an established connection with no bytes either way for this long is closed
 *   with close_notify (as if the backend had ended), then hard-closed after a grace;
 * - backend connect: a backend connect that has not completed in time is abandoned;
 *   the client gets the fatal alert a failed connect gets.
 *
 * Times come from the gateway's clock (injectable, see util/clock.ts). 0 turns a
 * deadline off. A deadline fires at most one sweep period after it passed.
 */

export interface DeadlineSettings {
  /** From accept to handshake done. 0: none. */
  readonly handshakeTimeoutMs: number;
  /** No bytes in either direction of an established connection. 0: none. */
  readonly idleTimeoutMs: number;
  /** From the connect to the backend to its completion. 0: none. */
  readonly backendConnectTimeoutMs: number;
}

export const DEFAULT_DEADLINES: DeadlineSettings = { handshakeTimeoutMs: 10_000, idleTimeoutMs: 300_000, backendConnectTimeoutMs: 5_000 };

/** How long a connection closed for idleness may take to answer close_notify before it is cut. */
export const IDLE_CLOSE_GRACE_MS = 5_000;

/** What the sweep reads of a connection (times in clock milliseconds; 0: not started). */
export interface TimedConn {
  /**
   * When the handshake deadline's clock started: the accept, or the latest takeover (the
   * time a relay crash cost is Baton's, not the client's); null while no relay holds the
   * connection (every one is down): no clock runs then.
   */
  readonly handshakeSince: number | null;
  readonly lastActive: number;
  readonly handshakeDone: boolean;
  /** When the backend connect started, while it has not completed (0: none pending). */
  readonly backendConnectingSince: number;
  /** When close_notify was sent for idleness (0: not yet). */
  readonly idleClosingSince: number;
}

export type Overdue = 'handshake' | 'idle' | 'idleGrace' | 'backendConnect';

/** The deadline a connection has passed at `now`, if any (the most pressing first). */
export function overdue(c: TimedConn, now: number, s: DeadlineSettings): Overdue | null {
  if (c.idleClosingSince !== 0) return now - c.idleClosingSince >= IDLE_CLOSE_GRACE_MS ? 'idleGrace' : null;
  if (!c.handshakeDone) return s.handshakeTimeoutMs > 0 && c.handshakeSince !== null && now - c.handshakeSince >= s.handshakeTimeoutMs ? 'handshake' : null;
  if (c.backendConnectingSince !== 0 && s.backendConnectTimeoutMs > 0 && now - c.backendConnectingSince >= s.backendConnectTimeoutMs) {
    return 'backendConnect';
  }
  if (s.idleTimeoutMs > 0 && now - c.lastActive >= s.idleTimeoutMs) return 'idle';
  return null;
}

/** The sweep's period: a quarter of the shortest deadline, between 50 ms and 1 s. */
export function sweepPeriodMs(s: DeadlineSettings): number {
  const on = [s.handshakeTimeoutMs, s.idleTimeoutMs, s.backendConnectTimeoutMs].filter((ms) => ms > 0);
  if (on.length === 0) return 1_000;
  return Math.min(1_000, Math.max(50, Math.floor(Math.min(...on) / 4)));
}
