/**
 * Cluster metrics in the Prometheus text format (prom-client 15, one Registry per
 * cluster, never the global one), and the per-relay history the admin API's
 * `/status` reports (restarts, last crash), both fed by supervisor events, the
 * gateway's events and, at scrape time, the gateway's counters and connection table.
 *
 * Nothing secret enters a metric: connection ids are not labels (unbounded), and
 * labels are relay names, crash kinds and directions only.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { describeReason, type CrashReason, type SupervisorEvent } from '../actors/index.js';
import type { BackendStatus } from '../relay/backend-pool.js';
import type { Cluster } from './cluster.js';
import type { ConnectionInfo, GatewayEvents } from '../relay/gateway.js';

/** Takeover latency buckets in milliseconds: detection to the new owner's Promoted, 1 ms to 2 s. */
export const TAKEOVER_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000] as const;

/** Crash reasons a takeover follows (CrashReason kinds of a relay that ran). */
const TAKEOVER_KINDS: readonly CrashReason['kind'][] = ['throw', 'exit', 'terminated', 'oom', 'hang'];

/** What `/status` tells of a relay's past. */
export interface RelayHistory {
  restarts: number;
  crashes: number;
  lastCrash?: {
    /** describeReason(), e.g. "process.exit(70)". */
    readonly reason: string;
    readonly kind: CrashReason['kind'];
    /** ISO time the crash was detected. */
    readonly at: string;
    readonly threadId?: number;
    readonly fault?: { readonly kind: string; readonly point?: string };
  };
}

/** Inputs a connection has received that no committed state covers yet. */
export function replicationLag(c: Pick<ConnectionInfo, 'inputs' | 'committedUpTo'>): number {
  return Math.max(0, c.inputs - c.committedUpTo);
}

/** The `p`-quantile (0..1, nearest rank) of `values`; 0 for none. */
export function quantile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank]!;
}

/** The part of a Cluster the metrics read. */
export type MetricsSource = Pick<Cluster, 'gateway' | 'relayNames' | 'recordProtection'>;

export class ClusterMetrics {
  readonly registry = new Registry();
  private source: MetricsSource | null = null;
  private readonly history = new Map<string, RelayHistory>();
  private readonly unsubscribe: (() => void)[] = [];

  private readonly handshakes: Counter<'resumed'>;
  private readonly takeoverLatency: Histogram<'kind'>;
  private readonly crashes: Counter<'relay' | 'reason'>;
  private readonly restarts: Counter<'relay'>;
  private readonly escalations: Counter;
  /** Set by the drain (cluster/drain.ts) once it starts. */
  private draining = false;

