/**
 * `baton demo`: a local cluster, an echo backend, clients that stream and
 * verify data, and a crash of a random relay with a random kind every few
 * seconds. On a terminal it redraws a live view in place; elsewhere it prints a
 * line per interval. It ends with a summary; the run fails if any byte was lost
 * or any client saw an error.
 */
import type { FaultKind, SupervisorEvent } from '../../actors/index.js';
import { FAULT_KINDS } from '../../actors/index.js';
import { Cluster } from '../../relay/cluster.js';
import { RELAY_FAULT_POINTS } from '../../relay/relay-actor.js';
import { makeSelfSigned } from '../self-signed.js';
import { startEchoBackend } from './echo-backend.js';
import { VerifyingClient } from './verifying-client.js';

export interface DemoOptions {
  readonly relays: number;
  readonly clients: number;
  readonly durationMs: number;
  readonly crashEveryMs: number;
  readonly watchdogMs: number;
  /** Live view in place (a terminal) or a line per interval. */
  readonly live: boolean;
  readonly out: NodeJS.WritableStream;
  /** Randomness of crash choices; Math.random by default. */
  readonly pick?: (n: number) => number;
}

export interface DemoSummary {
  readonly seconds: number;
  readonly clients: number;
  readonly handshakes: number;
  readonly crashes: number;
  readonly crashesByKind: Record<string, number>;
  readonly takeovers: number;
  readonly takeoverP50Ms: number | null;
  readonly takeoverP99Ms: number | null;
  readonly bytesVerified: number;
  readonly bytesLost: number;
  readonly clientErrors: string[];
  readonly connectionsLost: number;
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
  const clients: VerifyingClient[] = [];
  const started = Date.now();
  let lastLines = 0;
  let lastBytes = 0;
  let lastAt = started;
  const recent: string[] = [];
  try {
    write(
      `baton demo: ${opts.relays} relays on 127.0.0.1:${cluster.address.port}, echo backend on 127.0.0.1:${backend.port}, ` +
        `${opts.clients} clients, a crash every ${opts.crashEveryMs / 1000} s for ${opts.durationMs / 1000} s\n`,
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
      if (!opts.live) {
        write(
          `t=${elapsed}s ${rate} MB/s verified=${mb(verified)} MB takeovers=${stats.takeovers} ` +
            `p99=${p99 ?? '-'} ms crashes=${events.filter((e) => e.type === 'Crashed').length} errors=${errors} lost=${stats.connectionsLost}\n`,
        );
        return;
      }
      const lines = [
        `baton demo  t=${elapsed}s/${opts.durationMs / 1000}s   ${rate} MB/s   clients ${clients.length}   connections ${stats.connectionsActive}`,
        '',
        '  relay      thread  state  owns  restarts',
        ...cluster.relayNames.map((name) => {
          const p = placement.get(name);
          const thread = cluster.threadIdOf(name);
          return `  ${name.padEnd(9)}  ${String(thread ?? '-').padStart(6)}  ${(thread === undefined ? 'down' : 'up').padEnd(5)}  ${String(p?.owned ?? 0).padStart(4)}  ${String(restarts(name)).padStart(8)}`;
        }),
        '',
        `  takeovers ${stats.takeovers}   p99 takeover ${p99 ?? '-'} ms   verified ${mb(verified)} MB   lost ${stats.connectionsLost} connections, ${errors} client errors`,
        `  recent: ${recent.slice(-3).join('; ') || '-'}`,
      ];
      // Redraw in place: move up over the previous frame and clear each line.
      if (lastLines) write(`\x1b[${lastLines}A`);
      write(lines.map((l) => `\x1b[2K${l}`).join('\n') + '\n');
      lastLines = lines.length;
    };

    const ticker = setInterval(view, opts.live ? 500 : 2000);
    try {
      let nextCrash = started + opts.crashEveryMs;
      while (Date.now() - started < opts.durationMs) {
        await sleep(50);
        if (Date.now() < nextCrash) continue;
        nextCrash += opts.crashEveryMs;
        const up = cluster.relayNames.filter((n) => cluster.threadIdOf(n) !== undefined);
        // Crash only with every relay up, so the takeovers of one crash are done before the next.
        if (up.length < opts.relays) continue;
        const victim = up[pick(up.length)]!;
        const kind: FaultKind = FAULT_KINDS[pick(FAULT_KINDS.length)]!;
        const atPoint = pick(3) === 0;
        if (atPoint) {
          const point = RELAY_FAULT_POINTS[pick(RELAY_FAULT_POINTS.length)]!;
          await cluster.arm(victim, point, kind).catch(() => undefined);
          recent.push(`${victim} armed ${point} (${kind})`);
        } else {
          cluster.inject(victim, kind);
          recent.push(`${victim} ${kind}`);
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
    const kind = e.crash.fault?.kind ?? e.crash.reason.kind;
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
    ok: clientErrors.length === 0 && bytesLost === 0 && stats.connectionsLost === 0,
  };
  write(
    [
      '',
      `summary: ${summary.ok ? 'OK' : 'FAILED'} after ${summary.seconds.toFixed(1)} s`,
      `  ${summary.crashes} relay crashes (${Object.entries(crashesByKind).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}), ${summary.takeovers} connection takeovers, p50 ${summary.takeoverP50Ms ?? '-'} ms, p99 ${summary.takeoverP99Ms ?? '-'} ms`,
      `  ${summary.clients} clients, ${summary.handshakes} handshakes, ${mb(summary.bytesVerified)} MB verified, ${summary.bytesLost} bytes lost, ${summary.connectionsLost} connections lost`,
      ...clientErrors.slice(0, 10).map((e) => `  error: ${e}`),
      '',
    ].join('\n'),
  );
  return summary;
}
