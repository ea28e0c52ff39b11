/**
 * `baton demo` (what `npm start` runs): a cluster, an echo backend, verifying
 * clients and a crash of a random relay every few seconds, with a live view on a
 * terminal; exits 1 if any byte was lost or any client saw an error.
 */
import type { Command } from 'commander';
import { runDemo } from './demo/demo.js';
import { EXIT_FAILURE, parseWholeNumber } from './errors.js';

interface RawDemoFlags {
  relays: string;
  clients: string;
  duration: string;
  crashEvery: string;
  watchdogMs: string;
  live: boolean;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('a local cluster, an echo backend, verifying clients and injected relay crashes, with a live view')
    .option('--relays <n>', 'relay actors', '3')
    .option('--clients <n>', 'TLS clients streaming and verifying data', '8')
    .option('--duration <s>', 'how long to run, in seconds', '30')
    .option('--crash-every <s>', 'seconds between injected crashes', '3')
    .option('--watchdog-ms <ms>', 'heartbeat deadline for hung relays', '1000')
    .option('--no-live', 'print a line per interval instead of redrawing (the default off a terminal)')
    .action(async (raw: RawDemoFlags) => {
      const summary = await runDemo({
        relays: parseWholeNumber('--relays', raw.relays, 2, 64),
        clients: parseWholeNumber('--clients', raw.clients, 1, 1000),
        durationMs: parseWholeNumber('--duration', raw.duration, 1, 86_400, 'seconds') * 1000,
        crashEveryMs: parseWholeNumber('--crash-every', raw.crashEvery, 1, 3600, 'seconds') * 1000,
        watchdogMs: parseWholeNumber('--watchdog-ms', raw.watchdogMs, 50, 3_600_000, 'milliseconds'),
        live: raw.live && process.stdout.isTTY === true,
        out: process.stdout,
      });
      process.exitCode = summary.ok ? 0 : EXIT_FAILURE;
    });
}
