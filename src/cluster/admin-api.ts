/**
 * The admin API of a running cluster: HTTP/1.1 on loopback only, every request
 * authenticated with `Authorization: Bearer <token>` (compared in constant time).
 *
 *   GET  /status   relays (thread, up, restarts, last crash, placement), connections
 *                  (owner, epoch, inputs not yet committed), takeovers (count, p50, p99); on a
 *                  node joined to others, `node` and `nodes`: every live node's relays,
 *                  connections and configuration version
 *   GET  /metrics  Prometheus text (see metrics.ts)
 *   POST /crash    {"relay": "relay-1" | "random", "kind": "throw"|"exit"|"terminate"|"oom"|"hang",
 *                   "at"?: a relay fault point, "node"?: another node of the cluster}: crash a
 *                  relay now, or arm the fault point; with "node", on that node (over NATS)
 *   POST /config   {} (or no body): reload the cluster's --config file; {"path": "/abs/file.yaml"}:
 *                  load that file. 200 {"ok": true, "version", "digest", "unchanged", "warnings"}
 *                  once every relay runs it; 422 {"ok": false, "version", "error"} when a relay
 *                  refused it (the cluster stays on `version`); 400 for a malformed file (the
 *                  file, the field and what is wrong)
 *   POST /drain    {} (or no body): start a graceful drain, as SIGTERM does (drain.ts); 202 with
 *                  the drain's status (`draining`); again while draining: the same status
 *
 * Errors are `{"error": "..."}` naming what is wrong: 401 bad or missing token,
 * 400 bad body (the field and why), 404 unknown relay or route, 405 wrong method,
 * 409 relay not running, 413 body too large, 502 another node did not answer.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { FAULT_KINDS, isActorError, type FaultKind } from '../actors/index.js';
import type { BackendStatus } from '../relay/backend-pool.js';
import type { Cluster } from './cluster.js';
import type { HostPort } from '../util/host-port.js';
import { RELAY_FAULT_POINTS } from '../relay/fault-points.js';
import { isLoopback } from '../util/host-port.js';
import { silentLogger, type Logger } from '../util/log.js';
import type { DrainCause, DrainStatus } from './drain.js';
import { quantile, replicationLag, type ClusterMetrics, type RelayHistory } from './metrics.js';

/** Connections listed in full by `/status` at most (the count is always exact). */
export const STATUS_CONNECTIONS_MAX = 1000;
const BODY_MAX_BYTES = 16 * 1024;

/** Whether `host` is a loopback address (or `localhost`): the admin API binds nowhere else. */
export { isLoopback };

/** `POST /crash` body. */
export const CrashRequest = z
  .object({
    relay: z.string().min(1, 'must name a relay or be "random"'),
    kind: z.enum(FAULT_KINDS as [FaultKind, ...FaultKind[]]),
    at: z.enum(RELAY_FAULT_POINTS).optional(),
    node: z.string().min(1, 'must name a node (see baton status)').optional(),
  })
  .strict();
export type CrashRequest = z.infer<typeof CrashRequest>;

/** `POST /config` body (empty: `{}`). */
export const ConfigRequest = z.strictObject({
  path: z
    .string()
    .min(1, 'must be a file path')
    .refine((p) => isAbsolute(p), 'must be an absolute path (the cluster may run in another directory)')
    .optional(),
});
export type ConfigRequest = z.infer<typeof ConfigRequest>;

/** `POST /drain` body: nothing to say yet (`{}` or no body). */
export const DrainRequest = z.strictObject({});

/**
 * What a reload did (the cluster command loads the file and rolls it out; this API
 * only answers): applied (maybe unchanged), refused by a relay (the cluster stays
 * on `version`), or invalid (a malformed file, or no file to reload).
 */
export type ReloadResult =
  | { readonly status: 'applied'; readonly version: number; readonly digest: string; readonly unchanged: boolean; readonly warnings: readonly string[] }
  | { readonly status: 'refused'; readonly version: number; readonly error: string }
  | { readonly status: 'invalid'; readonly error: string };

/** `POST /config` answer (200 or 422). */
export type ConfigResponse =
  | { readonly ok: true; readonly version: number; readonly digest: string; readonly unchanged: boolean; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly version: number; readonly error: string };

/** `POST /crash` answer. */
export interface CrashResponse {
  readonly relay: string;
  readonly kind: FaultKind;
  readonly at?: string;
  /** The thread the relay ran on when the crash was injected or armed. */
  readonly threadId: number;
  /** True when a fault point was armed (the crash happens when it is next reached). */
  readonly armed: boolean;
}

