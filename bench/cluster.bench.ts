/**
 * Cluster benchmark (issue 4): takeover latency per crash kind, and throughput
 * with replication on versus off, in one run. Not a test: it prints tables and a
 * JSON file (bench/results/cluster-<timestamp>.json) and exits 0 even when a
 * target is missed.
 *
 *   npx tsx bench/cluster.bench.ts [--rounds 5] [--clients 12] [--watchdog-ms 500]
 *                                  [--seconds 5] [--tp-clients 8] [--tp-relays 2,3]
 *                                  [--pace-bytes 512] [--pace-ms 1] [--only takeover|throughput]
 *                                  [--kinds throw,exit,terminate,oom,hang]
 *
 * Takeover: a 3-relay cluster, N paced streaming clients through an echo backend (both in
 * a bench/load-client.ts child process, which records when bytes arrive). Each round crashes one relay with one kind and
 * measures (a) the gateway's takeoverSamples (crash detection -> new owner's Promoted),
 * (b) injection -> detection, and per affected client the stall it saw (last byte
 * before -> first byte after the crash) and injection -> first byte after.
 *
 * Throughput: relays 2 and 3, replication on and off, bulk verifying clients and the
 * echo backend in a child process (bench/load-client.ts), so this process runs only the
 * gateway and the relay workers; CPU is this process's (all its threads).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { FaultKind, SupervisorEvent } from '../src/actors/index.js';
import { Cluster } from '../src/cluster/cluster.js';
import { DEFAULT_GATEWAY } from '../src/relay/gateway.js';
import { makeSelfSigned } from '../src/cli/self-signed.js';
import { CA_ENV, wall } from './load-client.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);

function num(name: string, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v < min || v > max) throw new RangeError(`--${name} must be a number in [${min}, ${max}]`);
  return v;
}
function str(name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? dflt : (args[i + 1] ?? dflt);
}

const ROUNDS = Math.floor(num('rounds', 5, 1, 100));
const CLIENTS = Math.floor(num('clients', 12, 1, 200));
const WATCHDOG_MS = Math.floor(num('watchdog-ms', 500, 20, 10_000));
const SECONDS = num('seconds', 5, 0.5, 120);
const TP_CLIENTS = Math.floor(num('tp-clients', 8, 1, 200));
const TP_RELAYS = str('tp-relays', '2,3')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n >= 1 && n <= 16);
const PACE_BYTES = Math.floor(num('pace-bytes', 512, 1, 1 << 16));
const PACE_MS = num('pace-ms', 1, 1, 100);
const ONLY = str('only', '');
const ALL_KINDS: readonly FaultKind[] = ['throw', 'exit', 'terminate', 'oom', 'hang'];
const KINDS: readonly FaultKind[] = str('kinds', ALL_KINDS.join(','))
  .split(',')
  .map((k) => {
    if (!ALL_KINDS.includes(k as FaultKind)) throw new Error(`--kinds: unknown crash kind ${k} (${ALL_KINDS.join(', ')})`);
    return k as FaultKind;
  });
const CRASH_TARGET_MS = 20;
const HANG_TARGET_MS = WATCHDOG_MS + 20;
const RATIO_TARGET = 0.85;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) {
      console.error(`  (timed out after ${timeoutMs} ms waiting for ${what})`);
      return false;
    }
    await sleep(5);
  }
  return true;
}

/** Nearest-rank percentile. */
function pct(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');

function table(rows: readonly Record<string, string | number>[]): void {
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]!);
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padStart(w[i]!)).join('  ');
  console.log(line(cols));
  console.log(line(w.map((n) => '-'.repeat(n))));
  for (const r of rows) console.log(line(cols.map((c) => String(r[c] ?? ''))));
}

/** CPU seconds of this process's main thread (Linux /proc), or undefined elsewhere. */
function mainThreadCpu(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the state field; USER_HZ is 100 on Linux.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return undefined;
  }
}
const processCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

// A fresh self-signed certificate for localhost; the load clients trust it (CA_ENV).
const selfSigned = await makeSelfSigned();
const certificates = [{ cert: selfSigned.cert, key: selfSigned.key }];

// ---------------------------------------------------------------------------------
// 1. Takeover latency
// ---------------------------------------------------------------------------------

