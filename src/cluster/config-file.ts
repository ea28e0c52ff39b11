/**
 * The cluster's configuration file (YAML, or JSON which YAML reads too),
 * validated with zod. Every error names the file, the field and what is wrong;
 * none quotes a key. Certificate and key paths are relative to the file.
 *
 * ```yaml
 * listeners:
 *   - address: 127.0.0.1:8443
 *     certificates:
 *       - { cert: site.pem, key: site-key.pem, names: [example.com, "*.example.com"] }
 *     alpn: [h2, http/1.1]
 *     cipherSuites: [TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256]
 *     groups: [x25519, secp256r1]
 * backend: 127.0.0.1:9000               # one backend; or several:
 * backends:
 *   servers: [10.0.0.1:9000, 10.0.0.2:9000]  # the default pool
 *   pools: { api: [10.0.1.1:8080] }          # named pools, for routes
 *   policy: round-robin                      # or least-connections
 *   routes: [{ serverName: api.example.com, pool: api }, { alpn: h2, pool: api }]
 *   proxyProtocol: v2                        # or off (the default): a PROXY v2 header before the plaintext
 *   healthCheck: { intervalMs: 2000, rise: 2, fall: 3, connectTimeoutMs: 2000 }  # intervalMs 0: off
 * relays: 3
 * replication: { enabled: true, batchInputs: 32, batchDelayMs: 5 }
 * watchdogMs: 1000
 * handshakeTimeoutMs: 10000              # 0: off; and idleTimeoutMs (300000), backendConnectTimeoutMs (5000)
 * maxConnections: 10000
 * maxHandshakeChangeCipherSpecs: 32        # and maxHandshakeWarningAlerts (32): more in a handshake is unexpected_message
 * maxUnreadKeyUpdates: 32                  # KeyUpdates answered to a client that does not read; one more closes it
 * retainedBudgetBytes: 268435456           # input retained for replay, all connections; above: those over their share not read
 * drainTimeoutMs: 30000                    # SIGTERM / POST /drain: live connections get this long, then close_notify; 0: at once
 * tickets: { rotationSeconds: 3600 }      # or { keyFile: tickets.keys }, shared by several processes
 *                                         # mode: stateful: single-use tickets, state in the cluster's store (default stateless)
 * admin: { address: 127.0.0.1:9901, tokenFile: /run/baton/admin.token }
 * nats: { join: nats://10.0.0.5:4222, node: edge-1, cluster: baton, nkeyFile: edge-1.nk }  # several nodes (cluster/node.ts)
 * ```
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { ProxyProtocolMode } from '../relay/proxy-protocol.js';
import { BALANCE_POLICIES, DEFAULT_POOL, type BackendsSpec } from '../relay/backend-pool.js';
import { DEFAULT_HEALTH_CHECK } from '../relay/health-check.js';
import type { RelayCertificate, TlsSettings } from '../relay/settings.js';
import type { TicketKeys } from '../tls/index.js';
import { loadCertifiedKey } from '../tls/index.js';
import { isLoopback, parseHostPort, type HostPort } from '../util/host-port.js';
import { badNodeName } from '../actors/index.js';
import { parseNatsUrl, type NatsUrl } from './nats-url.js';

export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError';
  readonly code = 'BATON_ERR_CONFIG';
}

/** A configuration file, read and checked. Holds private keys (PEM): secret. */
export interface ClusterFileConfig {
  readonly file: string;
  readonly listen: HostPort;
  /** The first backend of the default pool (what one-backend code paths name). */
  readonly backend: HostPort;
  /** Every backend, pools, policy, routes and health checks; `backend: X` alone is a pool of one. */
  readonly backends: BackendsSpec;
  readonly relays?: number;
  /** PROXY protocol header toward the backend (relay/proxy-protocol.ts). */
  readonly proxyProtocol?: ProxyProtocolMode;
  /** Everything of a configuration version except the ticket keys, which the cluster owns. */
  readonly tls: Omit<TlsSettings, 'ticketKeys'>;
  /** Whether connection state is committed (takeover); the batch fields of older files are ignored. */
  readonly replication?: boolean;
  /** Fields the file sets that no longer do anything, with why (warned about at start). */
  readonly obsolete: readonly string[];
  readonly watchdogMs?: number;
  /** Connection deadlines in milliseconds (0: off) and the connection limit (cli/limits.ts). */
  readonly handshakeTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly backendConnectTimeoutMs?: number;
  readonly maxConnections?: number;
  /** Caps and the retained-input budget (cli/limits.ts). */
  readonly maxHandshakeChangeCipherSpecs?: number;
  readonly maxHandshakeWarningAlerts?: number;
  readonly maxUnreadKeyUpdates?: number;
  readonly retainedBudgetBytes?: number;
  /** Graceful drain: how long live connections may finish before close_notify (cluster/drain.ts). */
  readonly drainTimeoutMs?: number;
  readonly ticketRotationSeconds?: number;
  /**
   * Ticket keys from a file, so that several Baton processes open each other's tickets
   * (a client resumes on another process after this one died). Secret. Rotate them by
   * rewriting the file and reloading.
   */
  readonly ticketKeys?: TicketKeys;
  readonly admin?: { readonly address?: HostPort; readonly tokenFile?: string };
  /** Joining other nodes through NATS (cluster/node.ts): where, as which node, in which cluster. */
  readonly nats?: { readonly join: NatsUrl; readonly node?: string; readonly cluster?: string; readonly nkeyFile?: string };
}

