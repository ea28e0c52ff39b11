/**
 * The flags of `baton cluster` and the file's values under them: every flag is parsed
 * and checked here into {@link ClusterFlags}, each bad value a {@link CliError} that
 * names the flag (or the file and field) and what is wrong, before anything starts.
 */
import { isIP } from 'node:net';
import { availableParallelism, hostname } from 'node:os';
import { badNodeName } from '../actors/index.js';
import { readNkeySeedFile, type NatsNkey } from '../cluster/nats-credentials.js';
import { parseNatsUrl, type NatsUrl } from '../cluster/nats-url.js';
import { ConfigFileError, loadConfigFile, type ClusterFileConfig } from '../cluster/config-file.js';
import { DEFAULT_ADMIN, defaultTokenFile } from '../cluster/token.js';
import { BALANCE_POLICIES, DEFAULT_POOL, singleBackend, type BackendsSpec, type BalancePolicy } from '../relay/backend-pool.js';
import { PROXY_PROTOCOL_MODES, type ProxyProtocolMode } from '../relay/proxy-protocol.js';
import type { TicketMode } from '../tls/index.js';
import { DEFAULT_HEALTH_CHECK } from '../relay/health-check.js';
import { isLoopback, parseHostPort as parseHostPortValue, type HostPort } from '../util/host-port.js';
import { LOG_LEVELS, type LogLevel } from '../util/log.js';
import { CliError, parseWholeNumber } from './errors.js';
import { DEFAULT_DRAIN_TIMEOUT_SECONDS } from '../cluster/drain.js';
import { parseDuration, parseLimits, type ConnectionLimits, type RawLimitFlags } from './limits.js';


export { LOG_LEVELS, type LogLevel };

/** Flag values as commander hands them over: strings, each possibly absent. */
export interface RawClusterFlags extends RawLimitFlags {
  readonly relays?: string;
  readonly listen?: string;
  readonly backend?: string;
  readonly balance?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly watchdogMs?: string;
  readonly alpn?: string;
  readonly replication?: string;
  readonly proxyProtocol?: string;
  readonly tickets?: string;
  readonly logLevel?: string;
  readonly admin?: string;
  readonly tokenFile?: string;
  readonly config?: string;
  readonly drainTimeout?: string;
  readonly join?: string;
  readonly node?: string;
  readonly clusterName?: string;
  readonly natsNkey?: string;
}

/** Where and as what a node joins the others (`--join`, `--node`, `--cluster-name`). */
export interface JoinFlags {
  readonly url: NatsUrl;
  readonly node: string;
  readonly cluster: string;
  /** The node's own NATS credentials (`--nats-nkey`, `nats.nkeyFile`); none: an open server. */
  readonly nkey?: NatsNkey;
}

/** The cluster name nodes share when none is given. */
export const DEFAULT_CLUSTER_NAME = 'baton';

/** This host's name as a node name: letters, digits, - and _ (others become -), at most 64. */
export function defaultNodeName(host = hostname()): string {
  const name = host.split('.')[0]!.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 64);
  return name === '' ? 'node' : name;
}

/** Validated flags. */
export interface ClusterFlags {
  readonly relays: number;
  readonly listen: HostPort;
  readonly backend: HostPort;
  /** Every backend (pools, policy, routes, health checks); `--backend` replaces the file's default pool. */
  readonly backends: BackendsSpec;
  /** Paths of a PEM certificate chain and its key; a self-signed one is made when absent. */
  readonly files?: { readonly cert: string; readonly key: string };
  readonly watchdogMs?: number;
  readonly alpn?: readonly string[];
  readonly replication: boolean;
  /** PROXY protocol header toward the backend; default 'off'. */
  readonly proxyProtocol: ProxyProtocolMode;
  /** How session tickets carry their state (`--tickets`, or the file's tickets.mode); absent: stateless. */
  readonly ticketMode?: TicketMode;
  readonly logLevel: LogLevel;
  /** The admin API's loopback address (port 0: any free port), or 'off'; default {@link DEFAULT_ADMIN}. */
  readonly admin?: HostPort | 'off';
  /** Where the admin token is written; default {@link defaultTokenFile} for the admin port. */
  readonly tokenFile?: string;
  /** Replication batching from the configuration file (the defaults when absent). */
  /** The configuration file the values not given as flags came from (`--config`). Secret: keys. */
  readonly config?: ClusterFileConfig;
  /** Connection deadlines and limit (limits.ts). */
  readonly limits: ConnectionLimits;
  /** Graceful drain on SIGTERM or POST /drain: how long live connections may finish (cluster/drain.ts). */
  readonly drainTimeoutMs: number;
  /** Joining other nodes through NATS; absent: a node alone, exactly as before. */
  readonly join?: JoinFlags;
}