  constructor(opts: { readonly processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const stats = () => this.source?.gateway.stats;

    // Counters kept by the gateway are mirrored at scrape time (reset, then set to its value).
    const mirror = (name: string, help: string, read: (s: NonNullable<ReturnType<typeof stats>>) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const s = stats();
          this.reset();
          if (s) this.inc(read(s));
        },
      });
    mirror('baton_connections_opened_total', 'TLS connections accepted', (s) => s.connectionsOpened);
    mirror('baton_takeovers_total', 'connections carried on by another relay, from their committed state, after their owner relay crashed', (s) => s.takeovers);
    mirror('baton_quarantined_connections_total', 'poison connections closed with a fatal alert after crashing owners twice', (s) => s.quarantined);
    mirror('baton_connections_lost_total', 'connections that could not be carried on after a crash (see the log for why)', (s) => s.connectionsLost);
    mirror('baton_output_gaps_total', 'relay output past what was written (bytes a client would miss; the connection is reset; must stay 0)', (s) => s.outputGaps);
    mirror('baton_gap_resets_total', 'connections reset (TCP RST) because their output would have had a gap; must stay 0', (s) => s.gapResets);
    mirror('baton_connections_refused_total', 'connections closed at accept: no free state slot, too many waiting for room or for a relay, or accepted while draining', (s) => s.connectionsRefused);
    mirror('baton_connections_queued_total', 'connections that waited, unread, for room because max connections were served, or for a relay to be up (every one was restarting)', (s) => s.connectionsQueued);
    const metrics = this;
    new Gauge({
      name: 'baton_draining',
      help: '1 while the cluster drains (SIGTERM or POST /drain): no new connections, live ones finish until the drain timeout',
      registers,
      collect() {
        this.set(metrics.draining ? 1 : 0);
      },
    });
    new Gauge({
      name: 'baton_connections_waiting',
      help: 'connections waiting now, unread, for room (max connections reached)',
      registers,
      collect() {
        this.set(stats()?.connectionsWaiting ?? 0);
      },
    });
    new Counter<'deadline'>({
      name: 'baton_deadline_closes_total',
      help: 'connections closed by a deadline: handshake (not done in time), idle (no bytes either way), backend_connect (the backend did not answer in time)',
      labelNames: ['deadline'],
      registers,
      collect() {
        const s = stats();
        this.reset();
        if (!s) return;
        this.inc({ deadline: 'handshake' }, s.handshakeTimeouts);
        this.inc({ deadline: 'idle' }, s.idleTimeouts);
        this.inc({ deadline: 'backend_connect' }, s.backendConnectTimeouts);
      },
    });
    new Counter<'peer' | 'direction'>({
      name: 'baton_bytes_total',
      help: 'bytes through the gateway: peer client (ciphertext) or backend (plaintext), direction in (read) or out (written)',
      labelNames: ['peer', 'direction'],
      registers,
      collect() {
        const s = stats();
        this.reset();
        if (!s) return;
        this.inc({ peer: 'client', direction: 'in' }, s.bytesFromClients);
        this.inc({ peer: 'client', direction: 'out' }, s.bytesToClients);
        this.inc({ peer: 'backend', direction: 'in' }, s.bytesFromBackends);
        this.inc({ peer: 'backend', direction: 'out' }, s.bytesToBackends);
      },
    });
    // Per backend (backend-pool.ts): the label is its name, pool/HOST:PORT outside the default pool.
    const backends = () => this.source?.gateway.backends.status() ?? [];
    const perBackend = (kind: 'gauge' | 'counter', name: string, help: string, read: (b: BackendStatus) => number) => {
      const config = {
        name,
        help,
        labelNames: ['backend'] as const,
        registers,
        collect(this: Gauge<'backend'> | Counter<'backend'>) {
          this.reset();
          for (const b of backends()) this.inc({ backend: b.name }, read(b));
        },
      };
      return kind === 'gauge' ? new Gauge<'backend'>(config) : new Counter<'backend'>(config);
    };
    perBackend('gauge', 'baton_backend_up', 'whether each backend is up (1) or down (0) by its health checks; a down one gets no new connection', (b) => (b.up ? 1 : 0));
    perBackend('gauge', 'baton_backend_connections', 'connections open now to each backend', (b) => b.active);
    perBackend('counter', 'baton_backend_connections_total', 'connections handed to each backend', (b) => b.connections);
    perBackend('counter', 'baton_backend_connect_failures_total', 'connects to each backend refused, failed or timed out (retried on another backend where one is up)', (b) => b.connectFailures);
    perBackend('counter', 'baton_backend_health_checks_failed_total', 'health checks of each backend that failed', (b) => b.checksFailed);
    new Gauge({
      name: 'baton_connections_active',
      help: 'TLS connections open now',
      registers,
      collect() {
        this.set(stats()?.connectionsActive ?? 0);
      },
    });
    const self = this;
    new Gauge<'relay'>({
      name: 'baton_relay_connections',
      help: 'connections each relay owns',
      labelNames: ['relay'],
      registers,
      collect() {
        this.reset();
        const placement = self.source?.gateway.placement();
        if (!placement) return;
        for (const [relay, p] of placement) {
          this.set({ relay }, p.owned);
        }
      },
    });
    new Gauge({
      name: 'baton_record_protection_native',
      help: '1 when relays protect records with the native addon, 0 on the node:crypto fallback',
      registers,
      collect() {
        const rp = self.source?.recordProtection;
        if (rp) this.set(rp.mode === 'native' ? 1 : 0);
      },
    });
    new Gauge<'relay'>({
      name: 'baton_relay_up',
      help: '1 while a relay runs, 0 while it is being restarted',
      labelNames: ['relay'],
      registers,
      collect() {
        this.reset();
        const placement = self.source?.gateway.placement();
        if (!placement) return;
        for (const [relay, p] of placement) this.set({ relay }, p.up ? 1 : 0);
      },
    });
    // Lag is read from the connection table once per scrape, for both gauges.
    let lag = { max: 0, sum: 0, retained: 0 };
    new Gauge({
      name: 'baton_replication_lag_inputs_max',
      help: 'largest number of inputs a connection has received that no committed state covers yet',
      registers,
      collect() {
        const conns = self.source?.gateway.connections() ?? [];
        lag = { max: 0, sum: 0, retained: 0 };
        for (const c of conns) {
          const l = replicationLag(c);
          lag.max = Math.max(lag.max, l);
          lag.sum += l;
          lag.retained += c.retainedBytes;
        }
        this.set(lag.max);
      },
    });
    new Gauge({
      name: 'baton_replication_lag_inputs_sum',
      help: 'inputs not yet covered by a committed state, summed over connections',
      registers,
      collect() {
        this.set(lag.sum);
      },
    });
    new Gauge({
      name: 'baton_retained_bytes',
      help: 'input bytes the gateway retains for replay until a committed state covers them, all connections together',
      registers,
      collect() {
        this.set(stats()?.retainedBytes ?? lag.retained);
      },
    });
    new Gauge({
      name: 'baton_retained_budget_bytes',
      help: 'the retained-input budget (--retained-budget): above it, connections holding more than an equal share of half of it are not read until the total falls below half',
      registers,
      collect() {
        this.set(stats()?.retainedBudgetBytes ?? 0);
      },
    });
    new Gauge({
      name: 'baton_retained_budget_paused',
      help: '1 while retained input is over its budget (connections over their share not read), else 0',
      registers,
      collect() {
        this.set(stats()?.retainedBudgetPaused ? 1 : 0);
      },
    });
    mirror('baton_retained_budget_pauses_total', 'times the retained-input budget was reached', (s) => s.retainedBudgetPauses);
    mirror('baton_session_lookups_total', 'ClientHellos offering stateful tickets (tickets.mode stateful): a lookup in the sessions store went out', (s) => s.sessionLookups);
    mirror('baton_sessions_found_total', 'stateful-ticket lookups that took a session (the others get a full handshake: used, unknown, expired, or the store unreachable or late)', (s) => s.sessionsFound);
    new Counter<'limit'>({
      name: 'baton_limit_closes_total',
      help: 'connections closed for a cap: handshake_change_cipher_spec and handshake_warning_alerts (unexpected_message), unread_key_updates (KeyUpdates asked for by a client that does not read; closed without an alert)',
      labelNames: ['limit'],
      registers,
      collect() {
        const s = stats();
        this.reset();
        if (!s) return;
        this.inc({ limit: 'handshake_change_cipher_spec' }, s.handshakeChangeCipherSpecCloses);
        this.inc({ limit: 'handshake_warning_alerts' }, s.handshakeWarningAlertCloses);
        this.inc({ limit: 'unread_key_updates' }, s.unreadKeyUpdateCloses);
      },
    });

