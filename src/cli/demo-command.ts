/**
 * `baton demo` (what `npm start` runs): a cluster, an echo backend, verifying
 * clients and a crash of a random relay every few seconds, with a live view on a
 * terminal; for a time (`--duration`) or until a number of crashes (`--crashes`, a
 * soak). Exits 1 if any byte or connection was lost, any client saw an error or any
 * connection was quarantined.
 *
 * With `--nodes N` (2 to 5) it runs N nodes joined over a nats-server of their own
 * instead, and kills one whole node part way (demo/nodes-demo.ts); it exits 1 if any
 * error happened that the node's death does not explain, or if a client of the killed
 * node did not come back resumed on a surviving node.
 */
import type { Command } from 'commander';
import { FAULT_KINDS, type FaultKind } from '../actors/index.js';
import { findNatsServer } from '../cluster/nats-server-process.js';
import { runDemo } from './demo/demo.js';
import { MAX_NODES, MIN_NODES, runNodesDemo } from './demo/nodes-demo.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE, parseWholeNumber } from './errors.js';

interface RawDemoFlags {
  relays: string;
  clients: string;
  duration?: string;
  crashes?: string;
  crashEvery?: string;
  crashInterval?: string;
  crashKinds: string;
  watchdogMs: string;
  live: boolean;
  nodes?: string;
}

/** The single-node demo's relay-crash flags, which `--nodes` does not take. */
const RELAY_CRASH_FLAGS = { crashes: '--crashes', crashEvery: '--crash-every', crashInterval: '--crash-interval', crashKinds: '--crash-kinds' } as const;

/** Relays on each node of `--nodes` unless `--relays` says otherwise: few threads, as every node shares this machine. */
const NODE_RELAYS = 2;

/** Longest time between crashes, in seconds. */
const MAX_INTERVAL_S = 3600;

/**
 * `--crash-interval`: seconds between crashes, one value (`2`, `0.5`) or a range drawn
 * from uniformly each time (`0.3-1`); in milliseconds.
 */
export function parseCrashInterval(value: string): { min: number; max: number } {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:-\s*(\d+(?:\.\d+)?)\s*)?$/.exec(value);
  const min = m ? Math.round(Number(m[1]) * 1000) : NaN;
  const max = m ? Math.round(Number(m[2] ?? m[1]) * 1000) : NaN;
  if (!(min >= 10 && max >= min && max <= MAX_INTERVAL_S * 1000)) {
    throw new CliError(`--crash-interval must be seconds (e.g. 2 or 0.5) or a range MIN-MAX (e.g. 0.3-1), from 0.01 to ${MAX_INTERVAL_S}, got "${value}"`);
  }
  return { min, max };
}