/** Relay workers we agree to start on one host. */
export const MAX_RELAYS = 256;

/**
 * One relay per core, and never fewer than two (a crashed relay's connections need a
 * sibling to carry them on at once). More relays than cores add only threads that take
 * turns on the same cores: on 2 cores, 3 relays cost ~12% more CPU per handshake than 2
 * (bench/handshake-cpu.ts).
 */
export const DEFAULT_RELAYS = Math.min(MAX_RELAYS, Math.max(2, availableParallelism()));

export const CLUSTER_DEFAULTS = {
  relays: String(DEFAULT_RELAYS),
  listen: '127.0.0.1:8443',
  replication: 'on',
  proxyProtocol: 'off',
  logLevel: 'info',
} as const;
const WATCHDOG_MIN_MS = 50;
const WATCHDOG_MAX_MS = 3_600_000;

/** loadConfigFile, its errors (which name the file and the field) as CliErrors. */
export function readConfigFile(path: string): ClusterFileConfig {
  try {
    return loadConfigFile(path);
  } catch (e) {
    if (e instanceof ConfigFileError) throw new CliError(e.message);
    throw e;
  }
}

/**
 * Checks every flag; throws CliError naming the first bad one. Pure: reads no files.
 * With `file` (a loaded `--config`), `raw` holds only the flags given on the command
 * line: they override the file, whose values override the defaults.
 */
export function parseClusterFlags(raw: RawClusterFlags, file?: ClusterFileConfig): ClusterFlags {
  const relays = raw.relays !== undefined ? parseRelays(raw.relays) : (file?.relays ?? parseRelays(CLUSTER_DEFAULTS.relays));
  const listen = raw.listen !== undefined || !file ? parseHostPort('--listen', raw.listen ?? CLUSTER_DEFAULTS.listen, { allowPortZero: true }) : file.listen;
  if (raw.backend === undefined && !file) {
    throw new CliError('--backend is required: the HOST:PORT of the plaintext TCP server to forward to (e.g. --backend 127.0.0.1:9000)');
  }
  const listed = raw.backend !== undefined ? parseBackendList(raw.backend, file?.backends) : file!.backends;
  const backends = raw.balance !== undefined ? { ...listed, policy: parseBalance(raw.balance) } : listed;
  const backend = backends.pools[DEFAULT_POOL]![0]!;
  if (raw.cert !== undefined && raw.key === undefined) throw new CliError('--cert needs --key: give the PEM private key of the certificate too');
  if (raw.key !== undefined && raw.cert === undefined) throw new CliError('--key needs --cert: give the PEM certificate chain too');
  if (raw.cert === '') throw new CliError('--cert is empty: give a file path');
  if (raw.key === '') throw new CliError('--key is empty: give a file path');
  const files = raw.cert !== undefined && raw.key !== undefined ? { cert: raw.cert, key: raw.key } : undefined;
  const watchdogMs = raw.watchdogMs === undefined ? file?.watchdogMs : parseWatchdogMs(raw.watchdogMs);
  const alpn = raw.alpn === undefined ? file?.tls.alpn : parseAlpn(raw.alpn);
  const replication =
    raw.replication !== undefined || file?.replication === undefined ? parseReplication(raw.replication ?? CLUSTER_DEFAULTS.replication) : file.replication;
  const proxyProtocol =
    raw.proxyProtocol !== undefined || file?.proxyProtocol === undefined ? parseProxyProtocol(raw.proxyProtocol ?? CLUSTER_DEFAULTS.proxyProtocol) : file.proxyProtocol;
  const ticketMode = raw.tickets !== undefined ? parseTicketMode(raw.tickets) : file?.tls.ticketMode;
  const logLevel = parseLogLevel(raw.logLevel ?? CLUSTER_DEFAULTS.logLevel);
  const admin = raw.admin === undefined ? file?.admin?.address : parseAdminAddress(raw.admin, { allowPortZero: true, allowOff: true });
  if (raw.tokenFile === '') throw new CliError('--token-file is empty: give a file path');
  if (raw.tokenFile !== undefined && admin === 'off') throw new CliError('--token-file has no use with --admin off');
  const tokenFile = raw.tokenFile ?? (admin === 'off' ? undefined : file?.admin?.tokenFile);
  const limits = parseLimits(raw, file);
  const drainTimeoutMs = raw.drainTimeout !== undefined ? parseDuration('--drain-timeout', raw.drainTimeout) : (file?.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_SECONDS * 1000);
  const join = parseJoin(raw, file);
  return {
    relays,
    listen,
    backend,
    backends,
    ...(files ? { files } : {}),
    ...(watchdogMs !== undefined ? { watchdogMs } : {}),
    ...(alpn ? { alpn } : {}),
    replication,
    proxyProtocol,
    ...(ticketMode === 'stateful' ? { ticketMode } : {}),
    logLevel,
    ...(admin !== undefined ? { admin } : {}),
    ...(tokenFile !== undefined ? { tokenFile } : {}),
    ...(file ? { config: file } : {}),
    limits,
    drainTimeoutMs,
    ...(join ? { join } : {}),
  };
}