/** `GET /status` answer. */
export interface StatusResponse {
  readonly relays: {
    readonly name: string;
    readonly threadId: number | null;
    readonly up: boolean;
    readonly restarts: number;
    readonly crashes: number;
    readonly lastCrash?: RelayHistory['lastCrash'];
    readonly owned: number;
  }[];
  readonly connections: {
    readonly active: number;
    readonly opened: number;
    readonly truncated: boolean;
    readonly list: {
      readonly id: string;
      /** Null while no relay is up to own it (its state waits in the store). */
      readonly owner: string | null;
      readonly epoch: number;
      readonly handshakeDone: boolean;
      readonly replicationLag: number;
    }[];
  };
  readonly replicationLag: { readonly max: number; readonly sum: number };
  /** Each backend: health, open connections, counters (absent from clusters older than several backends). */
  readonly backends?: readonly BackendStatus[];
  readonly takeovers: { readonly count: number; readonly p50Ms: number; readonly p99Ms: number };
  readonly quarantined: number;
  readonly lost: number;
  /** The configuration version every relay runs. */
  readonly config: { readonly version: number; readonly digest: string };
  /** Record protection: the native addon, or node:crypto with the reason. */
  readonly recordProtection: { readonly mode: 'native' | 'node:crypto'; readonly reason: string | null };
  /** A graceful drain in progress (ISO 8601 times), or null. */
  readonly draining: DrainingStatus | null;
  /** This node's name, on a node joined to others (`baton cluster --join`). */
  readonly node?: string;
  /** Every live node of the cluster, this one first, on a node joined to others. */
  readonly nodes?: readonly NodeStatus[];
  /** On a node started with `--join`: joined, or serving alone while NATS does not answer. */
  readonly join?: JoinStatus;
}

/** `/status`'s `join`: whether a node started with `--join` has joined, or since when it keeps trying. */
export interface JoinStatus {
  readonly cluster: string;
  readonly nats: string;
  readonly joined: boolean;
  /** When it joined, or since when it has been trying (ISO 8601). */
  readonly since: string;
  /** Attempts that failed so far. */
  readonly failedAttempts: number;
  /** Why the last attempt failed, while not joined. */
  readonly lastError?: string;
}

/** One node as `/status` lists it: what it said over NATS just now, or its last heartbeat. */
export interface NodeStatus {
  readonly name: string;
  /** `self`: this node; `nats`: it answered just now; `heartbeat`: it did not, this is its last beat. */
  readonly source: 'self' | 'nats' | 'heartbeat';
  readonly admin: string | null;
  readonly relays: readonly { readonly name: string; readonly up: boolean; readonly restarts: number }[];
  readonly connections: { readonly active: number; readonly opened: number };
  readonly config: { readonly version: number; readonly digest: string };
  /** Why it did not answer (with `heartbeat`). */
  readonly error?: string;
}

/** The other nodes, as the admin API reaches them (cluster/node.ts). */
export interface NodesControl {
  /** This node's name. */
  readonly node: string;
  /** Every live node, this one (from `local`) first. */
  nodes(local: StatusResponse): Promise<NodeStatus[]>;
  /** Runs a crash request on `node`; throws {@link AdminHttpError} (404 unknown node, 502 no answer, or the node's own refusal). */
  crash(node: string, req: CrashRequest): Promise<CrashResponse>;
  /** Whether this node has joined yet (a node started while NATS did not answer serves alone meanwhile). */
  join?(): JoinStatus;
}

/** `/status`'s `draining`: what started it, since when, until when live connections may finish, how many are left. */
export interface DrainingStatus {
  readonly cause: DrainCause;
  readonly since: string;
  readonly deadline: string;
  readonly connections: number;
}

/** The cluster's drain as the admin API sees it (cluster-command.ts wires it to drain.ts). */
export interface DrainControl {
  /** Starts the drain (idempotent); null when the cluster is closing at once instead. */
  request(): DrainStatus | null;
  status(): DrainStatus | null;
}

function drainingStatus(d: DrainStatus | null | undefined): DrainingStatus | null {
  if (!d) return null;
  return { cause: d.cause, since: new Date(d.since).toISOString(), deadline: new Date(d.deadline).toISOString(), connections: d.connections };
}