interface RoundResult {
  readonly kind: FaultKind;
  readonly round: number;
  readonly victim: string;
  readonly affected: number;
  /** Injection -> supervisor detection (crash.detectedAt). */
  readonly detectMs: number;
  /** The gateway's samples for this round (detection -> Promoted), one per affected connection. */
  readonly gatewayMs: number[];
  /** Per affected client: last byte before -> first byte after the crash. */
  readonly stallMs: number[];
  /** Per affected client: injection -> first byte after the crash. */
  readonly injectToFirstByteMs: number[];
  /** Largest gap any unaffected client saw in the same window (collateral stall). */
  readonly bystanderMaxGapMs: number;
  readonly missingSamples: number;
  readonly clientsWithoutByteAfter: number;
  /** Every crash the supervisor reported during the round (child:reason); more than one is notable. */
  readonly crashesInRound: string[];
  /** Main-thread event-loop utilisation from injection to the end of the round. */
  readonly connectionsLost: number;
  readonly mainElu: number;
}

/** A load-client child process, driven by JSON lines. */
function loadClient(childArgs: readonly string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'load-client.ts'), ...childArgs], {
    stdio: ['pipe', 'pipe', 'inherit'],
    cwd: join(here, '..'),
    env: { ...process.env, [CA_ENV]: selfSigned.cert },
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! });
  const queue: Record<string, unknown>[] = [];
  let wake: (() => void) | null = null;
  lines.on('line', (l) => {
    try {
      queue.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      console.error(`  load-client: ${l}`);
    }
    wake?.();
  });
  return {
    send(o: object): void {
      child.stdin!.write(`${JSON.stringify(o)}\n`);
    },
    async next<T = Record<string, unknown>>(ev: string, timeoutMs: number): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = queue.findIndex((m) => m.ev === ev);
        if (i >= 0) return queue.splice(i, 1)[0]! as T;
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`load-client: no '${ev}' (exit ${child.exitCode})`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
        wake = null;
      }
    },
    async close(): Promise<void> {
      child.stdin?.end();
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null) child.kill();
      lines.close();
    },
  };
}

