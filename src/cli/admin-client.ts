/**
 * The admin API client the operator commands share (`baton status`, `baton crash`,
 * `baton reload`): `--admin` and `--token-file` with the cluster's defaults (with no
 * flags it finds the local cluster at the default admin address and token file, as
 * `redis-cli` finds a local Redis), one HTTP request, and every failure turned into a
 * CliError that says what to check. The server is cluster/admin-api.ts; only its
 * wire types are shared.
 */
import http from 'node:http';
import net from 'node:net';
import type { Command } from 'commander';
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

/** How one call differs from a plain request. */
export interface CallOptions {
  /** How long to wait for the answer. Default 10 s. */
  readonly timeoutMs?: number;
  /** Statuses besides 2xx whose JSON is the answer (e.g. 422 of `POST /config`). */
  readonly accept?: readonly number[];
  /** What a 400 means to this command (e.g. "configuration not loaded"); default: the cluster refused. */
  readonly badRequest?: string;
  /** Added to the message when no answer came (e.g. that the request may still complete). */
  readonly noAnswerHint?: string;
}

/**
 * Sends one request (never retried: `POST /crash` and `POST /config` are not
 * idempotent); turns every failure into a CliError that says what to check.
 * Returns the parsed JSON of a 2xx (or accepted) answer.
 */
export async function callAdmin(target: AdminTarget, method: 'GET' | 'POST', path: string, body?: unknown, opts: CallOptions = {}): Promise<unknown> {
  let answer: AdminAnswer;
  try {
    answer = await adminRequest(target.at, target.token, method, path, body, opts.timeoutMs);
  } catch (e) {
    if (e instanceof AdminUnreachableError) {
      if (e.osCode === 'ECONNREFUSED') throw noCluster(target.label);
      throw new CliError(`the admin API at ${target.label} did not answer: ${e.message}${opts.noAnswerHint ? ` (${opts.noAnswerHint})` : ''}`, EXIT_FAILURE);
    }
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(answer.text);
  } catch {
    throw new CliError(`${target.label} answered ${answer.status} with something that is not JSON: is it a baton admin API?`, EXIT_FAILURE);
  }
  if ((answer.status >= 200 && answer.status < 300) || opts.accept?.includes(answer.status)) return json;
  if (answer.status === 401) {
    throw new CliError(`the cluster at ${target.label} refused the token in "${target.tokenFile}" (401): is that the token file of this cluster?`, EXIT_USAGE);
  }
  const error = typeof json === 'object' && json !== null && 'error' in json ? String(json.error) : answer.text.trim();
  if (answer.status === 400 && opts.badRequest) throw new CliError(`${opts.badRequest}: ${error}`, EXIT_USAGE);
  throw new CliError(`the cluster refused: ${error} (HTTP ${answer.status})`, answer.status >= 500 || answer.status === 409 ? EXIT_FAILURE : EXIT_USAGE);
}

/** Why a request to the admin API failed before an HTTP answer came. */
class AdminUnreachableError extends Error {
  override readonly name = 'AdminUnreachableError';
  readonly code = 'BATON_ERR_ADMIN_UNREACHABLE';
  constructor(
    message: string,
    /** ECONNREFUSED, ETIMEDOUT...: nothing listening, or nothing answering. */
    readonly osCode: string,
  ) {
    super(message);
  }
}

/** An HTTP answer of the admin API: status, content type and body text. */
interface AdminAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
}

/**
 * One request to a cluster's admin API. Throws {@link AdminUnreachableError} when no
 * server answers within `timeoutMs`; any HTTP status is returned, not thrown.
 */
function adminRequest(
  at: HostPort,
  token: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 10_000,
): Promise<AdminAnswer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: at.host,
        port: at.port,
        method,
        path,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json, text/plain',
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', (e) => reject(new AdminUnreachableError(`the answer broke off: ${e.message}`, 'ECONNRESET')));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => reject(new AdminUnreachableError(e.message, e.code ?? 'EUNKNOWN')));
    req.end(payload);
  });
}

/** Whether anything accepts TCP connections at `at` (to tell "no cluster" from "no token file"). */
function probe(at: HostPort, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: at.host, port: at.port, timeout: timeoutMs });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}
