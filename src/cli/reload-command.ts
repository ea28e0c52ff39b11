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
import { AdminUnreachableError, adminRequest, type AdminAnswer, type ConfigResponse } from '../cluster/admin-api.js';
import { shortDigest } from '../cluster/config-version.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './errors.js';
import { adminOptions, resolveAdmin, type AdminTarget, type RawAdminFlags } from './status-command.js';

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

/**
 * Sends `POST /config` once (a reload is not idempotent: never retried) and returns
 * the answer when it is 200 or 422; every other outcome becomes a CliError.
 */
async function postConfig(target: AdminTarget, body: { path?: string }): Promise<ConfigResponse> {
  let answer: AdminAnswer;
  try {
    answer = await adminRequest(target.at, target.token, 'POST', '/config', body, RELOAD_TIMEOUT_MS);
  } catch (e) {
    if (!(e instanceof AdminUnreachableError)) throw e;
    if (e.osCode === 'ECONNREFUSED') throw new CliError(`no cluster answers at ${target.label} — is \`baton cluster\` running?`, EXIT_FAILURE);
    throw new CliError(`the admin API at ${target.label} did not answer: ${e.message} (the reload may still complete: see \`baton status\`)`, EXIT_FAILURE);
  }
  let json: unknown;
  try {
    json = JSON.parse(answer.text);
  } catch {
    throw new CliError(`${target.label} answered ${answer.status} with something that is not JSON: is it a baton admin API?`, EXIT_FAILURE);
  }
  if (answer.status === 200 || answer.status === 422) return json as ConfigResponse;
  if (answer.status === 401) {
    throw new CliError(`the cluster at ${target.label} refused the token in "${target.tokenFile}" (401): is that the token file of this cluster?`, EXIT_USAGE);
  }
  const error = typeof json === 'object' && json !== null && 'error' in json ? String(json.error) : answer.text.trim();
  if (answer.status === 400) throw new CliError(`configuration not loaded: ${error}`, EXIT_USAGE);
  throw new CliError(`the cluster refused: ${error} (HTTP ${answer.status})`, answer.status >= 500 ? EXIT_FAILURE : EXIT_USAGE);
}

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
      const answer = await postConfig(target, body);
      process.stdout.write(raw.json ? `${JSON.stringify(answer)}\n` : `${formatReload(answer)}\n`);
      if (!answer.ok) process.exitCode = EXIT_FAILURE;
    });
}