export interface AdminApiOptions {
  readonly cluster: Pick<Cluster, 'gateway' | 'relayNames' | 'threadIdOf' | 'inject' | 'arm' | 'activeConfig' | 'recordProtection'>;
  readonly metrics: ClusterMetrics;
  readonly token: string;
  readonly log?: Logger;
  /** Chooses the relay for `"relay": "random"` among those running (a seam for tests). */
  readonly pick?: (n: number) => number;
  /** Loads a configuration file (`path`, or the one the cluster started with) and rolls it out; `POST /config`. */
  readonly reload?: (path?: string) => Promise<ReloadResult>;
  /** Graceful drain; `POST /drain` and `/status`'s `draining`. */
  readonly drain?: DrainControl;
  /** The other nodes, when this one joined them; absent: a node alone. */
  readonly nodes?: NodesControl;
}

/** An error answered as `{ error }` with a status code. */
export class AdminHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** `/status`'s relays: thread, up, restarts, crashes, last crash, connections owned. */
export function relaysStatus(cluster: AdminApiOptions['cluster'], metrics: ClusterMetrics): StatusResponse['relays'] {
  const placement = cluster.gateway.placement();
  return cluster.relayNames.map((name) => {
    const p = placement.get(name) ?? { owned: 0, up: false };
    const h = metrics.relayHistory(name);
    const threadId = p.up ? (cluster.threadIdOf(name) ?? null) : null;
    return {
      name,
      threadId,
      up: p.up && threadId !== null,
      restarts: h.restarts,
      crashes: h.crashes,
      ...(h.lastCrash ? { lastCrash: h.lastCrash } : {}),
      owned: p.owned,
    };
  });
}

/**
 * What a node tells the others about itself (heartbeats, status asked over NATS): the
 * node line of `/status`, without walking every connection as {@link clusterStatus} does.
 */
export function nodeSummary(name: string, admin: string | null, cluster: AdminApiOptions['cluster'], metrics: ClusterMetrics): Omit<NodeStatus, 'source' | 'error'> {
  const { stats } = cluster.gateway;
  return {
    name,
    admin,
    relays: relaysStatus(cluster, metrics).map((r) => ({ name: r.name, up: r.up, restarts: r.restarts })),
    connections: { active: stats.connectionsActive, opened: stats.connectionsOpened },
    config: { version: cluster.activeConfig.version, digest: cluster.activeConfig.digest },
  };
}

/** Builds the `/status` answer from the cluster's tables. */
export function clusterStatus(cluster: AdminApiOptions['cluster'], metrics: ClusterMetrics, drain?: DrainControl): StatusResponse {
  const { gateway } = cluster;
  const relays = relaysStatus(cluster, metrics);
  const conns = gateway.connections();
  let max = 0;
  let sum = 0;
  const list = conns.map((c) => {
    const lag = replicationLag(c);
    max = Math.max(max, lag);
    sum += lag;
    return { id: c.id, owner: c.owner, epoch: c.epoch, handshakeDone: c.handshakeDone, replicationLag: lag };
  });
  const samples = gateway.stats.takeoverSamples.map((s) => s.ms);
  return {
    relays,
    connections: {
      active: gateway.stats.connectionsActive,
      opened: gateway.stats.connectionsOpened,
      truncated: list.length > STATUS_CONNECTIONS_MAX,
      list: list.slice(0, STATUS_CONNECTIONS_MAX),
    },
    replicationLag: { max, sum },
    backends: gateway.backends.status(),
    takeovers: { count: gateway.stats.takeovers, p50Ms: quantile(samples, 0.5), p99Ms: quantile(samples, 0.99) },
    quarantined: gateway.stats.quarantined,
    lost: gateway.stats.connectionsLost,
    config: { version: cluster.activeConfig.version, digest: cluster.activeConfig.digest },
    recordProtection: { mode: cluster.recordProtection.mode, reason: cluster.recordProtection.reason },
    draining: drainingStatus(drain?.status()),
  };
}

/** One zod issue as "field: why". */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const field = i.path.length > 0 ? i.path.join('.') : 'body';
      if (i.code === 'unrecognized_keys') return `${field}: unknown field${i.keys.length === 1 ? '' : 's'} ${i.keys.map((k) => `"${k}"`).join(', ')}`;
      if (i.code === 'invalid_value') return `${field}: must be one of ${i.values.map((v) => JSON.stringify(v)).join(', ')}`;
      return `${field}: ${i.message}`;
    })
    .join('; ');
}

