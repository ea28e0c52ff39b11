/**
 * Active health checks of backends, as HAProxy's `check inter rise fall`: a TCP
 * connect to each backend every interval; `fall` failures in a row take an up backend
 * down, `rise` successes in a row bring a down one back up. The state machine is a
 * pure function ({@link nextHealth}); {@link HealthChecker} only schedules probes.
 */
import net from 'node:net';
import type { HostPort } from '../util/host-port.js';

export interface HealthCheckSettings {
  /** Between two checks of one backend; 0: no checks (every backend stays up). */
  readonly intervalMs: number;
  /** Successes in a row that bring a down backend up. */
  readonly rise: number;
  /** Failures in a row that take an up backend down. */
  readonly fall: number;
  /** A check connect that has not completed in this long failed. */
  readonly connectTimeoutMs: number;
}

/** HAProxy's defaults: `inter 2s rise 2 fall 3`, and a check times out after `inter`. */
export const DEFAULT_HEALTH_CHECK: HealthCheckSettings = { intervalMs: 2_000, rise: 2, fall: 3, connectTimeoutMs: 2_000 };

/** Up (with failures in a row so far) or down (with successes in a row so far). */
export type HealthState = { readonly kind: 'up'; readonly failures: number } | { readonly kind: 'down'; readonly successes: number };

/** A backend starts up, as in HAProxy: it serves at once, and `fall` failed checks take it down. */
export const INITIAL_HEALTH: HealthState = { kind: 'up', failures: 0 };

/** The state after one check that succeeded (`ok`) or failed. */
export function nextHealth(state: HealthState, ok: boolean, s: Pick<HealthCheckSettings, 'rise' | 'fall'>): HealthState {
  switch (state.kind) {
    case 'up':
      if (ok) return state.failures === 0 ? state : INITIAL_HEALTH;
      return state.failures + 1 >= s.fall ? { kind: 'down', successes: 0 } : { kind: 'up', failures: state.failures + 1 };
    case 'down':
      if (!ok) return state.successes === 0 ? state : { kind: 'down', successes: 0 };
      return state.successes + 1 >= s.rise ? INITIAL_HEALTH : { kind: 'down', successes: state.successes + 1 };
    default: {
      const never: never = state;
      return never;
    }
  }
}

/** Checks whether `address` accepts a connection within `timeoutMs`. */
export type Probe = (address: HostPort, timeoutMs: number) => Promise<boolean>;

/** The TCP check: connect, then close at once (no byte sent). */
export const tcpProbe: Probe = (address, timeoutMs) =>
  new Promise((resolve) => {
    const socket = net.connect({ host: address.host, port: address.port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });

/** What the checker checks: something holding backends, told each result. */
export interface HealthTarget<B> {
  readonly members: readonly B[];
  addressOf(backend: B): HostPort;
  checked(backend: B, ok: boolean): void;
}

/**
 * Probes every backend of a target each interval; one round at a time (a round whose
 * probes are slower than the interval delays the next rather than piling up).
 */
export class HealthChecker<B> {
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private target: HealthTarget<B>,
    private readonly settings: HealthCheckSettings,
    private readonly probe: Probe = tcpProbe,
  ) {}

  /** Starts the rounds (none when the interval is 0). */
  start(): void {
    if (this.settings.intervalMs <= 0 || this.closed) return;
    this.schedule();
  }

  /** Checks from now on another target (a reload replaced the pool). */
  retarget(target: HealthTarget<B>): void {
    this.target = target;
  }

  /** One round: every backend probed at once, each result told to the target. */
  async checkAll(): Promise<void> {
    const target = this.target;
    await Promise.all(
      target.members.map(async (b) => {
        const ok = await this.probe(target.addressOf(b), this.settings.connectTimeoutMs);
        if (!this.closed) target.checked(b, ok);
      }),
    );
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.checkAll().then(() => {
        if (!this.closed) this.schedule();
      });
    }, this.settings.intervalMs);
    this.timer.unref();
  }

  /** Stops checking. Idempotent. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
