/**
 * The `baton` command: a commander program with one module per subcommand. Only the
 * subcommand that runs is loaded (with what it imports); the others are registered by
 * name and summary, so `baton --help` lists them without loading any. `bin/baton.mjs`
 * calls {@link main} and exits with its code.
 *
 * Exit codes: 0 after a clean run, 2 for a usage or configuration error (bad
 * flag, unreadable file, port in use), 1 for a failure after a valid start.
 * Errors are one line on stderr, never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './errors.js';

type Register = (program: Command) => void;

/** A subcommand: its name, its one line in `baton --help`, and the module that registers it. */
interface Subcommand {
  readonly name: string;
  readonly summary: string;
  readonly load: () => Promise<Register>;
}

/** Every subcommand, in help order. */
export const SUBCOMMANDS: readonly Subcommand[] = [
  {
    name: 'cluster',
    summary: 'run a local relay cluster until SIGINT or SIGTERM',
    load: async () => (await import('./cluster-command.js')).registerClusterCommand,
  },
  {
    name: 'bench',
    summary: "throughput and handshakes per CPU-second, and latency, side by side with Node's tls (loopback)",
    load: async () => (await import('./bench-command.js')).registerBenchCommand,
  },
  {
    name: 'demo',
    summary: 'a local cluster, an echo backend, verifying clients and injected relay crashes, with a live view',
    load: async () => (await import('./demo-command.js')).registerDemoCommand,
  },
  {
    name: 'crash',
    summary: 'crash a relay of a running cluster (its connections carry on on another relay)',
    load: async () => (await import('./crash-command.js')).registerCrashCommand,
  },
  {
    name: 'status',
    summary: 'show the relays, connections and takeovers of a running cluster',
    load: async () => (await import('./status-command.js')).registerStatusCommand,
  },
  {
    name: 'reload',
    summary: 'reload the configuration file of a running cluster (new handshakes use it; open connections keep theirs)',
    load: async () => (await import('./reload-command.js')).registerReloadCommand,
  },
];

/** The package's version, from its package.json (two folders up from src/cli/ and from dist/cli/ alike). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/**
 * The subcommand `argv` (node, script, ...args) names, if any: the first argument that
 * is not an option, or the one after `help`. Top-level options take no values, so the
 * first plain word is the subcommand.
 */
export function chosenSubcommand(argv: readonly string[]): string | undefined {
  const words = argv.slice(2).filter((a) => !a.startsWith('-'));
  return words[0] === 'help' ? words[1] : words[0];
}

/**
 * The program for `argv`: the chosen subcommand loaded and registered in full, every
 * other one registered by name and summary only (enough for the help and for
 * commander's "unknown command" suggestions).
 */
export async function buildProgram(argv: readonly string[]): Promise<Command> {
  const program = new Command('baton')
    .description('a TLS 1.3 relay cluster on worker-thread actors')
    .version(version(), '-V, --version', 'print the version and exit')
    // Throw instead of exiting, so every exit goes through main() with our codes.
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`baton: ${text}`) })
    .showHelpAfterError('(add --help for usage)');
  // Subcommands inherit the settings above.
  const chosen = chosenSubcommand(argv);
  for (const sub of SUBCOMMANDS) {
    if (sub.name === chosen) {
      (await sub.load())(program);
      program.commands.at(-1)!.description(sub.summary);
    } else {
      program.command(sub.name).description(sub.summary);
    }
  }
  return program;
}

/** Parses argv, runs the chosen subcommand, and returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await (await buildProgram(argv)).parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has already printed its message (or the help, or the version).
      return e.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (e instanceof CliError) {
      process.stderr.write(`baton: error: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`baton: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_FAILURE;
  }
}