/** `--crash-kinds`: `all`, or kinds separated by commas (throw,exit,terminate,oom,hang). */
export function parseCrashKinds(value: string): FaultKind[] {
  if (value.trim() === 'all') return [...FAULT_KINDS];
  const kinds: FaultKind[] = [];
  for (const part of value.split(',')) {
    const kind = FAULT_KINDS.find((k) => k === part.trim());
    if (!kind) throw new CliError(`--crash-kinds must be "all" or a list of ${FAULT_KINDS.join(', ')}, got "${part.trim()}"`);
    if (!kinds.includes(kind)) kinds.push(kind);
  }
  return kinds;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .option('--relays <n>', 'relay actors (with --nodes: on each node, default 2)', '3')
    .option('--clients <n>', 'TLS clients streaming and verifying data', '8')
    .option('--duration <s>', 'how long to run, in seconds (default 30; with --crashes: no time limit)')
    .option('--crashes <n>', 'stop after this many relay crashes (a soak)')
    .option('--crash-every <s>', 'whole seconds between injected crashes (default 3)')
    .option('--crash-interval <s>', 'seconds between injected crashes, or a range drawn from each time, e.g. 0.3-1')
    .option('--crash-kinds <kinds>', `crash kinds to draw from: all, or a list of ${FAULT_KINDS.join(',')}`, 'all')
    .option('--watchdog-ms <ms>', 'heartbeat deadline for hung relays', '1000')
    .option('--no-live', 'print a line per interval instead of redrawing (the default off a terminal)')
    .option(
      '--nodes <n>',
      `run ${MIN_NODES} to ${MAX_NODES} nodes joined over a nats-server (needed on the PATH) and kill one whole node half way: its clients resume on the others`,
    )
    .action(async (raw: RawDemoFlags, cmd: Command) => {
      if (raw.nodes !== undefined) {
        process.exitCode = await runNodes(raw, cmd);
        return;
      }
      if (raw.crashEvery !== undefined && raw.crashInterval !== undefined) throw new CliError('give --crash-every or --crash-interval, not both');
      const every = raw.crashEvery === undefined ? null : parseWholeNumber('--crash-every', raw.crashEvery, 1, MAX_INTERVAL_S, 'seconds') * 1000;
      const crashes = raw.crashes === undefined ? null : parseWholeNumber('--crashes', raw.crashes, 1, 10_000_000);
      const duration = raw.duration === undefined ? null : parseWholeNumber('--duration', raw.duration, 1, 86_400, 'seconds') * 1000;
      // The first Ctrl-C (or SIGTERM) ends the run early with its summary; a second one kills.
      const stop = new AbortController();
      const onSignal = () => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        stop.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const summary = await runDemo({
        stop: stop.signal,
        relays: parseWholeNumber('--relays', raw.relays, 2, 64),
        clients: parseWholeNumber('--clients', raw.clients, 1, 1000),
        durationMs: duration ?? (crashes === null ? 30_000 : null),
        crashes,
        crashIntervalMs: raw.crashInterval !== undefined ? parseCrashInterval(raw.crashInterval) : { min: every ?? 3000, max: every ?? 3000 },
        crashKinds: parseCrashKinds(raw.crashKinds),
        watchdogMs: parseWholeNumber('--watchdog-ms', raw.watchdogMs, 50, 3_600_000, 'milliseconds'),
        live: raw.live && process.stdout.isTTY === true,
        out: process.stdout,
      });
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.exitCode = summary.ok ? 0 : EXIT_FAILURE;
    });
}

/** `baton demo --nodes N`: checks the flags and that nats-server is there, runs it, and returns the exit code. */
async function runNodes(raw: RawDemoFlags, cmd: Command): Promise<number> {
  const nodes = parseWholeNumber('--nodes', raw.nodes!, MIN_NODES, MAX_NODES);
  for (const [key, flag] of Object.entries(RELAY_CRASH_FLAGS)) {
    if (cmd.getOptionValueSource(key) === 'cli') throw new CliError(`${flag} injects relay crashes in the single-node demo; with --nodes the demo kills a whole node instead`);
  }
  if (findNatsServer() === null) {
    const where = process.env.NATS_SERVER ? `NATS_SERVER names ${process.env.NATS_SERVER}, which does not exist` : 'it is not on the PATH';
    throw new CliError(
      `--nodes needs nats-server (NATS with JetStream) and ${where}: install it (e.g. apt-get install nats-server), or set NATS_SERVER to its path`,
      EXIT_USAGE,
    );
  }
  const durationMs = parseWholeNumber('--duration', raw.duration ?? '30', 2, 86_400, 'seconds') * 1000;
  const stop = new AbortController();
  // The first Ctrl-C (or SIGTERM) ends the run early, with its clean-up and summary; a second
  // one exits at once, the processes the run started killed on the way out (nodes-demo.ts).
  let signals = 0;
  const onSignal = () => {
    if (++signals === 1) {
      process.stderr.write('baton: stopping (signal): the clients finish, then the nodes and nats-server stop; again to exit at once\n');
      return stop.abort();
    }
    process.stderr.write('baton: stopped at once (second signal); the nodes and nats-server are killed\n');
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const summary = await runNodesDemo({
      nodes,
      relays: cmd.getOptionValueSource('relays') === 'cli' ? parseWholeNumber('--relays', raw.relays, 2, 64) : NODE_RELAYS,
      clients: parseWholeNumber('--clients', raw.clients, 1, 1000),
      durationMs,
      killAtMs: durationMs / 2,
      watchdogMs: parseWholeNumber('--watchdog-ms', raw.watchdogMs, 50, 3_600_000, 'milliseconds'),
      out: process.stdout,
      stop: stop.signal,
    });
    return summary.ok ? 0 : EXIT_FAILURE;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new CliError(stop.signal.aborted ? `stopped (signal) before the nodes were up; everything started was stopped` : `demo --nodes ${nodes}: ${why}`, EXIT_FAILURE);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
