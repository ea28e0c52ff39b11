/**
 * `baton reload`: asks a running cluster to reload its configuration file (or to
 * load `--file PATH`) through its admin API (`POST /config`), and prints the
 * outcome: the version now active, or why it was refused and which version the
 * cluster stays on.
 *
 * Exit codes: 0 when the version is active, 1 when a relay refused it (the rollout
 * was aborted), 2 for a malformed file (the message names the file and the field)
 * or a usage error.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { ConfigResponse } from '../cluster/admin-api.js';
import { shortDigest } from '../cluster/config-version.js';
import { adminOptions, callAdmin, resolveAdmin, type RawAdminFlags } from './admin-client.js';
import { CliError, EXIT_FAILURE } from './errors.js';

interface RawReloadFlags extends RawAdminFlags {
  readonly file?: string;
  readonly json?: boolean;
}

/** The one line `baton reload` prints for an answer of `POST /config`. */
export function formatReload(r: ConfigResponse): string {
  if (!r.ok) return `reload refused: ${r.error}; still on version ${r.version}`;
  const head = `configuration version ${r.version} ${r.unchanged ? 'unchanged' : 'active'} (digest ${shortDigest(r.digest)})`;
  return [head, ...r.warnings.map((w) => `warning: ${w}`)].join('\n');
}

/** A rollout waits for every relay (a restarting one too): give it longer than a status request. */
const RELOAD_TIMEOUT_MS = 60_000;

/** Registers `reload` on the program. */
export function registerReloadCommand(program: Command): void {
  adminOptions(
    program
      .command('reload')
      .option('--file <path>', 'load this configuration file instead of the one the cluster was started with (--config)'),
  )
    .option('--json', 'print the admin API answer as JSON')
    .action(async (raw: RawReloadFlags) => {
      if (raw.file === '') throw new CliError('--file is empty: give a file path');
      // The cluster may run in another directory: send an absolute path.
      const body = raw.file === undefined ? {} : { path: resolve(raw.file) };
      const target = await resolveAdmin(raw);
      // Sent once (a reload is not idempotent); 422 is an answer: a relay refused the version.
      const answer = (await callAdmin(target, 'POST', '/config', body, {
        timeoutMs: RELOAD_TIMEOUT_MS,
        accept: [422],
        badRequest: 'configuration not loaded',
        noAnswerHint: 'the reload may still complete: see `baton status`',
      })) as ConfigResponse;
      process.stdout.write(raw.json ? `${JSON.stringify(answer)}\n` : `${formatReload(answer)}\n`);
      if (!answer.ok) process.exitCode = EXIT_FAILURE;
    });
}