const natsName = z.string().superRefine((v, ctx) => {
  const bad = badNodeName(v);
  if (bad !== undefined) ctx.addIssue({ code: 'custom', message: bad });
});

const hostPort = (opts: { allowPortZero: boolean; loopbackOnly?: boolean }) =>
  z.string().transform((value, ctx) => {
    const r = parseHostPort(value, opts);
    if (typeof r === 'string') {
      ctx.addIssue({ code: 'custom', message: `"${value}": ${r}` });
      return z.NEVER;
    }
    if (opts.loopbackOnly && !isLoopback(r.host)) {
      ctx.addIssue({ code: 'custom', message: `"${value}": the admin API listens on loopback only (127.0.0.1 or ::1)` });
      return z.NEVER;
    }
    return r;
  });

const SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const;
const GROUPS = ['x25519', 'secp256r1', 'secp384r1'] as const;

/** A connection deadline in milliseconds: 0 (off) to a day. */
const timeoutMs = z.number().int().min(0).max(86_400_000).optional();

const backendList = z.array(hostPort({ allowPortZero: false })).min(1, 'at least one HOST:PORT is required');

const backendsSchema = z
  .strictObject({
    servers: backendList.optional(),
    /** PROXY protocol header toward every backend (relay/proxy-protocol.ts). */
    proxyProtocol: z.enum(['v2', 'off']).optional(),
    pools: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a pool name is letters, digits, _ . - (at most 64)'), backendList).optional(),
    policy: z.enum(BALANCE_POLICIES).optional(),
    routes: z
      .array(
        z
          .strictObject({ serverName: z.string().min(1).max(253).optional(), alpn: z.string().min(1).max(255).optional(), pool: z.string().min(1) })
          .refine((r) => r.serverName !== undefined || r.alpn !== undefined, 'a route needs serverName or alpn (or both)'),
      )
      .optional(),
    healthCheck: z
      .strictObject({
        intervalMs: z.number().int().min(0).max(3_600_000).optional(),
        rise: z.number().int().min(1).max(100).optional(),
        fall: z.number().int().min(1).max(100).optional(),
        connectTimeoutMs: z.number().int().min(1).max(600_000).optional(),
      })
      .optional(),
  })
  .superRefine((b, ctx) => {
    if (b.pools?.[DEFAULT_POOL] !== undefined && b.servers !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['pools', DEFAULT_POOL], message: `servers is the "${DEFAULT_POOL}" pool: give one or the other` });
    }
    (b.routes ?? []).forEach((r, i) => {
      if (r.pool !== DEFAULT_POOL && b.pools?.[r.pool] === undefined) {
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'pool'], message: `no pool named "${r.pool}" in backends.pools` });
      }
    });
  });