export class AdminApi {
  private readonly server: http.Server;
  private readonly tokenDigest: Buffer;
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: AdminApiOptions) {
    if (opts.token.length < 16) throw new RangeError('the admin token must be at least 16 characters');
    // Comparing digests keeps the comparison constant-time whatever the presented length.
    this.tokenDigest = digest(opts.token);
    this.log = (opts.log ?? silentLogger).child({ component: 'admin' });
    this.server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
      void this.handle(req, res);
    });
    this.server.keepAliveTimeout = 1_000;
  }

  /** Binds to a loopback `host:port` (port 0: any free port); refuses any other address. */
  async listen(at: HostPort): Promise<{ host: string; port: number }> {
    if (!isLoopback(at.host)) throw new RangeError(`the admin API listens on loopback only (127.0.0.1, ::1 or localhost), not ${at.host}`);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(at.port, at.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('the admin API has no TCP address');
    return { host: a.address, port: a.port };
  }

  /** Stops accepting and closes every connection. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private authorized(req: http.IncomingMessage): boolean {
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null;
    // Always compare, so a missing header takes as long as a wrong one.
    return timingSafeEqual(digest(m?.[1] ?? ''), this.tokenDigest) && m !== null;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://admin');
    let status = 500;
    try {
      if (!this.authorized(req)) {
        throw new AdminHttpError(401, 'missing or wrong admin token (send "Authorization: Bearer <token>" with the token from the token file)', {
          'www-authenticate': 'Bearer realm="baton"',
        });
      }
      status = await this.route(req, res, url.pathname);
    } catch (e) {
      status = e instanceof AdminHttpError ? e.status : 500;
      const message = e instanceof AdminHttpError ? e.message : 'internal error';
      if (!(e instanceof AdminHttpError)) this.log.error('admin request failed', { method: req.method, path: url.pathname, error: e });
      if (!res.headersSent) this.json(res, status, { error: message }, e instanceof AdminHttpError ? e.headers : {});
      else res.destroy();
    } finally {
      const level = status === 401 ? 'warn' : 'debug';
      this.log[level]('admin request', { method: req.method, path: url.pathname, status, ms: Math.round(performance.now() - started) });
    }
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse, path: string): Promise<number> {
    const allow = (method: string) => {
      if (req.method !== method) throw new AdminHttpError(405, `${path} takes ${method}, not ${req.method}`, { allow: method });
    };
    switch (path) {
      case '/status': {
        allow('GET');
        const local = clusterStatus(this.opts.cluster, this.opts.metrics, this.opts.drain);
        const nodes = this.opts.nodes;
        return this.json(res, 200, nodes ? { ...local, node: nodes.node, nodes: await nodes.nodes(local), ...(nodes.join ? { join: nodes.join() } : {}) } : local);
      }
      case '/metrics': {
        allow('GET');
        const text = await this.opts.metrics.text();
        res.writeHead(200, { 'content-type': this.opts.metrics.contentType, 'cache-control': 'no-store' });
        res.end(text);
        return 200;
      }
      case '/crash': {
        allow('POST');
        const body = await this.readJson(req);
        const parsed = CrashRequest.safeParse(body);
        if (!parsed.success) throw new AdminHttpError(400, describeIssues(parsed.error));
        return this.json(res, 200, await this.crash(parsed.data));
      }
      case '/config': {
        allow('POST');
        const body = await this.readJson(req, true);
        const parsed = ConfigRequest.safeParse(body ?? {});
        if (!parsed.success) throw new AdminHttpError(400, describeIssues(parsed.error));
        if (!this.opts.reload) throw new AdminHttpError(400, 'this cluster cannot reload its configuration');
        const r = await this.opts.reload(parsed.data.path);
        this.log.info('config reload requested', { status: r.status, ...(parsed.data.path ? { configFile: parsed.data.path } : {}) });
        if (r.status === 'invalid') throw new AdminHttpError(400, r.error);
        const answer: ConfigResponse =
          r.status === 'applied'
            ? { ok: true, version: r.version, digest: r.digest, unchanged: r.unchanged, warnings: r.warnings }
            : { ok: false, version: r.version, error: r.error };
        return this.json(res, answer.ok ? 200 : 422, answer);
      }
      case '/drain': {
        allow('POST');
        const body = await this.readJson(req, true);
        const parsed = DrainRequest.safeParse(body ?? {});
        if (!parsed.success) throw new AdminHttpError(400, describeIssues(parsed.error));
        if (!this.opts.drain) throw new AdminHttpError(400, 'this cluster cannot drain');
        const started = this.opts.drain.request();
        if (!started) throw new AdminHttpError(409, 'the cluster is closing already');
        this.log.info('drain requested', { connections: started.connections });
        return this.json(res, 202, { draining: drainingStatus(started) });
      }
      default:
        throw new AdminHttpError(404, `no route ${path} (routes: GET /status, GET /metrics, POST /crash, POST /config, POST /drain)`);
    }
  }

  private async crash(r: CrashRequest): Promise<CrashResponse> {
    const { node, ...req } = r;
    if (node !== undefined && node !== this.opts.nodes?.node) {
      if (!this.opts.nodes) throw new AdminHttpError(404, `node: this cluster is a node alone (started without --join), there is no node "${node}"`);
      const answer = await this.opts.nodes.crash(node, req);
      this.log.info('crash forwarded', { node, relay: answer.relay, kind: answer.kind });
      return answer;
    }
    const answer = await crashRelay(this.opts.cluster, req, this.opts.pick);
    this.log.info(answer.armed ? 'crash armed' : 'crash injected', { relay: answer.relay, kind: answer.kind, ...(answer.at ? { at: answer.at } : {}), threadId: answer.threadId });
    return answer;
  }

  /** The body as JSON; an empty body is `undefined` where `emptyOk`, else a 400. */
  private readJson(req: http.IncomingMessage, emptyOk = false): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      req.on('data', (d: Buffer) => {
        if (failed) return;
        size += d.length;
        if (size > BODY_MAX_BYTES) {
          failed = true;
          reject(new AdminHttpError(413, `the body is larger than ${BODY_MAX_BYTES} bytes`));
          return;
        }
        chunks.push(d);
      });
      req.on('error', (e) => reject(e));
      req.on('end', () => {
        if (failed) return;
        const text = Buffer.concat(chunks).toString('utf8');
        if (text.trim().length === 0) {
          if (emptyOk) {
            resolve(undefined);
            return;
          }
          reject(new AdminHttpError(400, 'body: expected a JSON object, e.g. {"relay":"random","kind":"exit"}'));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch (e) {
          reject(new AdminHttpError(400, `body: not valid JSON (${e instanceof Error ? e.message : String(e)})`));
        }
      });
    });
  }

  private json(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): number {
    const body = JSON.stringify(value);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
    res.end(`${body}\n`);
    return status;
  }
}

