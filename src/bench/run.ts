/**
 * `baton bench`: starts the backend and the load generator (child processes),
 * then each terminator in turn in its own process — node-tls, Baton with 1..R
 * relays and replication on and off, an external command — runs every workload
 * against it, and reads the terminator's CPU time (all threads) around each
 * measured window. Writes the JSON and the SVG chart and prints the table.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, relative, resolve } from 'node:path';
import { makeSelfSigned } from '../cli/self-signed.js';
import { JsonChild, PACKAGE_ROOT, programArgs } from './child.js';
import { clockTicks, procAvailable, treeCpuSeconds, treeRssBytes } from './cpu.js';
import { formatSummary, monotonicUs, summarizeDir } from './profile.js';
import { formatMemory, formatTable, formatTargets, medianRounds, targets, withRatios } from './report.js';
import { chart } from './svg.js';
import { specLabel, startTerminator, type Files, type RecordProtection, type TerminatorSpec, type TicketMode } from './terminators.js';
import type { BenchReport, IdleMemory, Measurement } from './types.js';
import { unitOf, type LoadResult, type Workload } from './workloads.js';

export interface BenchOptions {
  readonly relays: readonly number[];
  readonly replication: readonly boolean[];
  /** Record protection of the Baton runs: the native addon, node:crypto (BATON_NATIVE=0), or both. */
  readonly protection: readonly RecordProtection[];
  /** Session tickets of the Baton runs (default stateless alone). */
  readonly tickets?: readonly TicketMode[];
  readonly workloads: readonly Workload[];
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** Each terminator and workload runs this many times, round after round; the report keeps the median of each. */
  readonly rounds: number;
  readonly connections: number;
  /** Idle connections opened on a fresh terminator process to measure memory per connection (0: none). */
  readonly idleConnections: number;
  /** How long they stay idle before memory is read (V8 gives back handshake garbage after some seconds of quiet). */
  readonly idleSettleSeconds: number;
  readonly external?: { readonly name: string; readonly template: string };
  readonly outDir: string;
  /** Profile the Node terminators (--cpu-prof) into this directory and summarise. */
  readonly cpuProfDir?: string;
  /** The command line, recorded in the JSON. */
  readonly command: string;
  readonly verbose?: boolean;
  /** Result lines (stdout). */
  readonly out: (line: string) => void;
  /** Progress lines (stderr). */
  readonly progress: (line: string) => void;
}

type Raw = Omit<Measurement, 'vsNode'>;

/**
 * A fresh self-signed ECDSA P-256 certificate for localhost (the load generator does not
 * verify it) in a temporary folder, as the files every terminator reads.
 */
