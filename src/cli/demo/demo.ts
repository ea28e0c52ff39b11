/**
 * `baton demo`: a local cluster, an echo backend, clients that stream and
 * verify data, and a crash of a random relay with a random kind every few
 * seconds, for a time or until a number of crashes (a soak). On a terminal it
 * redraws a live view in place; elsewhere it prints a line per interval. It ends
 * with a summary; the run fails if any byte or connection was lost, any client saw
 * an error, or any connection was quarantined.
 */
import type { FaultKind, SupervisorEvent } from '../../actors/index.js';
import { FAULT_KINDS } from '../../actors/index.js';
import { Cluster } from '../../cluster/cluster.js';
import { RELAY_FAULT_POINTS } from '../../relay/fault-points.js';
import { makeSelfSigned } from '../self-signed.js';
import { startEchoBackend } from './echo-backend.js';
import { VerifyingClient } from './verifying-client.js';

export interface DemoOptions {
  readonly relays: number;
  readonly clients: number;
  /** How long to run; null: until {@link crashes} crashes (one of the two is given). */
  readonly durationMs: number | null;
  /** Stop once this many relay crashes happened; null: run for {@link durationMs}. */
  readonly crashes?: number | null;
  /** Time between two crashes, drawn uniformly from [min, max] ms each time. */
  readonly crashIntervalMs: { readonly min: number; readonly max: number };
  /** The crash kinds to draw from (default every kind). */
  readonly crashKinds?: readonly FaultKind[];
  readonly watchdogMs: number;
  /** Live view in place (a terminal) or a line per interval. */
  readonly live: boolean;
  readonly out: NodeJS.WritableStream;
  /** Ends the run early (its clients still stop cleanly and the summary is printed). */
  readonly stop?: AbortSignal;
  /** Randomness of crash choices; Math.random by default. */
  readonly pick?: (n: number) => number;
}

/** The longest a run with a crash count may take (a soak that cannot reach its count still ends). */
export const MAX_SOAK_MS = 24 * 3_600_000;