/**
 * Crashes (or arms a fault point in) one relay of this node: the work of `POST /crash`,
 * also run for another node's forwarded request (node.ts). Throws {@link AdminHttpError}.
 */
export async function crashRelay(
  cluster: AdminApiOptions['cluster'],
  r: Omit<CrashRequest, 'node'>,
  pick?: (n: number) => number,
): Promise<CrashResponse> {
  const names = cluster.relayNames;
  let relay = r.relay;
  if (relay === 'random') {
    const running = names.filter((n) => cluster.threadIdOf(n) !== undefined && cluster.gateway.placement().get(n)?.up);
    if (running.length === 0) throw new AdminHttpError(409, 'no relay is running now (all are being restarted); try again');
    pick ??= (n: number) => Math.floor(Math.random() * n);
    relay = running[pick(running.length)]!;
  } else if (!names.includes(relay)) {
    throw new AdminHttpError(404, `relay: no relay named "${relay}" (relays: ${names.join(', ')})`);
  }
  const threadId = cluster.threadIdOf(relay);
  if (threadId === undefined || !cluster.gateway.placement().get(relay)?.up) {
    throw new AdminHttpError(409, `${relay} is not running now (it is being restarted); try again`);
  }
  try {
    if (r.at !== undefined) await cluster.arm(relay, r.at, r.kind, { times: 1 });
    else cluster.inject(relay, r.kind);
  } catch (e) {
    // It died after the check above, before the arm was confirmed (another crash, or the
    // watchdog on a starved machine): being restarted, as above, not an internal error.
    if (isActorError(e, 'BATON_ERR_ACTOR_DEAD')) throw new AdminHttpError(409, `${relay} stopped before the fault was ${r.at ? 'armed' : 'injected'} (it is being restarted); try again`);
    throw e;
  }
  return { relay, kind: r.kind, ...(r.at ? { at: r.at } : {}), threadId, armed: r.at !== undefined };
}