async function takeoverBench() {
  const load = loadClient(['--mode', 'paced', '--clients', String(CLIENTS), '--chunk', String(PACE_BYTES), '--pace-ms', String(PACE_MS)]);
  const events: SupervisorEvent[] = [];
  let cluster: Cluster | undefined;
  const results: RoundResult[] = [];
  let steady = { mainElu: Number.NaN, processCores: Number.NaN };
  let reconnects = 0;
  let totals: { handshakes: number; bytesVerified: number; errors: string[]; erroredClients: number; clients: number; cpuSeconds: number } | undefined;
  try {
    const { port: backendPort } = await load.next<{ port: number }>('backend', 30_000);
    cluster = await Cluster.start({
      relays: 3,
      listen: { host: '127.0.0.1', port: 0 },
      backend: { host: '127.0.0.1', port: backendPort },
      certificates,
      watchdogMs: WATCHDOG_MS,
      relayHeapMb: 96,
      onEvent: (e) => events.push(e),
    });
    const cl = cluster;
    load.send({ port: cl.address.port });
    await load.next('connected', 60_000);
    await sleep(300);
    const eluSteady0 = performance.eventLoopUtilization();
    const cpuSteady0 = processCpu();
    const t0 = performance.now();
    await sleep(1000);
    steady = { mainElu: performance.eventLoopUtilization(eluSteady0).utilization, processCores: (processCpu() - cpuSteady0) / ((performance.now() - t0) / 1000) };

    const crashed = () => events.filter((e) => e.type === 'Crashed');
    const restarted = () => events.filter((e) => e.type === 'Restarted').length;
    let victimIndex = 0;
    for (const kind of KINDS) {
      for (let round = 0; round < ROUNDS; round++) {
        await until('all relays up', () => cl.relayNames.every((n) => cl.threadIdOf(n) !== undefined), 20_000);
        await until('gateway to see every relay up', () => [...cl.gateway.placement().values()].every((p) => p.up), 20_000);
        await sleep(250); // steady state
        let conns = cl.gateway.connections();
        if (conns.length !== CLIENTS) {
          // An earlier round lost connections (see crashesInRound): start a fresh set of clients.
          reconnects++;
          load.send({ cmd: 'reconnect' });
          await until('old connections gone', () => cl.gateway.connections().length === 0, 10_000);
          await load.next('connected', 60_000);
          await sleep(300);
          conns = cl.gateway.connections();
          if (conns.length !== CLIENTS) throw new Error(`gateway has ${conns.length} connections for ${CLIENTS} clients`);
        }
        // Rotate over the relays, skipping any that owns no connection (takeovers move
        // ownership to the replica and nothing moves it back, so ownership drifts).
        const names = cl.relayNames;
        let victim = names[victimIndex++ % names.length]!;
        for (let k = 0; k < names.length && !conns.some((c) => c.owner === victim); k++) victim = names[victimIndex++ % names.length]!;
        // The client's connections were opened one after another: connections()[i] is client i.
        const affected = new Set(conns.flatMap((c, i) => (c.owner === victim ? [i] : [])));
        const crashesBefore = crashed().length;
        const restartsBefore = restarted();
        const samplesBefore = cl.gateway.stats.takeoverSamples.length;
        const lostBefore = cl.gateway.stats.connectionsLost;

        const elu0 = performance.eventLoopUtilization();
        const injectAt = wall();
        const injectAtMs = Date.now(); // the clock crash.detectedAt is read from
        cl.inject(victim, kind);
        await until(`crash of ${victim} (${kind})`, () => crashed().length > crashesBefore, 20_000);
        const ev = crashed()[crashesBefore];
        const detectedAt = ev && ev.type === 'Crashed' ? ev.crash.detectedAt : Number.NaN;
        await until('takeover samples', () => cl.gateway.stats.takeoverSamples.length >= samplesBefore + affected.size, 10_000);
        await until(`restart of ${victim}`, () => restarted() > restartsBefore, 20_000);
        await sleep(100); // bytes after the takeover have arrived
        const samples = cl.gateway.stats.takeoverSamples.slice(samplesBefore).map((s) => s.ms);
        const crashesInRound = crashed()
          .slice(crashesBefore)
          .map((e) => (e.type === 'Crashed' ? `${e.child}:${e.crash.reason.kind}` : ''));
        const mainElu = performance.eventLoopUtilization(elu0).utilization;

        const horizon = Number.isFinite(detectedAt) ? injectAt + (detectedAt - injectAtMs) + 20 : injectAt + WATCHDOG_MS * 2;
        load.send({ cmd: 'gaps', since: injectAt, horizon });
        const { gaps } = await load.next<{ gaps: ({ gap: number; end: number } | null)[] }>('gaps', 10_000);
        const stallMs: number[] = [];
        const firstByteMs: number[] = [];
        let bystanderMaxGapMs = 0;
        let withoutByteAfter = 0;
        gaps.forEach((g, i) => {
          if (affected.has(i)) {
            if (!g) withoutByteAfter++;
            else {
              stallMs.push(g.gap);
              firstByteMs.push(g.end - injectAt);
            }
          } else if (g && g.gap > bystanderMaxGapMs) bystanderMaxGapMs = g.gap;
        });
        results.push({
          kind,
          round,
          victim,
          affected: affected.size,
          detectMs: detectedAt - injectAtMs,
          gatewayMs: samples,
          stallMs,
          injectToFirstByteMs: firstByteMs,
          bystanderMaxGapMs,
          missingSamples: Math.max(0, affected.size - samples.length),
          clientsWithoutByteAfter: withoutByteAfter,
          crashesInRound,
          connectionsLost: cl.gateway.stats.connectionsLost - lostBefore,
          mainElu,
        });
        const mx = (xs: number[]) => (xs.length ? Math.max(...xs) : Number.NaN);
        process.stdout.write(
          `  ${kind.padEnd(9)} round ${round + 1}/${ROUNDS} ${victim}: ${affected.size} conns, detect ${f1(detectedAt - injectAtMs)} ms, ` +
            `gateway max ${f1(mx(samples))} ms, stall max ${f1(mx(stallMs))} ms, main ELU ${(mainElu * 100).toFixed(0)}%` +
            `${crashesInRound.length > 1 ? `, EXTRA CRASHES: ${crashesInRound.slice(1).join(' ')}` : ''}` +
            `${cl.gateway.stats.connectionsLost > lostBefore ? `, ${cl.gateway.stats.connectionsLost - lostBefore} connections LOST` : ''}\n`,
        );
      }
    }
    load.send({ cmd: 'stop' });
    totals = await load.next('stopped', 20_000);
  } finally {
    await load.close();
    await cluster?.close();
  }
  const stats = { ...cluster.gateway.stats, takeoverSamples: cluster.gateway.stats.takeoverSamples.length };

  const summary = KINDS.map((kind) => {
    const rs = results.filter((r) => r.kind === kind);
    const gw = rs.flatMap((r) => r.gatewayMs);
    const det = rs.map((r) => r.detectMs);
    const stall = rs.flatMap((r) => r.stallMs);
    const e2e = rs.flatMap((r) => r.injectToFirstByteMs);
    const target = kind === 'hang' ? HANG_TARGET_MS : CRASH_TARGET_MS;
    return {
      kind,
      rounds: rs.length,
      samples: gw.length,
      gatewayP50: pct(gw, 50),
      gatewayP99: pct(gw, 99),
      detectP50: pct(det, 50),
      detectP99: pct(det, 99),
      stallP50: pct(stall, 50),
      stallP99: pct(stall, 99),
      e2eP50: pct(e2e, 50),
      e2eP99: pct(e2e, 99),
      bystanderMaxGapMs: Math.max(0, ...rs.map((r) => r.bystanderMaxGapMs)),
      missingSamples: rs.reduce((a, r) => a + r.missingSamples, 0),
      clientsWithoutByteAfter: rs.reduce((a, r) => a + r.clientsWithoutByteAfter, 0),
      extraCrashes: rs.reduce((a, r) => a + r.crashesInRound.length - 1, 0),
      connectionsLost: rs.reduce((a, r) => a + r.connectionsLost, 0),
      targetMs: target,
      gatewayVerdict: pct(gw, 99) < CRASH_TARGET_MS ? 'PASS' : 'MISS',
      e2eVerdict: pct(e2e, 99) < target ? 'PASS' : 'MISS',
    };
  });
  return { steady, reconnects, rounds: results, summary, clients: totals, gatewayStats: stats };
}

