/**
 * The `baton` command: a commander program with one module per subcommand.
 * Run by tsx (`npm run baton -- ...`) or through `bin/baton.mjs`.
 *
 * Exit codes: 0 after a clean run, 2 for a usage or configuration error (bad
 * flag, unreadable file, port in use), 1 for a failure after a valid start.
 * Errors are one line on stderr, never a stack trace.
 */
import { Command, CommanderError } from 'commander';
import { registerBenchCommand } from './bench-command.js';
import { registerClusterCommand } from './cluster-command.js';
import { registerCrashCommand } from './crash-command.js';
import { registerDemoCommand } from './demo-command.js';
import { registerReloadCommand } from './reload-command.js';
import { registerStatusCommand } from './status-command.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './errors.js';

/** The program with every subcommand registered. */
export function buildProgram(): Command {
  const program = new Command('baton')
    .description('a TLS 1.3 relay cluster on worker-thread actors')
    // Throw instead of exiting, so every exit goes through main() with our codes.
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`baton: ${text}`) })
    .showHelpAfterError('(add --help for usage)');
  // Subcommands inherit the settings above. One register*Command() per subcommand:
  // bench, crash and status are added here as they are built.
  registerClusterCommand(program);
  registerBenchCommand(program);
  registerDemoCommand(program);
  registerCrashCommand(program);
  registerStatusCommand(program);
  registerReloadCommand(program);
  return program;
}

/** Parses argv, runs the chosen subcommand, and returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has already printed its message (or the help).
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

// Worker threads or sockets a failed start left behind must not keep the process alive.
process.exit(await main(process.argv));