export interface DemoSummary {
  readonly seconds: number;
  readonly clients: number;
  readonly handshakes: number;
  readonly crashes: number;
  /** Crashes by the kind injected (a crash no injection explains: `other <reason>`). */
  readonly crashesByKind: Record<string, number>;
  readonly takeovers: number;
  readonly takeoverP50Ms: number | null;
  readonly takeoverP99Ms: number | null;
  readonly bytesVerified: number;
  readonly bytesLost: number;
  readonly clientErrors: string[];
  readonly connectionsLost: number;
  readonly quarantined: number;
  /** Output bytes the gateway refused to write past a gap (those connections were reset). */
  readonly outputGaps: number;
  /** Ended by {@link DemoOptions.stop} before its duration or crash count. */
  readonly interrupted: boolean;
  readonly ok: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

/** Runs the demo to its end and returns the summary (printed too). */
export async function runDemo(opts: DemoOptions): Promise<DemoSummary> {
  const pick = opts.pick ?? ((n: number) => Math.floor(Math.random() * n));
  const kinds = opts.crashKinds && opts.crashKinds.length > 0 ? opts.crashKinds : FAULT_KINDS;
  const { min, max } = opts.crashIntervalMs;
  // Uniform in [min, max] on a millisecond grid, from the same source as every other choice.
  const interval = () => min + pick(max - min + 1);
  const crashTarget = opts.crashes ?? null;
  const durationMs = opts.durationMs ?? (crashTarget === null ? 30_000 : MAX_SOAK_MS);
  const write = (s: string) => opts.out.write(s);
  const certificate = await makeSelfSigned();
  const backend = await startEchoBackend();
  const events: SupervisorEvent[] = [];
  const cluster = await Cluster.start({
    relays: opts.relays,
    listen: { host: '127.0.0.1', port: 0 },
    backend: { host: '127.0.0.1', port: backend.port },
    certificates: [{ cert: certificate.cert, key: certificate.key }],
    watchdogMs: opts.watchdogMs,
    relayHeapMb: 128,
    onEvent: (e) => events.push(e),
  });
  // Why a connection was lost or quarantined, for the summary (the first few of each).
  const incidents: string[] = [];
  cluster.gateway.on('connectionLost', (e) => incidents.push(`connection ${e.conn} lost: ${e.reason}`));
  cluster.gateway.on('quarantined', (e) => incidents.push(`connection ${e.conn} quarantined: input ${e.input} crashed its owner twice (${e.crash})`));
  const clients: VerifyingClient[] = [];
  const started = Date.now();
  let lastLines = 0;
  let lastBytes = 0;
  let lastAt = started;
  const recent: string[] = [];
  /** Fault points armed and not yet seen to fire (the relay crashed since, or not). */
  const armed: Armed[] = [];
  try {
    write(
      `baton demo: ${opts.relays} relays on 127.0.0.1:${cluster.address.port}, echo backend on 127.0.0.1:${backend.port}, ` +
        `${opts.clients} clients, a crash (${kinds.join(', ')}) every ${min === max ? `${min / 1000}` : `${min / 1000}-${max / 1000}`} s ` +
        `${crashTarget === null ? `for ${durationMs / 1000} s` : `until ${crashTarget} crashes${opts.durationMs === null ? '' : ` or ${durationMs / 1000} s`}`}\n`,
    );
    for (let i = 0; i < opts.clients; i++) {
      const c = new VerifyingClient({
        host: '127.0.0.1',
        port: cluster.address.port,
        ca: certificate.cert,
        servername: 'localhost',
        seed: `demo-client-${i}`,
        window: 256 * 1024,
      });
      clients.push(c);
    }
    await Promise.all(clients.map((c) => c.connect()));
    for (const c of clients) c.start();

    const view = () => {
      const now = Date.now();
      const verified = clients.reduce((a, c) => a + c.bytesVerified, 0);
      const rate = ((verified - lastBytes) / 1e6 / Math.max(0.001, (now - lastAt) / 1000)).toFixed(1);
      lastBytes = verified;
      lastAt = now;
      const stats = cluster.gateway.stats;
      const samples = stats.takeoverSamples.map((s) => s.ms);
      const p99 = percentile(samples, 99);
      const errors = clients.reduce((a, c) => a + c.errors.length, 0);
      const placement = cluster.gateway.placement();
      const restarts = (name: string) => events.filter((e) => e.type === 'Restarted' && e.child === name).length;
      const elapsed = ((now - started) / 1000).toFixed(0);
      const crashes = events.filter((e) => e.type === 'Crashed').length;
      if (!opts.live) {
        write(
          `t=${elapsed}s ${rate} MB/s verified=${mb(verified)} MB takeovers=${stats.takeovers} ` +
            `p99=${p99 ?? '-'} ms crashes=${crashes}${crashTarget === null ? '' : `/${crashTarget}`} errors=${errors} lost=${stats.connectionsLost} ` +
            `quarantined=${stats.quarantined}\n`,
        );
        return;
      }
      const lines = [
        `baton demo  t=${elapsed}s${crashTarget === null ? `/${durationMs / 1000}s` : `   crashes ${crashes}/${crashTarget}`}   ${rate} MB/s   clients ${clients.length}   connections ${stats.connectionsActive}`,
        '',
        '  relay      thread  state  owns  restarts',
        ...cluster.relayNames.map((name) => {
          const p = placement.get(name);
          const thread = cluster.threadIdOf(name);
          return `  ${name.padEnd(9)}  ${String(thread ?? '-').padStart(6)}  ${(thread === undefined ? 'down' : 'up').padEnd(5)}  ${String(p?.owned ?? 0).padStart(4)}  ${String(restarts(name)).padStart(8)}`;
        }),
        '',
        `  takeovers ${stats.takeovers}   p99 takeover ${p99 ?? '-'} ms   verified ${mb(verified)} MB   lost ${stats.connectionsLost} connections, ${errors} client errors, ${stats.quarantined} quarantined`,
        `  recent: ${recent.slice(-3).join('; ') || '-'}`,
      ];
      // Redraw in place: move up over the previous frame and clear each line.
      if (lastLines) write(`\x1b[${lastLines}A`);
      write(lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n');
      lastLines = lines.length;
    };

    const ticker = setInterval(view, opts.live ? 500 : 2000);
    try {
      const crashed = () => events.filter((e) => e.type === 'Crashed').length;
      let nextCrash = started + interval();
      while (Date.now() - started < durationMs && (crashTarget === null || crashed() < crashTarget) && !opts.stop?.aborted) {
        await sleep(crashTarget === null ? 50 : 10);
        if (Date.now() < nextCrash) continue;
        const up = cluster.relayNames.filter((n) => cluster.threadIdOf(n) !== undefined);
        // A crash needs a relay to crash and another one up to take its connections over
        // (with every relay down at once they wait in the store; that is not this run's test).
        if (up.length < 2) continue;
        // An armed fault point that has not fired yet counts as a crash to come: a count
        // is reached by crashes, not by injections.
        if (crashTarget !== null && crashed() + armedPending(armed, events) >= crashTarget) continue;
        nextCrash = Date.now() + interval();
        const victim = up[pick(up.length)]!;
        const kind: FaultKind = kinds[pick(kinds.length)]!;
        const atPoint = pick(3) === 0;
        if (atPoint) {
          const point = RELAY_FAULT_POINTS[pick(RELAY_FAULT_POINTS.length)]!;
          const at = { relay: victim, since: events.length, at: Date.now() };
          armed.push(at);
          await cluster.arm(victim, point, kind).catch(() => armed.splice(armed.indexOf(at), 1));
          recent.push(`${victim} armed ${point} (${kind})`);
        } else {
          try {
            cluster.inject(victim, kind);
            recent.push(`${victim} ${kind}`);
          } catch {
            // It died on its own between the look and the injection: the next turn picks again.
          }
        }
      }
    } finally {
      clearInterval(ticker);
    }
    view();
    await Promise.all(clients.map((c) => c.stop()));
  } finally {
    await cluster.close();
    await backend.close();
  }

  const stats = cluster.gateway.stats;
  const samples = stats.takeoverSamples.map((s) => s.ms);
  const crashesByKind: Record<string, number> = {};
  for (const e of events) {
    if (e.type !== 'Crashed') continue;
    const kind = e.crash.fault?.kind ?? `other ${e.crash.reason.kind}`;
    crashesByKind[kind] = (crashesByKind[kind] ?? 0) + 1;
  }
  const clientErrors = clients.flatMap((c, i) => c.errors.map((e) => `client ${i}: ${e}`));
  const bytesLost = clients.reduce((a, c) => a + (c.bytesSent - c.bytesVerified), 0);
  const summary: DemoSummary = {
    seconds: (Date.now() - started) / 1000,
    clients: clients.length,
    handshakes: clients.reduce((a, c) => a + c.handshakes, 0),
    crashes: events.filter((e) => e.type === 'Crashed').length,
    crashesByKind,
    takeovers: stats.takeovers,
    takeoverP50Ms: percentile(samples, 50),
    takeoverP99Ms: percentile(samples, 99),
    bytesVerified: clients.reduce((a, c) => a + c.bytesVerified, 0),
    bytesLost,
    clientErrors,
    connectionsLost: stats.connectionsLost,
    quarantined: stats.quarantined,
    outputGaps: stats.outputGaps,
    interrupted: opts.stop?.aborted === true,
    ok: clientErrors.length === 0 && bytesLost === 0 && stats.connectionsLost === 0 && stats.quarantined === 0 && stats.outputGaps === 0,
  };
  write(
    [
      '',
      `summary: ${summary.ok ? 'OK' : 'FAILED'} after ${summary.seconds.toFixed(1)} s${summary.interrupted ? `, stopped early (signal)${crashTarget === null ? '' : ` at ${summary.crashes} of ${crashTarget} crashes`}` : ''}`,
      `  ${summary.crashes} relay crashes (${Object.entries(crashesByKind).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}), ${summary.takeovers} connection takeovers, p50 ${summary.takeoverP50Ms ?? '-'} ms, p99 ${summary.takeoverP99Ms ?? '-'} ms`,
      `  ${summary.clients} clients, ${summary.handshakes} handshakes, ${mb(summary.bytesVerified)} MB verified (${summary.bytesVerified} bytes), ${summary.bytesLost} bytes lost, ${summary.connectionsLost} connections lost`,
      `  ${clientErrors.length} client errors, ${summary.quarantined} quarantined, ${summary.outputGaps} output gap bytes`,
      ...clientErrors.slice(0, 10).map((e) => `  error: ${e}`),
      ...incidents.slice(0, 10).map((e) => `  ${e}`),
      '',
    ].join('\n'),
  );
  return summary;
}

/** An armed fault point: on which relay, the event count and the time when it was armed. */
interface Armed {
  readonly relay: string;
  readonly since: number;
  readonly at: number;
}

/** How long an armed point that has not fired counts as a crash to come. */
const ARMED_EXPIRY_MS = 5_000;

/**
 * Armed fault points that have not fired yet: one armed on a relay counts until that
 * relay crashes after the arming (whatever fired it; a restart clears what was armed).
 */
function armedPending(armed: Armed[], events: readonly SupervisorEvent[]): number {
  const now = Date.now();
  for (let i = armed.length - 1; i >= 0; i--) {
    const a = armed[i]!;
    // A point its relay's traffic never reaches would hold the count back for ever.
    if (now - a.at > ARMED_EXPIRY_MS || events.slice(a.since).some((e) => e.type === 'Crashed' && e.child === a.relay)) armed.splice(i, 1);
  }
  return armed.length;
}