// ---------------------------------------------------------------------------------
// 2. Throughput, replication on vs off
// ---------------------------------------------------------------------------------

interface ChildDone {
  readonly ev: 'done';
  readonly seconds: number;
  readonly bytesVerified: number;
  readonly bytesPerSecond: number;
  readonly cpuSeconds: number;
  readonly errors: string[];
  readonly handshakes: number;
}

async function throughputRun(relays: number, replication: boolean) {
  const load = loadClient(['--mode', 'bulk', '--clients', String(TP_CLIENTS), '--chunk', '16384', '--window', String(1 << 20), '--seconds', String(SECONDS), '--warmup', '1']);
  const next = (ev: string, timeoutMs: number) => load.next(ev, timeoutMs);
  let cluster: Cluster | undefined;
  try {
    const { port: backendPort } = (await next('backend', 30_000)) as { port: number };
    cluster = await Cluster.start({
      relays,
      listen: { host: '127.0.0.1', port: 0 },
      backend: { host: '127.0.0.1', port: backendPort },
      certificates,
      watchdogMs: WATCHDOG_MS,
      replication: replication ? undefined : false,
    });
    load.send({ port: cluster.address.port });
    await next('measuring', 60_000);
    const cpu0 = processCpu();
    const main0 = mainThreadCpu();
    const t0 = performance.now();
    const done = (await next('done', (SECONDS + 30) * 1000)) as unknown as ChildDone;
    const secs = (performance.now() - t0) / 1000;
    const cpu = processCpu() - cpu0;
    const main1 = mainThreadCpu();
    const mainCpu = main0 !== undefined && main1 !== undefined ? main1 - main0 : undefined;
    const stats = cluster.gateway.stats;
    const stalled = cluster.gateway.connections().filter((c) => c.retainedBytes > DEFAULT_GATEWAY.retainedLimitBytes).length;
    return {
      relays,
      replication,
      /** Connections whose reading the gateway paused for retained input at the end (stalled). */
      stalled,
      clients: TP_CLIENTS,
      seconds: done.seconds,
      bytesVerified: done.bytesVerified,
      mbPerSecond: done.bytesPerSecond / 1e6,
      processCpuSeconds: cpu,
      processCores: cpu / secs,
      mainThreadCpuSeconds: mainCpu,
      otherThreadsCpuSeconds: mainCpu !== undefined ? cpu - mainCpu : undefined,
      bytesPerCpuSecond: done.bytesVerified / cpu,
      loadClientCpuSeconds: done.cpuSeconds,
      errors: done.errors,
      handshakes: done.handshakes,
      outputGaps: stats.outputGaps,
      connectionsLost: stats.connectionsLost,
    };
  } finally {
    await load.close();
    // Bounded: a stalled gateway must not hang the bench.
    if (cluster && !(await Promise.race([cluster.close().then(() => true), sleep(10_000).then(() => false)]))) {
      console.error(`  (cluster of ${relays} relays, replication ${replication ? 'on' : 'off'}, did not close within 10 s; moving on)`);
    }
  }
}