const schema = z.strictObject({
  listeners: z
    .array(
      z.strictObject({
        address: hostPort({ allowPortZero: true }),
        certificates: z
          .array(
            z.strictObject({
              cert: z.string().min(1),
              key: z.string().min(1),
              names: z.array(z.string().min(1)).min(1).optional(),
            }),
          )
          .min(1, 'at least one certificate is required'),
        alpn: z.array(z.string().min(1).max(255)).min(1).optional(),
        cipherSuites: z.array(z.enum(SUITES)).min(1).optional(),
        groups: z.array(z.enum(GROUPS)).min(1).optional(),
      }),
    )
    .length(1, 'exactly one listener is supported'),
  backend: hostPort({ allowPortZero: false }).optional(),
  backends: backendsSchema.optional(),
  relays: z.number().int().min(1).max(256).optional(),
  replication: z
    .strictObject({
      enabled: z.boolean().default(true),
      // Obsolete: state is committed after every batch a relay handles. Still accepted.
      batchInputs: z.number().int().min(1).max(1_000_000).optional(),
      batchDelayMs: z.number().int().min(0).max(60_000).optional(),
    })
    .optional(),
  watchdogMs: z.number().int().min(50).max(3_600_000).optional(),
  handshakeTimeoutMs: timeoutMs,
  idleTimeoutMs: timeoutMs,
  backendConnectTimeoutMs: timeoutMs,
  maxConnections: z.number().int().min(1).max(100_000).optional(),
  maxHandshakeChangeCipherSpecs: z.number().int().min(1).max(100_000).optional(),
  maxHandshakeWarningAlerts: z.number().int().min(0).max(100_000).optional(),
  maxUnreadKeyUpdates: z.number().int().min(0).max(100_000).optional(),
  retainedBudgetBytes: z.number().int().min(1 << 20).max(64 * 2 ** 30).optional(),
  drainTimeoutMs: timeoutMs,
  tickets: z
    .strictObject({
      rotationSeconds: z.number().int().min(1).max(604_800).optional(),
      keyFile: z.string().min(1).optional(),
      mode: z.enum(['stateless', 'stateful']).optional(),
    })
    .refine((t) => !(t.rotationSeconds && t.keyFile), 'rotationSeconds and keyFile exclude each other: keys from a file rotate when the file changes')
    .optional(),
  admin: z
    .strictObject({
      address: hostPort({ allowPortZero: true, loopbackOnly: true }).optional(),
      tokenFile: z.string().min(1).optional(),
    })
    .optional(),
  nats: z
    .strictObject({
      join: z.string().transform((value, ctx) => {
        const r = parseNatsUrl(value);
        if (typeof r === 'string') {
          ctx.addIssue({ code: 'custom', message: r });
          return z.NEVER;
        }
        return r;
      }),
      node: natsName.optional(),
      cluster: natsName.optional(),
      nkeyFile: z.string().min(1).optional(),
    })
    .optional(),
});

/** `listeners[0].certificates[1].key` from a zod path. */
function fieldName(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '') || '(top level)';
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : 'unreadable');
    throw new ConfigFileError(`${what}: cannot read "${file}" (${reason})`);
  }
}

/**
 * A ticket key file: one key per line, 96 hex digits each (a 16-byte id, then a
 * 32-byte secret); the first line seals new tickets, the others are still accepted.
 * `#` starts a comment. Make one with `openssl rand -hex 48`.
 */
export function readTicketKeys(configFile: string, keyFile: string): TicketKeys {
  const field = `${configFile}: tickets.keyFile`;
  const lines = readText(keyFile, field)
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l.length > 0);
  if (lines.length === 0) throw new ConfigFileError(`${field}: "${keyFile}" holds no key`);
  const keys = lines.map((line, i) => {
    if (!/^[0-9a-fA-F]{96}$/.test(line)) {
      // The line is secret: say where, never what.
      throw new ConfigFileError(`${field}: "${keyFile}" line ${i + 1} is not 96 hex digits (a 16-byte id and a 32-byte secret)`);
    }
    const bytes = Buffer.from(line, 'hex');
    return { id: new Uint8Array(bytes.subarray(0, 16)), secret: new Uint8Array(bytes.subarray(16)) };
  });
  return { current: keys[0]!, previous: keys.slice(1) };
}

/**
 * Reads, parses and checks a configuration file; certificates are loaded and matched to
 * their keys. `text`: the file's text, already read (see config-read.ts).
 */
