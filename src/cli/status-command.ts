/**
 * `baton status`: asks a running cluster's admin API for `/status` and prints a
 * table of relays (thread, up, restarts, placement, last crash) and a summary line
 * (connections, takeovers with p50/p99, quarantined, lost, replication lag), and while
 * the cluster drains a line with since when, the deadline and the connections left;
 * `--json` prints the API's answer as it is.
 *
 * Also the admin API client the other operator commands share: with no flags it
 * finds the local cluster at the default admin address and token file, as
 * `redis-cli` finds a local Redis.
 */
import type { Command } from 'commander';
import { AdminUnreachableError, adminRequest, probe, type StatusResponse } from '../cluster/admin-api.js';
import { DEFAULT_ADMIN, TokenFileError, defaultTokenFile, readTokenFile } from '../cluster/token.js';
import type { HostPort } from '../util/host-port.js';
import { formatHostPort, parseAdminAddress } from './cluster-flags.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './errors.js';

/** `--admin` and `--token-file` as commander hands them over. */
export interface RawAdminFlags {
  readonly admin?: string;
  readonly tokenFile?: string;
}

/** Adds `--admin` and `--token-file` (same defaults as `baton cluster`) to a command. */
export function adminOptions(command: Command): Command {
  return command
    .option('--admin <host:port>', `admin API of the cluster (default: "${DEFAULT_ADMIN.host}:${DEFAULT_ADMIN.port}")`)
    .option('--token-file <path>', `admin token file the cluster wrote (default: "${defaultTokenFile(DEFAULT_ADMIN.port)}", admin-PORT.token for another port)`);
}

/** A reachable cluster's admin API and the token to present. */
export interface AdminTarget {
  readonly at: HostPort;
  readonly label: string;
  readonly token: string;
  readonly tokenFile: string;
}

/**
 * Resolves the admin address and reads the token. A missing token file where no
 * cluster answers either is reported as "no cluster answers", the likelier cause.
 */
export async function resolveAdmin(raw: RawAdminFlags): Promise<AdminTarget> {
  const parsed = raw.admin === undefined ? DEFAULT_ADMIN : parseAdminAddress(raw.admin, { allowPortZero: false, allowOff: false });
  if (parsed === 'off') throw new CliError('--admin off: there is no admin API to talk to');
  const at = { host: parsed.host, port: parsed.port };
  const label = formatHostPort(at.host, at.port);
  if (raw.tokenFile === '') throw new CliError('--token-file is empty: give a file path');
  const tokenFile = raw.tokenFile ?? defaultTokenFile(at.port);
  try {
    return { at, label, token: await readTokenFile(tokenFile), tokenFile };
  } catch (e) {
    if (!(e instanceof TokenFileError)) throw e;
    if (e.osCode === 'ENOENT' && !(await probe(at))) throw noCluster(label);
    throw new CliError(`${e.message}${raw.tokenFile === undefined ? ' (pass --token-file with the path `baton cluster` printed)' : ''}`);
  }
}

function noCluster(label: string): CliError {
  return new CliError(`no cluster answers at ${label} — is \`baton cluster\` running?`, EXIT_FAILURE);
}

/** Sends one request; turns every failure into a CliError that says what to check. Returns the parsed JSON. */
export async function callAdmin(target: AdminTarget, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  let answer;
  try {
    answer = await adminRequest(target.at, target.token, method, path, body);
  } catch (e) {
    if (e instanceof AdminUnreachableError) {
      if (e.osCode === 'ECONNREFUSED') throw noCluster(target.label);
      throw new CliError(`the admin API at ${target.label} did not answer: ${e.message}`, EXIT_FAILURE);
    }
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(answer.text);
  } catch {
    throw new CliError(`${target.label} answered ${answer.status} with something that is not JSON: is it a baton admin API?`, EXIT_FAILURE);
  }
  if (answer.status === 401) {
    throw new CliError(`the cluster at ${target.label} refused the token in "${target.tokenFile}" (401): is that the token file of this cluster?`, EXIT_USAGE);
  }
  if (answer.status < 200 || answer.status >= 300) {
    const error = typeof json === 'object' && json !== null && 'error' in json ? String(json.error) : answer.text.trim();
    throw new CliError(`the cluster refused: ${error} (HTTP ${answer.status})`, answer.status >= 500 || answer.status === 409 ? EXIT_FAILURE : EXIT_USAGE);
  }
  return json;
}

/** Registers `status` on the program. */
export function registerStatusCommand(program: Command): void {
  adminOptions(program.command('status'))
    .option('--json', 'print the admin API answer as JSON')
    .action(async (raw: RawAdminFlags & { json?: boolean }) => {
      const target = await resolveAdmin(raw);
      const status = (await callAdmin(target, 'GET', '/status')) as StatusResponse;
      process.stdout.write(raw.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, Date.now()));
    });
}

function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** The human view: a table of relays, a summary line, and a table of backends. */
export function formatStatus(s: StatusResponse, now: number): string {
  const header = ['RELAY', 'THREAD', 'UP', 'RESTARTS', 'OWNED', 'LAST CRASH'];
  const rows = s.relays.map((r) => [
    r.name,
    r.threadId === null ? '-' : String(r.threadId),
    r.up ? 'yes' : 'no',
    String(r.restarts),
    String(r.owned),
    r.lastCrash
      ? `${r.lastCrash.reason}${r.lastCrash.fault?.point ? ` at ${r.lastCrash.fault.point}` : ''}, ${ago(r.lastCrash.at, now)}`
      : '-',
  ]);
  const t = s.takeovers;
  const summary =
    `connections ${s.connections.active} active (${s.connections.opened} opened); ` +
    `takeovers ${t.count}${t.count > 0 ? ` (p50 ${t.p50Ms} ms, p99 ${t.p99Ms} ms)` : ''}; ` +
    `quarantined ${s.quarantined}; lost ${s.lost}; uncommitted max ${s.replicationLag.max} input${s.replicationLag.max === 1 ? '' : 's'}`;
  const backendHeader = ['BACKEND', 'UP', 'ACTIVE', 'CONNECTIONS', 'CONNECT FAILURES', 'CHECKS FAILED'];
  const backendRows = (s.backends ?? []).map((b) => [b.name, b.up ? 'yes' : 'no', String(b.active), String(b.connections), String(b.connectFailures), String(b.checksFailed)]);
  const backends = backendRows.length > 0 ? table(backendHeader, backendRows) : '';
  const draining = s.draining ? `${formatDraining(s.draining, now)}\n` : '';
  return `${table(header, rows)}${summary}\n${draining}${backends}`;
}

/** Columns padded to their widest cell, two spaces apart, one row a line. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** The drain line: since when, the deadline, connections left. */
function formatDraining(d: NonNullable<StatusResponse['draining']>, now: number): string {
  const left = Math.max(0, Math.ceil((Date.parse(d.deadline) - now) / 1000));
  return (
    `draining since ${d.since} (${ago(d.since, now)}, ${d.cause === 'admin' ? 'POST /drain' : d.cause}); ` +
    `${d.connections} connection${d.connections === 1 ? '' : 's'} left; close_notify to the rest at ${d.deadline} (in ${left}s)`
  );
}