/** `--join`, `--node`, `--cluster-name` over the file's `nats` section. */
function parseJoin(raw: RawClusterFlags, file?: ClusterFileConfig): JoinFlags | undefined {
  let url = file?.nats?.join;
  if (raw.join !== undefined) {
    const parsed = parseNatsUrl(raw.join);
    if (typeof parsed === 'string') throw new CliError(`--join ${parsed} (e.g. --join nats://127.0.0.1:4222)`);
    url = parsed;
  }
  const nameFlag = (flag: string, value: string | undefined) => {
    if (value === undefined) return undefined;
    const bad = badNodeName(value);
    if (bad !== undefined) throw new CliError(`${flag} ${bad}`);
    return value;
  };
  const node = nameFlag('--node', raw.node) ?? file?.nats?.node;
  const cluster = nameFlag('--cluster-name', raw.clusterName) ?? file?.nats?.cluster;
  if (url === undefined) {
    if (raw.node !== undefined) throw new CliError('--node needs --join: the NATS server the nodes meet on (e.g. --join nats://127.0.0.1:4222)');
    if (raw.clusterName !== undefined) throw new CliError('--cluster-name needs --join: the NATS server the nodes meet on');
    if (raw.natsNkey !== undefined) throw new CliError('--nats-nkey needs --join: the NATS server the nodes meet on');
    return undefined;
  }
  const nkeyFile = raw.natsNkey ?? file?.nats?.nkeyFile;
  let nkey: NatsNkey | undefined;
  if (nkeyFile !== undefined) {
    try {
      nkey = readNkeySeedFile(nkeyFile, raw.natsNkey !== undefined ? '--nats-nkey' : 'nats.nkeyFile');
    } catch (e) {
      throw new CliError((e as Error).message);
    }
  }
  return { url, node: node ?? defaultNodeName(), cluster: cluster ?? DEFAULT_CLUSTER_NAME, ...(nkey ? { nkey } : {}) };
}

/**
 * Parses `--admin`: a loopback HOST:PORT (the admin API can crash relays, so it is
 * never offered beyond this host), or `off` where `allowOff`.
 */
export function parseAdminAddress(value: string, opts: { allowPortZero: boolean; allowOff: boolean }): HostPort | 'off' {
  if (value === 'off' && opts.allowOff) return 'off';
  const at = parseHostPort('--admin', value, { allowPortZero: opts.allowPortZero });
  if (!isLoopback(at.host)) {
    throw new CliError(`--admin "${value}": the admin API listens on loopback only (127.0.0.1, [::1] or localhost), not on ${at.host}`);
  }
  return at;
}

/**
 * `--backend A,B,...`: the default pool (replacing the file's, whose other pools,
 * policy and routes stay). Several are health-checked; one alone is not, unless the
 * file sets checks.
 */