export function loadConfigFile(path: string, text?: string): ClusterFileConfig {
  const file = resolve(path);
  text ??= readText(file, file);
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ConfigFileError(`${file}: not valid YAML or JSON: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigFileError(`${file}: ${fieldName(issue.path)}: ${issue.message}`);
  }
  const c = parsed.data;
  const defaultPool = c.backends?.servers ?? c.backends?.pools?.[DEFAULT_POOL] ?? (c.backend ? [c.backend] : undefined);
  if (c.backend && (c.backends?.servers || c.backends?.pools?.[DEFAULT_POOL])) {
    throw new ConfigFileError(`${file}: backend: give the backend or backends.servers, not both`);
  }
  if (!defaultPool) throw new ConfigFileError(`${file}: backend: required (HOST:PORT), or backends.servers (a list of them)`);
  const backends: BackendsSpec = {
    pools: { ...c.backends?.pools, [DEFAULT_POOL]: defaultPool },
    policy: c.backends?.policy ?? 'round-robin',
    routes: c.backends?.routes ?? [],
    // One backend alone is not checked unless asked (nowhere else to send a connection).
    health: {
      ...DEFAULT_HEALTH_CHECK,
      ...(c.backends?.healthCheck === undefined && Object.values({ ...c.backends?.pools, [DEFAULT_POOL]: defaultPool }).flat().length === 1 ? { intervalMs: 0 } : {}),
      ...c.backends?.healthCheck,
    },
  };
  const listener = c.listeners[0]!;
  const base = dirname(file);
  const certificates: RelayCertificate[] = listener.certificates.map((entry, i) => {
    const field = `listeners[0].certificates[${i}]`;
    const cert = readText(resolve(base, entry.cert), `${file}: ${field}.cert`);
    const key = readText(resolve(base, entry.key), `${file}: ${field}.key`);
    const certificate: RelayCertificate = { cert, key, ...(entry.names ? { names: entry.names } : {}) };
    try {
      loadCertifiedKey(certificate);
    } catch (e) {
      throw new ConfigFileError(`${file}: ${field}: ${e instanceof Error ? e.message : 'invalid certificate'}`);
    }
    return certificate;
  });
  return {
    file,
    listen: listener.address,
    backend: defaultPool[0]!,
    backends,
    ...(c.relays ? { relays: c.relays } : {}),
    ...(c.backends?.proxyProtocol ? { proxyProtocol: c.backends.proxyProtocol } : {}),
    tls: {
      certificates,
      ...(listener.alpn ? { alpn: listener.alpn } : {}),
      ...(listener.cipherSuites ? { cipherSuites: listener.cipherSuites } : {}),
      ...(listener.groups ? { groups: listener.groups } : {}),
      ...(c.tickets?.mode === 'stateful' ? { ticketMode: 'stateful' as const } : {}),
    },
    ...(c.replication ? { replication: c.replication.enabled } : {}),
    obsolete: (['batchInputs', 'batchDelayMs'] as const)
      .filter((k) => c.replication?.[k] !== undefined)
      .map((k) => `replication.${k} is no longer used: relays commit connection state after every batch they handle`),
    ...(c.watchdogMs ? { watchdogMs: c.watchdogMs } : {}),
    ...(c.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: c.handshakeTimeoutMs } : {}),
    ...(c.idleTimeoutMs !== undefined ? { idleTimeoutMs: c.idleTimeoutMs } : {}),
    ...(c.backendConnectTimeoutMs !== undefined ? { backendConnectTimeoutMs: c.backendConnectTimeoutMs } : {}),
    ...(c.maxConnections !== undefined ? { maxConnections: c.maxConnections } : {}),
    ...(c.maxHandshakeChangeCipherSpecs !== undefined ? { maxHandshakeChangeCipherSpecs: c.maxHandshakeChangeCipherSpecs } : {}),
    ...(c.maxHandshakeWarningAlerts !== undefined ? { maxHandshakeWarningAlerts: c.maxHandshakeWarningAlerts } : {}),
    ...(c.maxUnreadKeyUpdates !== undefined ? { maxUnreadKeyUpdates: c.maxUnreadKeyUpdates } : {}),
    ...(c.retainedBudgetBytes !== undefined ? { retainedBudgetBytes: c.retainedBudgetBytes } : {}),
    ...(c.drainTimeoutMs !== undefined ? { drainTimeoutMs: c.drainTimeoutMs } : {}),
    ...(c.tickets?.rotationSeconds ? { ticketRotationSeconds: c.tickets.rotationSeconds } : {}),
    ...(c.tickets?.keyFile ? { ticketKeys: readTicketKeys(file, resolve(base, c.tickets.keyFile)) } : {}),
    ...(c.admin
      ? { admin: { ...(c.admin.address ? { address: c.admin.address } : {}), ...(c.admin.tokenFile ? { tokenFile: resolve(base, c.admin.tokenFile) } : {}) } }
      : {}),
    ...(c.nats ? { nats: { ...c.nats, ...(c.nats.nkeyFile ? { nkeyFile: resolve(base, c.nats.nkeyFile) } : {}) } } : {}),
  };
}
