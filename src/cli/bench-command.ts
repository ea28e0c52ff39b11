/**
 * `baton bench`: throughput per core, handshakes per core and latency of Baton
 * side by side with Node's own `tls` (and optionally an external terminator
 * such as HAProxy or stunnel) in one run. The harness is in src/bench/.
 *
 * Exit code 0 when every configuration was measured (targets are reported, not
 * enforced), 1 when a terminator or workload failed, 2 for a bad flag.
 */
import { resolve } from 'node:path';
import { Command } from 'commander';
import { runBench, type BenchOptions } from '../bench/run.js';
import { WORKLOADS, type Workload } from '../bench/workloads.js';
import { CliError, EXIT_FAILURE, parseWholeNumber } from './errors.js';
import { CLUSTER_DEFAULTS, MAX_RELAYS } from './cluster-flags.js';

export interface RawBenchFlags {
  readonly relays?: string;
  readonly maxRelays?: string;
  readonly replication?: string;
  readonly recordProtection?: string;
  readonly tickets?: string;
  readonly workloads?: string;
  readonly seconds?: string;
  readonly warmup?: string;
  readonly rounds?: string;
  readonly connections?: string;
  readonly idleConnections?: string;
  readonly idleSettle?: string;
  readonly external?: string;
  readonly externalName?: string;
  readonly outDir?: string;
  readonly cpuProf?: string;
  readonly quick?: boolean;
  readonly verbose?: boolean;
}

export type BenchFlags = Omit<BenchOptions, 'out' | 'progress' | 'command'>;

/** What `--quick` runs (the harness test): one relay, replication on, two short workloads. */
export const QUICK = { relays: '1', replication: 'on', recordProtection: 'native', workloads: 'bulk-up,handshake', seconds: '0.3', warmup: '0.2', connections: '2', idleConnections: '20', idleSettle: '0.5' } as const;

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .option('--relays <list>', `relay counts to run, e.g. 1..4 or 1,2,4 (default: ${CLUSTER_DEFAULTS.relays}, what baton cluster runs)`)
    .option('--max-relays <n>', 'shorthand for --relays 1..n')
    .option('--replication <list>', 'on, off, or on,off', 'on,off')
    .option('--record-protection <list>', 'native, node:crypto (BATON_NATIVE=0), or both', 'native,node:crypto')
    .option('--tickets <list>', 'session tickets of the Baton runs: stateless, stateful, or stateless,stateful (default: stateless)')
    .option('--workloads <list>', `comma-separated, from ${WORKLOADS.join(', ')} (default: all)`)
    .option('--seconds <s>', 'measured seconds per workload', '3')
    .option('--warmup <s>', 'warm-up seconds per workload', '0.5')
    .option('--rounds <n>', 'run every terminator and workload n times, in turn, and report each figure\'s median (these machines move by 10-15% from run to run)', '1')
    .option('--connections <n>', 'concurrent connections (or handshake loops) of the load generator', '16')
    .option('--idle-connections <n>', 'connections opened and left idle on a fresh terminator, for memory per connection (0: skip)', '2000')
    .option('--idle-settle <s>', 'seconds they stay idle before memory is read (V8 gives back handshake garbage after some seconds of quiet)', '12')
    .option('--external <template>', 'also measure this terminator command; {port} {backend} {backendPort} {cert} {key} {pem} are substituted')
    .option('--external-name <name>', 'name of the external terminator in the table (default: its command)')
    .option('--out-dir <dir>', 'where the JSON and the SVG chart go (default: bench/results under the current folder)')
    .option('--cpu-prof <dir>', 'run the Node terminators under --cpu-prof into <dir> and print their top functions')
    .option('--quick', `a tiny run for tests (--relays ${QUICK.relays} --replication ${QUICK.replication} --workloads ${QUICK.workloads} --seconds ${QUICK.seconds})`)
    .option('--verbose', "echo the terminators' and load generator's stderr")
    .action(async (raw: RawBenchFlags, cmd: Command) => {
      // With --quick, only the flags given on the command line override the quick values.
      const given = (name: string) => cmd.getOptionValueSource(name) === 'cli';
      const q = raw.quick === true;
      const pick = <K extends keyof typeof QUICK & keyof RawBenchFlags>(k: K): string | undefined => (q && !given(k) ? QUICK[k] : (raw[k] as string | undefined));
      const flags = parseBenchFlags({
        ...raw,
        relays: pick('relays'),
        replication: pick('replication'),
        recordProtection: pick('recordProtection'),
        workloads: pick('workloads'),
        seconds: pick('seconds'),
        warmup: pick('warmup'),
        connections: pick('connections'),
        idleConnections: pick('idleConnections'),
        idleSettle: pick('idleSettle'),
      });
      const report = await runBench({
        ...flags,
        command: ['baton', ...process.argv.slice(2)].join(' '),
        out: (line) => process.stdout.write(`${line}\n`),
        progress: (line) => process.stderr.write(`baton bench: ${line}\n`),
      });
      if (report.failures.length > 0 || report.measurements.length === 0) process.exitCode = EXIT_FAILURE;
    });
}