async function prepareFiles(): Promise<{ files: Files; dispose: () => void }> {
  const made = await makeSelfSigned();
  const dir = mkdtempSync(join(os.tmpdir(), 'baton-bench-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const pem = join(dir, 'cert-and-key.pem');
  writeFileSync(cert, made.cert);
  writeFileSync(key, made.key, { mode: 0o600 });
  writeFileSync(pem, `${made.cert.trimEnd()}\n${made.key}`, { mode: 0o600 });
  return { files: { cert, key, pem }, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

export function configs(o: Pick<BenchOptions, 'relays' | 'replication' | 'protection' | 'tickets' | 'external'>): TerminatorSpec[] {
  const specs: TerminatorSpec[] = [{ kind: 'node-tls' }];
  for (const protection of o.protection) {
    for (const relays of o.relays) {
      for (const replication of o.replication) {
        for (const tickets of o.tickets ?? ['stateless']) specs.push({ kind: 'baton', relays, replication, protection, ...(tickets === 'stateful' ? { tickets } : {}) });
      }
    }
  }
  if (o.external) specs.push({ kind: 'external', ...o.external });
  return specs;
}

function figures(spec: TerminatorSpec, protection: string | null, r: LoadResult, cpu: number, windowSeconds: number): Raw {
  const count = unitOf(r.workload) === 'bytes' ? r.bytes : unitOf(r.workload) === 'roundTrips' ? r.roundTrips : r.handshakes;
  const perSecond = count / r.seconds;
  return {
    terminator: specLabel(spec),
    spec,
    recordProtection: protection,
    workload: r.workload,
    seconds: r.seconds,
    terminatorCpuSeconds: cpu,
    terminatorCores: cpu / windowSeconds,
    bytes: r.bytes,
    roundTrips: r.roundTrips,
    handshakes: r.handshakes,
    resumedFraction: r.handshakes > 0 ? r.resumed / r.handshakes : 0,
    perSecond,
    perCpuSecond: cpu > 0 ? count / cpu : 0,
    mbPerSecond: unitOf(r.workload) === 'bytes' ? perSecond / 1e6 : null,
    p50Us: r.p50Us,
    p99Us: r.p99Us,
    errors: r.errors,
    firstError: r.firstError,
    loadCpuSeconds: r.loadCpuSeconds,
  };
}

const stamp = () => new Date().toISOString().replace(/[:.]/g, '-');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Memory per idle connection: how much the terminator's resident memory (all threads)
 * grew once `n` connections were opened (full handshake, one echoed byte) and left
 * idle long enough for V8 to give back what the handshakes left as garbage (its memory
 * reducer runs after some seconds of quiet). The lowest of the readings counts, so a
 * passing GC cycle does not.
 */
async function idleMemory(load: JsonChild, pid: number, port: number, id: number, n: number, settleMs: number): Promise<Omit<IdleMemory, 'terminator'>> {
  await sleep(settleMs / 4);
  const before = treeRssBytes(pid);
  load.send({ cmd: 'idle', id, port, connections: n });
  const r = await load.next<{ ev: string; open?: number; error?: string }>(['idle', 'failed'], 120_000, id);
  if (r.ev === 'failed') throw new Error(String(r.error));
  let after = Infinity;
  for (let waited = 0; waited < settleMs; waited += 250) {
    await sleep(250);
    after = Math.min(after, treeRssBytes(pid));
  }
  load.send({ cmd: 'release', id });
  await load.next('released', 30_000, id);
  const open = r.open ?? n;
  return { connections: open, rssBeforeBytes: before, rssIdleBytes: after, bytesPerConnection: open > 0 ? (after - before) / open : 0 };
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  if (!procAvailable()) throw new Error('baton bench reads CPU time from /proc: it runs on Linux only');
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const { files, dispose } = await prepareFiles();
  const childOpts = { cwd: PACKAGE_ROOT, env: process.env, echoStderr: o.verbose ?? false };
  const backend = new JsonChild('backend', process.execPath, programArgs('./backend'), childOpts);
  const load = new JsonChild('load', process.execPath, programArgs('./load'), childOpts);
  const raw: Raw[] = [];
  const memory: IdleMemory[] = [];
  const failures: { terminator: string; workload: Workload | null; error: string }[] = [];
  let nextId = 1;
  /** Measured windows (monotonic µs) per profile directory, to leave start-up out of the profiles. */
  const windows = new Map<string, [number, number][]>();
  try {
    const { port: backendPort } = await backend.next<{ port: number }>('backend', 30_000);
    await load.next('ready', 30_000);
    // Round after round through every terminator, so that the machine's drift falls on all of them alike.
    for (let round = 0; round < o.rounds; round++) for (const spec of configs(o)) {
      const label = specLabel(spec);
      const of = o.rounds > 1 ? ` (round ${round + 1} of ${o.rounds})` : '';
      const profileDir = o.cpuProfDir && spec.kind !== 'external' ? resolve(o.cpuProfDir, label.replace(/\s+/g, '-')) : undefined;
      if (profileDir) mkdirSync(profileDir, { recursive: true });
      o.progress(`${label}: starting${of}`);
      let term;
      try {
        term = await startTerminator(spec, {
          backendPort,
          files,
          verbose: o.verbose ?? false,
          ...(profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] } : {}),
        });
      } catch (e) {
        failures.push({ terminator: label, workload: null, error: e instanceof Error ? e.message : String(e) });
        o.progress(`${label}: failed to start: ${failures.at(-1)!.error}`);
        continue;
      }
      if (term.protection) o.progress(`${label}: record protection ${term.protection}`);
      try {
        for (const workload of o.workloads) {
          const id = nextId++;
          load.send({
            cmd: 'run',
            id,
            port: term.port,
            workload,
            connections: o.connections,
            warmupMs: Math.round(o.warmupSeconds * 1000),
            measureMs: Math.round(o.seconds * 1000),
          });
          try {
            const first = await load.next(['start', 'failed'], o.warmupSeconds * 1000 + 30_000, id);
            if (first.ev === 'failed') throw new Error(String(first.error));
            const cpu0 = treeCpuSeconds(term.pid);
            const t0 = performance.now();
            const w0 = monotonicUs();
            const end = await load.next(['end', 'failed'], o.seconds * 1000 + 15_000, id);
            const cpu1 = treeCpuSeconds(term.pid);
            const t1 = performance.now();
            if (end.ev === 'failed') throw new Error(String(end.error));
            if (profileDir) windows.set(profileDir, [...(windows.get(profileDir) ?? []), [w0, monotonicUs()]]);
            const r = await load.next<LoadResult & { ev: string; error?: string }>(['result', 'failed'], 20_000, id);
            if (r.ev === 'failed') throw new Error(String(r.error));
            const m = figures(spec, term.protection, r, cpu1 - cpu0, (t1 - t0) / 1000);
            raw.push(m);
            o.progress(
              `${label}: ${workload}: ${m.mbPerSecond !== null ? `${m.mbPerSecond.toFixed(1)} MB/s` : `${m.perSecond.toFixed(0)}/s`}, ` +
                `${m.terminatorCores.toFixed(2)} cores${m.errors ? `, ${m.errors} errors (${m.firstError})` : ''}`,
            );
          } catch (e) {
            failures.push({ terminator: label, workload, error: e instanceof Error ? e.message : String(e) });
            o.progress(`${label}: ${workload}: failed: ${failures.at(-1)!.error}`);
            if (!load.running) throw e;
            await load.next('result', 20_000, id).catch(() => undefined);
          }
        }
      } finally {
        await term.stop();
      }
      // Memory on a fresh process of its own: workloads before would leave free heap that
      // new connections fill without growing it, and thousands of handshakes before the
      // workloads would change what they measure.
      if (o.idleConnections > 0 && round === 0) {
        const fresh = await startTerminator(spec, { backendPort, files, verbose: o.verbose ?? false }).catch((e: unknown) => {
          failures.push({ terminator: label, workload: null, error: `idle connections: ${e instanceof Error ? e.message : String(e)}` });
          return null;
        });
        if (fresh) {
          try {
            const m = await idleMemory(load, fresh.pid, fresh.port, nextId++, o.idleConnections, o.idleSettleSeconds * 1000);
            memory.push({ terminator: label, ...m });
            o.progress(`${label}: ${m.connections} idle connections: ${(m.bytesPerConnection / 1024).toFixed(1)} KiB each`);
          } catch (e) {
            failures.push({ terminator: label, workload: null, error: `idle connections: ${e instanceof Error ? e.message : String(e)}` });
            if (!load.running) throw e;
          } finally {
            await fresh.stop();
          }
        }
      }
    }
  } finally {
    await Promise.all([load.stop({ gentle: true, graceMs: 5000 }), backend.stop({ gentle: true, graceMs: 5000 })]);
    dispose();
  }

  const measurements = withRatios(medianRounds(raw));
  const checks = targets(measurements);
  mkdirSync(o.outDir, { recursive: true });
  const ts = stamp();
  const jsonPath = join(o.outDir, `bench-${ts}.json`);
  const svgPath = join(o.outDir, `throughput-per-core-${ts}.svg`);
  const cpus = os.cpus();
  const host = { platform: `${os.platform()} ${os.release()}`, cpus: cpus.length, model: cpus[0]?.model.trim() ?? 'unknown', clockTicks: clockTicks() };
  writeFileSync(svgPath, chart(measurements, `${o.command} — ${host.cpus} x ${host.model}, Node ${process.version}, ${startedAt}`));
  const report: BenchReport = {
    startedAt,
    command: o.command,
    node: process.version,
    host,
    options: {
      relays: o.relays,
      replication: o.replication,
      protection: o.protection,
      ...(o.tickets ? { tickets: o.tickets } : {}),
      workloads: o.workloads,
      seconds: o.seconds,
      warmupSeconds: o.warmupSeconds,
      rounds: o.rounds,
      connections: o.connections,
      idleConnections: o.idleConnections,
      idleSettleSeconds: o.idleSettleSeconds,
      external: o.external ?? null,
    },
    measurements,
    memory,
    failures,
    targets: checks,
    files: { json: relative(process.cwd(), jsonPath), svg: relative(process.cwd(), svgPath), ...(o.cpuProfDir ? { profiles: o.cpuProfDir } : {}) },
    elapsedSeconds: (performance.now() - started) / 1000,
  };
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);

  const load1 = os.loadavg()[0]!.toFixed(1);
  o.out(`baton bench: ${host.cpus} x ${host.model}, Node ${process.version}, load average ${load1}; ${o.seconds} s per workload after ${o.warmupSeconds} s of warm-up${o.rounds > 1 ? `, ${o.rounds} rounds (each figure their median)` : ''}, ${o.connections} connections; MB = 10^6 bytes`);
  const seen = [...new Set(raw.flatMap((m) => (m.recordProtection ? [`${m.terminator}: ${m.recordProtection}`] : [])))];
  if (seen.length) o.out(`record protection (from each Baton's start line): ${seen.join('; ')}`);
  o.out('');
  for (const line of formatTable(measurements)) o.out(line);
  o.out('');
  o.out('targets (ratios of the figure per CPU-second of the terminator process, all threads):');
  for (const line of formatTargets(checks)) o.out(line);
  if (memory.length) {
    o.out('');
    o.out(`memory per idle connection (growth of the freshly started terminator's resident memory, all threads, with ${o.idleConnections} connections opened and left idle ${o.idleSettleSeconds} s):`);
    for (const line of formatMemory(memory)) o.out(line);
  }
  for (const f of failures) o.out(`FAILED ${f.terminator}${f.workload ? ` ${f.workload}` : ''}: ${f.error}`);
  o.out('');
  o.out(`json: ${report.files.json}`);
  o.out(`chart: ${report.files.svg}`);
  if (o.cpuProfDir) {
    o.out('');
    o.out(`CPU profiles (${o.cpuProfDir}), top self time per thread:`);
    for (const [dir, ws] of windows) for (const s of summarizeDir(dir, PACKAGE_ROOT, 12, ws)) for (const line of formatSummary(s)) o.out(line);
  }
  return report;
}