function parseBackendList(value: string, file?: BackendsSpec): BackendsSpec {
  const addresses = value.split(',').map((v) => parseHostPort('--backend', v.trim(), { allowPortZero: false }));
  const dup = addresses.findIndex((a, i) => addresses.findIndex((b) => b.host === a.host && b.port === a.port) !== i);
  if (dup >= 0) throw new CliError(`--backend lists ${formatHostPort(addresses[dup]!.host, addresses[dup]!.port)} twice`);
  const spec = file ? { ...file, pools: { ...file.pools, [DEFAULT_POOL]: addresses } } : { ...singleBackend(addresses[0]!), pools: { [DEFAULT_POOL]: addresses } };
  const checked = file !== undefined && file.health.intervalMs > 0;
  return addresses.length > 1 && !checked ? { ...spec, health: DEFAULT_HEALTH_CHECK } : spec;
}

function parseBalance(value: string): BalancePolicy {
  const policy = BALANCE_POLICIES.find((p) => p === value);
  if (!policy) throw new CliError(`--balance must be one of ${BALANCE_POLICIES.join(', ')}, got "${value}"`);
  return policy;
}

function parseRelays(value: string): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new CliError(`--relays must be a positive integer, got "${value}"`);
  if (n > MAX_RELAYS) throw new CliError(`--relays must be at most ${MAX_RELAYS} (one worker thread each), got ${n}`);
  return n;
}

function parseWatchdogMs(value: string): number {
  return parseWholeNumber('--watchdog-ms', value, WATCHDOG_MIN_MS, WATCHDOG_MAX_MS, 'milliseconds');
}

/** RFC 7301 section 3.1: each ProtocolName is 1 to 255 bytes; we take printable ASCII. */
function parseAlpn(value: string): string[] {
  const names = value.split(',').map((s) => s.trim());
  for (const name of names) {
    if (name.length === 0) throw new CliError(`--alpn has an empty protocol name in "${value}" (expected e.g. h2,http/1.1)`);
    if (!/^[\x21-\x7e]+$/.test(name)) throw new CliError(`--alpn protocol "${name}" must be printable ASCII without spaces`);
    if (name.length > 255) throw new CliError(`--alpn protocol names are at most 255 bytes, "${name.slice(0, 20)}..." is ${name.length}`);
  }
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new CliError(`--alpn lists "${dup}" twice`);
  return names;
}

function parseReplication(value: string): boolean {
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw new CliError(`--replication must be "on" or "off", got "${value}"`);
}

function parseProxyProtocol(value: string): ProxyProtocolMode {
  const mode = PROXY_PROTOCOL_MODES.find((m) => m === value);
  if (!mode) throw new CliError(`--proxy-protocol must be "v2" or "off", got "${value}"`);
  return mode;
}

function parseTicketMode(value: string): TicketMode {
  if (value === 'stateless' || value === 'stateful') return value;
  throw new CliError(`--tickets must be "stateless" or "stateful", got "${value}"`);
}

function parseLogLevel(value: string): LogLevel {
  const level = LOG_LEVELS.find((l) => l === value);
  if (!level) throw new CliError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
  return level;
}

/**
 * Parses HOST:PORT (IPv6 in brackets: [::1]:8443) with util/host-port.ts, its
 * reason prefixed with the flag and the value, and an example for the flag where
 * one helps. Port 0 (any free port) only where `allowPortZero`.
 */
export function parseHostPort(flag: string, value: string, opts: { allowPortZero: boolean }): HostPort {
  const parsed = parseHostPortValue(value, opts);
  if (typeof parsed !== 'string') return parsed;
  const example = flag === '--backend' ? '127.0.0.1:9000' : '127.0.0.1:8443';
  const reason = parsed.startsWith('expected HOST:PORT')
    ? `expected HOST:PORT, e.g. ${example}`
    : parsed === 'the host is missing'
      ? `the host is missing (e.g. ${example}${flag === '--listen' ? '; 0.0.0.0 for every interface' : ''})`
      : parsed;
  throw new CliError(`${flag} "${value}": ${reason}`);
}

/** `host:port`, IPv6 in brackets. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