async function throughputBench() {
  const runs: Awaited<ReturnType<typeof throughputRun>>[] = [];
  for (const relays of TP_RELAYS) {
    // Alternate the order per cluster size so warm-up effects do not favour one mode.
    const order = relays % 2 === 0 ? [true, false] : [false, true];
    for (const repl of order) {
      process.stdout.write(`  relays ${relays}, replication ${repl ? 'on' : 'off'} ... `);
      const r = await throughputRun(relays, repl);
      process.stdout.write(`${r.mbPerSecond.toFixed(1)} MB/s${r.stalled ? `, ${r.stalled}/${TP_CLIENTS} connections STALLED (retained input never released)` : ''}\n`);
      runs.push(r);
    }
  }
  const ratios = TP_RELAYS.map((relays) => {
    const on = runs.find((r) => r.relays === relays && r.replication)!;
    const off = runs.find((r) => r.relays === relays && !r.replication)!;
    const ratio = on.mbPerSecond / off.mbPerSecond;
    return {
      relays,
      onMBps: on.mbPerSecond,
      offMBps: off.mbPerSecond,
      ratio,
      perCpuRatio: on.bytesPerCpuSecond / off.bytesPerCpuSecond,
      verdict: ratio >= RATIO_TARGET ? 'PASS' : 'MISS',
    };
  });
  return { runs, ratios };
}