function parseSeconds(flag: string, value: string, min: number, max: number): number {
  const n = /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isFinite(n) || n < min || n > max) throw new CliError(`${flag} must be a number of seconds from ${min} to ${max}, got "${value}"`);
  return n;
}

function parseRelayList(value: string): number[] {
  const range = /^\s*(\d+)\s*\.\.\s*(\d+)\s*$/.exec(value);
  let list: number[];
  if (range) {
    const a = Number(range[1]);
    const b = Number(range[2]);
    if (a < 1 || b < a) throw new CliError(`--relays range "${value}" must be low..high with 1 <= low <= high`);
    list = Array.from({ length: b - a + 1 }, (_, i) => a + i);
  } else {
    list = value.split(',').map((s) => parseWholeNumber('--relays', s, 1, MAX_RELAYS));
  }
  if (list.some((n) => n > MAX_RELAYS)) throw new CliError(`--relays: at most ${MAX_RELAYS} relays`);
  return [...new Set(list)].sort((x, y) => x - y);
}

/** Checks every flag; throws CliError naming the first bad one. */
export function parseBenchFlags(raw: RawBenchFlags): BenchFlags {
  if (raw.relays !== undefined && raw.maxRelays !== undefined) throw new CliError('give --relays or --max-relays, not both');
  const relays =
    raw.relays !== undefined
      ? parseRelayList(raw.relays)
      : raw.maxRelays !== undefined
        ? parseRelayList(`1..${parseWholeNumber('--max-relays', raw.maxRelays, 1, MAX_RELAYS)}`)
        : parseRelayList(CLUSTER_DEFAULTS.relays);
  const replication = (raw.replication ?? 'on,off').split(',').map((s) => {
    const t = s.trim();
    if (t === 'on') return true;
    if (t === 'off') return false;
    throw new CliError(`--replication must be on, off or on,off, got "${raw.replication}"`);
  });
  const protection = (raw.recordProtection ?? 'native,node:crypto').split(',').map((s) => {
    const t = s.trim();
    if (t === 'native' || t === 'node:crypto') return t;
    throw new CliError(`--record-protection must be native, node:crypto or both, got "${raw.recordProtection}"`);
  });
  const tickets = (raw.tickets ?? 'stateless').split(',').map((s) => {
    const t = s.trim();
    if (t === 'stateless' || t === 'stateful') return t;
    throw new CliError(`--tickets must be stateless, stateful or both, got "${raw.tickets}"`);
  });
  const workloads = (raw.workloads ?? WORKLOADS.join(',')).split(',').map((s) => {
    const w = WORKLOADS.find((x) => x === s.trim());
    if (!w) throw new CliError(`--workloads: unknown workload "${s.trim()}" (one of ${WORKLOADS.join(', ')})`);
    return w;
  });
  const external =
    raw.external === undefined
      ? undefined
      : (() => {
          if (!raw.external.includes('{port}')) throw new CliError('--external must contain {port}: the address the command listens on');
          return { template: raw.external, name: raw.externalName ?? raw.external.trim().split(/\s+/)[0]!.split('/').pop()! };
        })();
  return {
    relays,
    replication: [...new Set(replication)],
    protection: [...new Set(protection)],
    ...(raw.tickets !== undefined ? { tickets: [...new Set(tickets)] } : {}),
    workloads: [...new Set<Workload>(workloads)],
    seconds: parseSeconds('--seconds', raw.seconds ?? '3', 0.1, 600),
    warmupSeconds: parseSeconds('--warmup', raw.warmup ?? '0.5', 0, 60),
    rounds: parseWholeNumber('--rounds', raw.rounds ?? '1', 1, 9),
    connections: parseWholeNumber('--connections', raw.connections ?? '16', 1, 1000),
    idleConnections: parseWholeNumber('--idle-connections', raw.idleConnections ?? '2000', 0, 100_000),
    idleSettleSeconds: parseSeconds('--idle-settle', raw.idleSettle ?? '12', 0, 600),
    ...(external ? { external } : {}),
    outDir: resolve(raw.outDir ?? 'bench/results'),
    ...(raw.cpuProf !== undefined ? { cpuProfDir: resolve(raw.cpuProf) } : {}),
    verbose: raw.verbose === true,
  };
}