    this.handshakes = new Counter({
      name: 'baton_handshakes_total',
      help: 'completed TLS handshakes, full or resumed',
      labelNames: ['resumed'],
      registers,
    });
    this.handshakes.inc({ resumed: 'false' }, 0);
    this.handshakes.inc({ resumed: 'true' }, 0);
    this.takeoverLatency = new Histogram({
      name: 'baton_takeover_duration_ms',
      help: 'takeover latency in milliseconds, from crash detection to the new owner having restored the connection, by crash kind',
      labelNames: ['kind'],
      buckets: [...TAKEOVER_BUCKETS_MS],
      registers,
    });
    // Every crash kind has its series from the start, so dashboards see zeros rather than nothing.
    for (const kind of TAKEOVER_KINDS) this.takeoverLatency.zero({ kind });
    this.crashes = new Counter({
      name: 'baton_relay_crashes_total',
      help: 'relay crashes seen by the supervisor, by relay and reason',
      labelNames: ['relay', 'reason'],
      registers,
    });
    this.restarts = new Counter({
      name: 'baton_relay_restarts_total',
      help: 'relay restarts by the supervisor',
      labelNames: ['relay'],
      registers,
    });
    this.escalations = new Counter({
      name: 'baton_supervisor_escalations_total',
      help: 'times the relay supervisor exceeded its restart intensity and gave up',
      registers,
    });

    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'baton_' });
  }

  /** Starts reading a running cluster: its gateway events, and its counters at scrape time. */
  /** Marks the cluster as draining (baton_draining 1). */
  drainStarted(): void {
    this.draining = true;
  }

  attach(cluster: MetricsSource): void {
    this.detach();
    this.source = cluster;
    for (const name of cluster.relayNames) {
      this.historyOf(name);
      this.restarts.inc({ relay: name }, 0);
    }
    const on = <K extends keyof GatewayEvents>(event: K, fn: (...args: GatewayEvents[K]) => void) => {
      cluster.gateway.on(event, fn as never);
      this.unsubscribe.push(() => cluster.gateway.off(event, fn as never));
    };
    on('handshake', (h) => this.handshakes.inc({ resumed: String(h.resumed) }));
    on('takeover', (t) => this.takeoverLatency.observe({ kind: t.kind }, t.ms));
  }

  /** Stops listening to the gateway. Idempotent. */
  detach(): void {
    for (const off of this.unsubscribe.splice(0)) off();
  }

  /** Feed of the relay supervisor's events (pass to Cluster.start's `onEvent`). */
  supervisorEvent(e: SupervisorEvent): void {
    switch (e.type) {
      case 'Crashed': {
        const h = this.historyOf(e.child);
        h.crashes++;
        h.lastCrash = {
          reason: describeReason(e.crash.reason),
          kind: e.crash.reason.kind,
          at: new Date(e.crash.detectedAt).toISOString(),
          ...(e.crash.threadId !== undefined ? { threadId: e.crash.threadId } : {}),
          ...(e.crash.fault ? { fault: { kind: e.crash.fault.kind, ...(e.crash.fault.point ? { point: e.crash.fault.point } : {}) } } : {}),
        };
        this.crashes.inc({ relay: e.child, reason: e.crash.reason.kind });
        break;
      }
      case 'Restarted':
        this.historyOf(e.child).restarts++;
        this.restarts.inc({ relay: e.child });
        break;
      case 'Escalated':
        this.escalations.inc();
        break;
      default: {
        const never: never = e;
        return never;
      }
    }
  }

  /** Restarts and the last crash of a relay. */
  relayHistory(name: string): Readonly<RelayHistory> {
    return this.historyOf(name);
  }

  /** The registry in the Prometheus text exposition format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private historyOf(name: string): RelayHistory {
    let h = this.history.get(name);
    if (!h) {
      h = { restarts: 0, crashes: 0 };
      this.history.set(name, h);
    }
    return h;
  }
}
