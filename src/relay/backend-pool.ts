/**
 * The backends a gateway forwards to: named pools of addresses, a balancing policy
 * (round-robin or least-connections) among a pool's up members, routes from a
 * connection's SNI name or ALPN protocol to a pool, and per-backend health and
 * counters. No sockets and no timers: the gateway connects, the health checker probes.
 */
import { DEFAULT_HEALTH_CHECK, INITIAL_HEALTH, nextHealth, type HealthCheckSettings, type HealthState, type HealthTarget } from './health-check.js';
import type { HostPort } from '../util/host-port.js';

export const BALANCE_POLICIES = ['round-robin', 'least-connections'] as const;
export type BalancePolicy = (typeof BALANCE_POLICIES)[number];

/** The pool a connection goes to when no route matches it. */
export const DEFAULT_POOL = 'default';

/** Connections whose SNI name (case-insensitive) or ALPN protocol is this go to `pool`; both given: both must match. */
export interface BackendRoute {
  readonly serverName?: string;
  readonly alpn?: string;
  readonly pool: string;
}

/** What the configuration says about backends. */
export interface BackendsSpec {
  /** Addresses by pool name; {@link DEFAULT_POOL} serves connections no route sends elsewhere. */
  readonly pools: Readonly<Record<string, readonly HostPort[]>>;
  readonly policy: BalancePolicy;
  readonly routes: readonly BackendRoute[];
  readonly health: HealthCheckSettings;
}

/**
 * One backend, as the old `backend: HOST:PORT` meant: a default pool of one, not
 * checked (with nowhere else to send a connection, a check would change nothing).
 */
export function singleBackend(address: HostPort): BackendsSpec {
  return { pools: { [DEFAULT_POOL]: [address] }, policy: 'round-robin', routes: [], health: { ...DEFAULT_HEALTH_CHECK, intervalMs: 0 } };
}

/** `host:port`, `[v6]:port` for IPv6: how a backend is named in metrics and status. */
export function backendName(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** The backends as the start line and the logs name them: `HOST:PORT` for one, else the list and the policy. */
export function describeBackends(spec: BackendsSpec): string {
  const all = Object.values(spec.pools).flat();
  if (all.length === 1) return backendName(all[0]!);
  return `${all.map(backendName).join(',')} (${spec.policy}${spec.health.intervalMs > 0 ? ', health-checked' : ''})`;
}

/** A backend and its counters. */
export interface Backend {
  /** `pool/host:port` outside the default pool, `host:port` in it. */
  readonly name: string;
  readonly address: HostPort;
  readonly pool: string;
  health: HealthState;
  /** Connections to it open now (least-connections counts these). */
  active: number;
  /** Connections handed to it since start. */
  connections: number;
  /** Connects to it that were refused, failed or timed out. */
  connectFailures: number;
  /** Health checks of it that failed. */
  checksFailed: number;
}

/** A backend as `baton status` and the admin API show it. */
export interface BackendStatus {
  readonly name: string;
  readonly pool: string;
  readonly up: boolean;
  readonly active: number;
  readonly connections: number;
  readonly connectFailures: number;
  readonly checksFailed: number;
}

/** What a connection knows when it needs a backend: its handshake's SNI name and ALPN protocol. */
export interface RouteKey {
  readonly serverName: string | null;
  readonly alpn: string | null;
}

export class BackendPool implements HealthTarget<Backend> {
  readonly members: readonly Backend[];
  private readonly byPool = new Map<string, Backend[]>();
  /** Where each pool's round-robin resumes. */
  private readonly cursor = new Map<string, number>();

  /**
   * `previous`: the pool this one replaces (a reload); a backend of the same name keeps
   * its record (health, open connections, counters), so nothing is counted twice.
   */
  constructor(
    readonly spec: BackendsSpec,
    previous?: BackendPool,
  ) {
    const members: Backend[] = [];
    const kept = new Map(previous?.members.map((b) => [b.name, b]));
    for (const [pool, addresses] of Object.entries(spec.pools)) {
      const list = addresses.map((address): Backend => {
        const name = pool === DEFAULT_POOL ? backendName(address) : `${pool}/${backendName(address)}`;
        return kept.get(name) ?? { name, address, pool, health: INITIAL_HEALTH, active: 0, connections: 0, connectFailures: 0, checksFailed: 0 };
      });
      this.byPool.set(pool, list);
      this.cursor.set(pool, 0);
      members.push(...list);
    }
    this.members = members;
  }

  /** The pool a connection goes to: the first route that matches, else the default pool. */
  poolFor(key: RouteKey): string {
    const sni = key.serverName?.toLowerCase() ?? null;
    for (const r of this.spec.routes) {
      if (r.serverName !== undefined && r.serverName.toLowerCase() !== sni) continue;
      if (r.alpn !== undefined && r.alpn !== key.alpn) continue;
      return r.pool;
    }
    return DEFAULT_POOL;
  }

  /**
   * The backend for a new connection: an up member of its pool not yet `tried` for it,
   * chosen by the policy; null when there is none (every member down or tried).
   */
  pick(key: RouteKey, tried: ReadonlySet<Backend> = new Set()): Backend | null {
    const pool = this.poolFor(key);
    const list = this.byPool.get(pool) ?? [];
    const n = list.length;
    const start = this.cursor.get(pool) ?? 0;
    let best: Backend | null = null;
    let bestAt = 0;
    for (let i = 0; i < n; i++) {
      const at = (start + i) % n;
      const b = list[at]!;
      if (b.health.kind !== 'up' || tried.has(b)) continue;
      // Round-robin takes the first eligible from the cursor; least-connections the
      // fewest open, ties going round-robin so idle backends share evenly.
      if (best === null || (this.spec.policy === 'least-connections' && b.active < best.active)) {
        best = b;
        bestAt = at;
        if (this.spec.policy === 'round-robin') break;
      }
    }
    if (best) this.cursor.set(pool, (bestAt + 1) % n);
    return best;
  }

  /** A connection was handed to `b`. */
  acquire(b: Backend): void {
    b.active++;
    b.connections++;
  }

  /** A connection handed to `b` ended (or its connect failed). */
  release(b: Backend): void {
    b.active--;
  }

  /** A connect to `b` was refused, failed or timed out. */
  connectFailed(b: Backend): void {
    b.connectFailures++;
  }

  addressOf(b: Backend): HostPort {
    return b.address;
  }

  /** A health check of `b` succeeded (`ok`) or failed. */
  checked(b: Backend, ok: boolean): void {
    if (!ok) b.checksFailed++;
    b.health = nextHealth(b.health, ok, this.spec.health);
  }

  status(): BackendStatus[] {
    return this.members.map((b) => ({
      name: b.name,
      pool: b.pool,
      up: b.health.kind === 'up',
      active: b.active,
      connections: b.connections,
      connectFailures: b.connectFailures,
      checksFailed: b.checksFailed,
    }));
  }
}