// ---------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = Date.now();
  console.log(
    `cluster bench: node ${process.version}, ${args.length ? args.join(' ') : 'defaults'}; rounds ${ROUNDS}, clients ${CLIENTS}, ` +
      `watchdog ${WATCHDOG_MS} ms, throughput ${SECONDS} s x ${TP_CLIENTS} clients, relays ${TP_RELAYS.join('/')}`,
  );
  const out: Record<string, unknown> = {
    startedAt: new Date(started).toISOString(),
    node: process.version,
    options: { rounds: ROUNDS, clients: CLIENTS, watchdogMs: WATCHDOG_MS, seconds: SECONDS, tpClients: TP_CLIENTS, tpRelays: TP_RELAYS, paceBytes: PACE_BYTES, paceMs: PACE_MS },
  };

  if (ONLY !== 'throughput') {
    console.log(
      `\n== takeover latency: 3 relays, ${CLIENTS} clients each writing ${PACE_BYTES} B every ${PACE_MS} ms (clients and echo backend in a child process), ` +
        `${ROUNDS} rounds per kind ==`,
    );
    const t = await takeoverBench();
    out.takeover = t;
    console.log(
      '\n  gateway = takeoverSamples (crash detection -> new owner Promoted), per affected connection\n' +
        '  detect  = cluster.inject -> supervisor crash.detectedAt, per round (Date.now(), 1 ms resolution)\n' +
        '  stall   = per affected client, last byte before -> first byte after the crash\n' +
        '  e2e     = per affected client, cluster.inject -> first byte after the crash\n' +
        `  targets: gateway p99 < ${CRASH_TARGET_MS} ms (every kind); e2e p99 < ${CRASH_TARGET_MS} ms for a crash, < watchdog + 20 = ${HANG_TARGET_MS} ms for a hang\n`,
    );
    table(
      t.summary.map((s) => ({
        kind: s.kind,
        n: `${s.rounds}/${s.samples}`,
        'gateway p50': f1(s.gatewayP50),
        'gateway p99': f1(s.gatewayP99),
        'detect p50': f1(s.detectP50),
        'detect p99': f1(s.detectP99),
        'stall p50': f1(s.stallP50),
        'stall p99': f1(s.stallP99),
        'e2e p50': f1(s.e2eP50),
        'e2e p99': f1(s.e2eP99),
        'bystander max': f1(s.bystanderMaxGapMs),
        'extra crashes': s.extraCrashes,
        lost: s.connectionsLost,
        target: s.targetMs,
        gateway: s.gatewayVerdict,
        e2e: s.e2eVerdict,
      })),
    );
    const st = t.gatewayStats;
    const c = t.clients;
    console.log(
      `\n  n = rounds/gateway samples; bystander max = largest gap an unaffected client saw around a crash (ms)\n` +
        `  clients: ${c ? `${c.clients} clients (${t.reconnects} fresh sets after lost connections), ${c.handshakes} handshakes, ${(c.bytesVerified / 1e6).toFixed(1)} MB verified, ` +
          `${c.erroredClients} clients with errors${c.errors.length ? ` (${c.errors.slice(0, 3).join('; ')})` : ''}` : 'no totals'}\n` +
        `  steady state before the rounds: main-thread ELU ${(t.steady.mainElu * 100).toFixed(0)}%, process CPU ${t.steady.processCores.toFixed(2)} cores\n` +
        `  rounds with more than one crash: ${t.rounds.filter((r) => r.crashesInRound.length > 1).length}; ` +
        '\n' +
        `  gateway: takeovers ${st.takeovers}, lost ${st.connectionsLost}, quarantined ${st.quarantined}, outputGaps ${st.outputGaps}, ` +
        `missing samples ${t.summary.reduce((a, s) => a + s.missingSamples, 0)}, affected clients with no byte after ${t.summary.reduce((a, s) => a + s.clientsWithoutByteAfter, 0)}`,
    );
  }

  if (ONLY !== 'takeover') {
    console.log(
      `\n== throughput: ${TP_CLIENTS} bulk verifying clients (16 KiB writes, 1 MiB window) and the echo backend in a child process, ` +
        `${SECONDS} s per run after 1 s warm-up ==`,
    );
    const t = await throughputBench();
    out.throughput = t;
    console.log('');
    table(
      t.runs.map((r) => ({
        relays: r.relays,
        replication: r.replication ? 'on' : 'off',
        stalled: r.stalled,
        'MB/s': r.mbPerSecond.toFixed(1),
        'cpu s': r.processCpuSeconds.toFixed(2),
        cores: r.processCores.toFixed(2),
        'main thr s': r.mainThreadCpuSeconds?.toFixed(2) ?? '-',
        'other thr s': r.otherThreadsCpuSeconds?.toFixed(2) ?? '-',
        'MB/cpu-s': (r.bytesPerCpuSecond / 1e6).toFixed(1),
        'client cpu s': r.loadClientCpuSeconds.toFixed(2),
        errors: r.errors.length + r.outputGaps + r.connectionsLost,
      })),
    );
    console.log('');
    table(
      t.ratios.map((r) => ({
        relays: r.relays,
        'on MB/s': r.onMBps.toFixed(1),
        'off MB/s': r.offMBps.toFixed(1),
        'on/off': `${(r.ratio * 100).toFixed(1)}%`,
        'on/off per cpu-s': `${(r.perCpuRatio * 100).toFixed(1)}%`,
        target: `>= ${RATIO_TARGET * 100}%`,
        verdict: r.verdict,
      })),
    );
    console.log(
      '\n  cpu s = this process (gateway main thread + relay workers + V8/libuv helpers), process.cpuUsage();\n' +
        '  main thr / other thr split from /proc/self/task (Linux); client cpu s = the load-client child (clients + echo backend)\n' +
        '  stalled = connections the gateway had paused for retained input at the end of the run',
    );
  }

  const dir = join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `cluster-${new Date(started).toISOString().replace(/[:.]/g, '-')}.json`);
  out.elapsedSeconds = (Date.now() - started) / 1000;
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`\nresults: ${file} (${readdirSync(dir).length} file(s) in bench/results); total ${(out.elapsedSeconds as number).toFixed(1)} s`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`cluster bench failed: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
