/**
 * `baton cluster`: takes the flags checked by cluster-flags.ts into {@link ClusterOptions}, loads or
 * makes the certificate, starts a local cluster (`Cluster.start`) and runs it
 * until SIGINT (closes at once) or SIGTERM / `POST /drain` (drains first: no new
 * connections, live ones finish until `--drain-timeout`, then close_notify; drain.ts),
 * then closes it and exits 0.
 *
 * Every bad input becomes a {@link CliError} that names the flag or file and
 * what is wrong with it, and is reported before anything starts.
 *
 * With `--config FILE` the values come from the file (config-file.ts) and the flags
 * typed on the command line override it. The file is reloaded on SIGHUP and by the
 * admin API's `POST /config` (`baton reload`): its TLS settings roll out as the next
 * configuration version; settings that need a restart are kept, with a warning.
 * Without `--config`, SIGHUP and `POST /config` re-read `--cert`/`--key` and roll the
 * certificate out the same way (sighup.ts); SIGHUP never kills the cluster.
 *
 * With `--join nats://HOST:PORT --node NAME` the node joins the others on that NATS
 * (cluster/node.ts): membership heartbeats, remote actors, `baton status` listing every
 * node and `baton crash --node` reaching any; and one configuration for all of them
 * (cluster/node-config.ts): the node comes up on the cluster's active version (its own
 * files are the cluster's first version only when it starts the cluster), a reload on
 * any node rolls out to every live node, and the ticket keys rotate once for all, so a
 * session resumes on any node. Without it, nothing of that runs. A NATS that does not
 * answer at start does not stop the node: it serves on its own configuration and joins
 * when NATS answers (cluster/node-join.ts); NATS refusing its credentials does.
 */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { describeReason, type SupervisorEvent } from '../actors/index.js';
import { certificateFacts, type CertificateFacts } from '../cluster/certificate-facts.js';
import { AdminApi, crashRelay, nodeSummary, type DrainControl, type NodesControl, type ReloadResult } from '../cluster/admin-api.js';
import type { ClusterNode } from '../cluster/node.js';
import type { NodeConfig } from '../cluster/node-config.js';
import type { NodeJoin } from '../cluster/node-join.js';
import { ConfigFileError, loadConfigFile } from '../cluster/config-file.js';
import { readConfigText } from '../cluster/config-read.js';
import { ClusterMetrics } from '../cluster/metrics.js';
import { DEFAULT_ADMIN, TokenFileError, defaultTokenFile, newAdminToken, writeTokenFile } from '../cluster/token.js';
import { Cluster, SESSION_TTL_MS, type ClusterOptions } from '../cluster/cluster.js';
import { SESSIONS_BUCKET } from '../cluster/stateful-sessions.js';
import { shortDigest } from '../cluster/config-version.js';
import { ConfigReloader, localReloadTarget, type ReloadCandidate } from '../cluster/reload.js';
import { BALANCE_POLICIES, describeBackends } from '../relay/backend-pool.js';
import type { RelayCertificate, TlsSettings } from '../relay/settings.js';
import { TlsConfigError, loadCertifiedKey } from '../tls/index.js';
import { LOG_LEVELS, createLogger, type LogFields, type LogLevel, type Logger } from '../util/log.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './errors.js';
import { makeSelfSigned } from './self-signed.js';
import { systemClock } from '../util/clock.js';
import { DEFAULT_DRAIN_TIMEOUT_SECONDS, Drain, type DrainCause } from '../cluster/drain.js';
import { LIMIT_OPTIONS, limitFields } from './limits.js';
import { CLUSTER_DEFAULTS, formatHostPort, parseClusterFlags, readConfigFile, type ClusterFlags, type RawClusterFlags } from './cluster-flags.js';
import { handleSighup, hupPlan } from './sighup.js';

/** Registers `cluster` on the program. */
export function registerClusterCommand(program: Command): void {
  program
    .command('cluster')
    .option('--relays <n>', 'relay actors, one worker thread each (default: one per core, at least 2)', CLUSTER_DEFAULTS.relays)
    .option('--listen <host:port>', 'TLS address to listen on (port 0: any free port)', CLUSTER_DEFAULTS.listen)
    .option('--backend <host:port,...>', 'plaintext TCP backend(s) to forward to, comma-separated; several are balanced and health-checked (required)')
    .option('--balance <policy>', `how several backends share connections: ${BALANCE_POLICIES.join(' or ')} (default: round-robin)`)
    .option('--cert <file>', 'PEM certificate chain, leaf first (default: a self-signed one for localhost); re-read on SIGHUP')
    .option('--key <file>', 'PEM private key of the leaf certificate (with --cert)')
    .option('--watchdog-ms <ms>', 'heartbeat deadline before a silent relay is declared hung (default: 1000)')
    .option('--alpn <list>', 'ALPN protocols in preference order, comma-separated, e.g. h2,http/1.1')
    .option('--replication <on|off>', 'commit connection state for takeover by a sibling relay (off: a relay crash ends its connections)', CLUSTER_DEFAULTS.replication)
    .option('--tickets <stateless|stateful>', 'session tickets: stateless (the default; the state sealed in the ticket) or stateful (single-use: an id, the sealed state in the cluster store)')
    .option('--proxy-protocol <v2|off>', 'send a PROXY protocol v2 header (client address, SNI, ALPN, cipher) to the backend before the plaintext', CLUSTER_DEFAULTS.proxyProtocol)
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, CLUSTER_DEFAULTS.logLevel)
    .option('--admin <host:port|off>', `admin API address, loopback only (port 0: any free port; off: no admin API) (default: "${DEFAULT_ADMIN.host}:${DEFAULT_ADMIN.port}")`)
    .option('--token-file <path>', `where to write the admin API token, mode 0600 (default: "${defaultTokenFile(DEFAULT_ADMIN.port)}", admin-PORT.token for another port)`)
    .option(LIMIT_OPTIONS[0]![0], LIMIT_OPTIONS[0]![1])
    .option(LIMIT_OPTIONS[1]![0], LIMIT_OPTIONS[1]![1])
    .option(LIMIT_OPTIONS[2]![0], LIMIT_OPTIONS[2]![1])
    .option(LIMIT_OPTIONS[3]![0], LIMIT_OPTIONS[3]![1])
    .option(LIMIT_OPTIONS[4]![0], LIMIT_OPTIONS[4]![1])
    .option(LIMIT_OPTIONS[5]![0], LIMIT_OPTIONS[5]![1])
    .option(LIMIT_OPTIONS[6]![0], LIMIT_OPTIONS[6]![1])
    .option(LIMIT_OPTIONS[7]![0], LIMIT_OPTIONS[7]![1])
    .option(
      '--drain-timeout <seconds>',
      `on SIGTERM or POST /drain, how long live connections may finish before each gets close_notify, e.g. 30, 500ms, 2m; 0: at once (default: ${DEFAULT_DRAIN_TIMEOUT_SECONDS})`,
    )
    .option('--config <file>', 'YAML or JSON configuration file (flags given on the command line override it); reloaded on SIGHUP, POST /config or `baton reload`')
    .option('--join <nats-url>', 'join the other nodes of the cluster on this NATS server (with JetStream), e.g. nats://127.0.0.1:4222 (default: a node alone)')
    .option('--node <name>', 'this node\'s name in the cluster, unique: letters, digits, - and _ (with --join; default: the host name)')
    .option('--nats-nkey <file>', 'this node\'s own NATS credentials: a file holding its NKey user seed (SU..., mode 600), whose public key the NATS server lists (with --join)')
    .option('--cluster-name <name>', 'the cluster the node joins; nodes of other clusters on the same NATS are apart (with --join; default: "baton")')
    .action(async (raw: RawClusterFlags, cmd: Command) => {
      // Only what was typed on the command line overrides the file; defaults apply last.
      const cli = Object.fromEntries(Object.entries(raw).filter(([k]) => cmd.getOptionValueSource(k) === 'cli')) as RawClusterFlags;
      if (raw.config === undefined) {
        process.exitCode = await runCluster(parseClusterFlags(raw), stdoutIo, { cli });
        return;
      }
      if (raw.config === '') throw new CliError('--config is empty: give a file path');
      const file = readConfigFile(raw.config);
      process.exitCode = await runCluster(parseClusterFlags(cli, file), stdoutIo, { cli, configPath: file.file });
    });
}

/** The certificate the cluster serves, and what to print about it (public facts only). */
export interface LoadedCertificate extends CertificateFacts {
  readonly certificate: RelayCertificate;
  readonly selfSigned: boolean;
}

/**
 * Reads `--cert`/`--key` and checks that they load (parse, supported key, key
 * matches the leaf) before any relay starts; or makes a self-signed certificate.
 */
export async function loadClusterCertificate(files: ClusterFlags['files']): Promise<LoadedCertificate> {
  if (!files) {
    const made = await makeSelfSigned();
    return { certificate: { cert: made.cert, key: made.key }, ...certificateFacts(made.cert), selfSigned: true };
  }
  const cert = await readPem('--cert', files.cert);
  const key = await readPem('--key', files.key);
  try {
    loadCertifiedKey({ cert, key });
  } catch (e) {
    // TlsConfigError messages never hold key material; anything else is not ours to print.
    const why = e instanceof TlsConfigError ? e.message : 'the certificate or key cannot be loaded';
    throw new CliError(`--cert "${files.cert}" with --key "${files.key}": ${why}`);
  }
  return { certificate: { cert, key }, ...certificateFacts(cert), selfSigned: false };
}

async function readPem(flag: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // Node's message is "CODE: description, syscall 'path'": keep "CODE: description".
    const reason = typeof err.message === 'string' ? err.message.split(',')[0] : String(e);
    throw new CliError(`${flag}: cannot read "${path}": ${reason}`);
  }
}


/** The message and level of a supervisor event's log line. */
export function describeEvent(e: SupervisorEvent): { level: LogLevel; line: string } {
  switch (e.type) {
    case 'Crashed': {
      const thread = e.crash.threadId === undefined ? '' : ` on thread ${e.crash.threadId}`;
      const fault = e.crash.fault ? ` (injected ${e.crash.fault.kind}${e.crash.fault.point ? ` at ${e.crash.fault.point}` : ''})` : '';
      return { level: 'warn', line: `${e.child} crashed${thread}: ${describeReason(e.crash.reason)}${fault}` };
    }
    case 'Restarted':
      return { level: 'info', line: `${e.child} restarted on thread ${e.threadId} (${e.recent} restart${e.recent === 1 ? '' : 's'} in the current period)` };
    case 'Escalated':
      return { level: 'error', line: `restart limit exceeded after ${e.child} (${describeReason(e.cause)}): the relay supervisor gave up` };
    default: {
      const never: never = e;
      return never;
    }
  }
}

/** The structured fields of a supervisor event's log line (public facts only). */
export function eventFields(e: SupervisorEvent): LogFields {
  switch (e.type) {
    case 'Crashed':
      return {
        event: 'relay.crashed',
        relay: e.child,
        reason: e.crash.reason.kind,
        ...(e.crash.threadId !== undefined ? { threadId: e.crash.threadId } : {}),
        ...(e.crash.fault ? { fault: e.crash.fault.kind, ...(e.crash.fault.point ? { faultPoint: e.crash.fault.point } : {}) } : {}),
      };
    case 'Restarted':
      return { event: 'relay.restarted', relay: e.child, threadId: e.threadId, recentRestarts: e.recent };
    case 'Escalated':
      return { event: 'supervisor.escalated', relay: e.child, reason: e.cause.kind };
    default: {
      const never: never = e;
      return never;
    }
  }
}

/** Where the command writes; a seam for tests. The start line is plain text, every other line JSON. */
export interface ClusterIo {
  readonly out: (line: string) => void;
}

const stdoutIo: ClusterIo = { out: (line) => process.stdout.write(`${line}\n`) };

/** How long a clean close may take before we give up and exit 1. */
const CLOSE_TIMEOUT_MS = 10_000;

/** Where the running configuration came from, to reload it. */
export interface ClusterSource {
  /** The flags given on the command line: they override every file loaded. */
  readonly cli: RawClusterFlags;
  /** The `--config` file, reloaded on SIGHUP and by `POST /config` without a path. */
  readonly configPath?: string;
}

/** Public facts of the first certificate of a configuration file. */
function describeFileCertificates(certificates: readonly RelayCertificate[]): LoadedCertificate {
  return { certificate: certificates[0]!, ...certificateFacts(certificates[0]!.cert), selfSigned: false };
}

/** The settings that a running cluster cannot change, named as a file field and shown as a value. */
function restartOnly(f: ClusterFlags): Record<string, string> {
  return {
    'listeners[0].address': formatHostPort(f.listen.host, f.listen.port),
    relays: String(f.relays),
    replication: f.replication ? 'on' : 'off',
    // Read by the gateway, which is built once at start.
    'backends.proxyProtocol': f.proxyProtocol,
    watchdogMs: f.watchdogMs === undefined ? 'default' : String(f.watchdogMs),
    'admin.address': f.admin === undefined ? 'default' : f.admin === 'off' ? 'off' : formatHostPort(f.admin.host, f.admin.port),
    'admin.tokenFile': f.tokenFile ?? 'default',
    'nats.join': f.join?.url.url ?? 'none',
    'nats.node': f.join?.node ?? 'none',
    'nats.cluster': f.join?.cluster ?? 'none',
    'nats.nkeyFile': f.join?.nkey?.file ?? 'none',
    ...limitFields(f.limits),
    drainTimeoutMs: String(f.drainTimeoutMs),
  };
}

/** The TLS part of a configuration version from validated flags (certificates given separately). */
function tlsOf(flags: ClusterFlags, certificates: readonly RelayCertificate[]): Omit<TlsSettings, 'ticketKeys'> {
  const t = flags.config?.tls;
  return {
    certificates,
    ...(flags.alpn ? { alpn: flags.alpn } : {}),
    ...(t?.cipherSuites ? { cipherSuites: t.cipherSuites } : {}),
    ...(t?.groups ? { groups: t.groups } : {}),
    ...(flags.ticketMode ? { ticketMode: flags.ticketMode } : {}),
  };
}

/**
 * Reads what a reload rolls out: the configuration file (`path`, or the --config one),
 * or without either the --cert/--key files again; never throws for a bad file. The
 * --cert/--key files are always read afresh (a renewed certificate at the same path is
 * picked up). Rolling it out is the cluster's (ConfigReloader, cluster/reload.ts).
 */
async function readReload(
  flags: ClusterFlags,
  source: ClusterSource,
  path: string | undefined,
  serving: string,
  log: (level: LogLevel, msg: string, fields?: LogFields) => void,
): Promise<ReloadCandidate | Extract<ReloadResult, { status: 'invalid' }>> {
  const target = path ?? source.configPath;
  let next: ClusterFlags;
  if (target === undefined) {
    if (!flags.files) {
      return {
        status: 'invalid',
        error: 'the cluster was started without --config or --cert/--key: give the file to load ({"path": "/abs/baton.yaml"}, or baton reload --file FILE)',
      };
    }
    next = flags;
  } else {
    try {
      if (path !== undefined && source.configPath === undefined) {
        throw new ConfigFileError(`${path}: the cluster was started without --config: POST /config loads files only from the folder of the --config file`);
      }
      // A file named by POST /config must lie beside the --config one (config-read.ts).
      const text = await readConfigText(target, path !== undefined ? source.configPath : undefined);
      next = parseClusterFlags(source.cli, loadConfigFile(target, text));
    } catch (e) {
      if (!(e instanceof ConfigFileError) && !(e instanceof CliError)) throw e;
      log('error', `configuration not reloaded: ${e.message}`, { event: 'config.invalid', configFile: target, error: e.message });
      return { status: 'invalid', error: e.message };
    }
  }
  let leaf: LoadedCertificate;
  if (next.files) {
    try {
      leaf = await loadClusterCertificate(next.files);
    } catch (e) {
      if (!(e instanceof CliError)) throw e;
      log('error', `certificate not reloaded, still serving sha256 ${serving}: ${e.message}`, {
        event: 'config.invalid',
        certFile: next.files.cert,
        keyFile: next.files.key,
        error: e.message,
      });
      return { status: 'invalid', error: e.message };
    }
  } else {
    leaf = describeFileCertificates(next.config!.tls.certificates);
  }
  const certificates = next.files ? [leaf.certificate] : next.config!.tls.certificates;
  return {
    tls: tlsOf(next, certificates),
    ...(next.config?.ticketKeys ? { ticketKeys: next.config.ticketKeys } : {}),
    backends: next.backends,
    ...(next.config?.ticketRotationSeconds !== undefined ? { ticketRotationSeconds: next.config.ticketRotationSeconds } : {}),
    restartOnly: restartOnly(next),
    obsolete: next.config?.obsolete ?? [],
    leaf,
    ...(target !== undefined ? { configFile: target } : {}),
    ...(next.files ? { certFiles: next.files } : {}),
  };
}

/**
 * Starts the cluster, prints the start line, and resolves with the exit code
 * once a signal (or a supervisor escalation) has closed it.
 */
export async function runCluster(flags: ClusterFlags, io: ClusterIo = stdoutIo, source: ClusterSource = { cli: {} }): Promise<number> {
  const logger: Logger = createLogger({ level: flags.logLevel, destination: { write: (line: string) => io.out(line.replace(/\n$/, '')) } });
  const log = (level: LogLevel, msg: string, fields?: LogFields) => logger[level](msg, fields);
  const metrics = new ClusterMetrics({ processMetrics: true });

  // --cert/--key on the command line win over the file's certificates.
  const fromFile = flags.files === undefined && flags.config !== undefined;
  const loaded = fromFile ? describeFileCertificates(flags.config!.tls.certificates) : await loadClusterCertificate(flags.files);
  const certificates = fromFile ? flags.config!.tls.certificates : [loaded.certificate];
  const tls = tlsOf(flags, certificates);
  const rotationSeconds = flags.config?.ticketRotationSeconds;

  // A signal during start is honoured once the cluster is up. SIGTERM drains (drain.ts):
  // what service managers send to stop a service, which should not cut live connections.
  // SIGINT (Ctrl-C) closes at once, as before. A signal during the drain ends it at once;
  // one more while closing exits without a clean close.
  let stop!: (why: StopReason) => void;
  const stopped = new Promise<StopReason>((resolve) => (stop = resolve));
  let interruptDrain!: (cause: DrainInterruption) => void;
  const drainInterrupted = new Promise<DrainInterruption>((resolve) => (interruptDrain = resolve));
  // The relay supervisor giving up during a drain ends it too (no relay is left to serve), and the exit is 1.
  let escalated = false;
  let phase: 'running' | 'draining' | 'closing' = 'running';
  const onSignal = (signal: NodeJS.Signals) => {
    switch (phase) {
      case 'running':
        phase = signal === 'SIGTERM' ? 'draining' : 'closing';
        stop(signal === 'SIGTERM' ? { drain: 'SIGTERM' } : { signal });
        return;
      case 'draining':
        phase = 'closing';
        interruptDrain(signal);
        return;
      case 'closing':
        log('error', `${signal} again: exiting without a clean close`, { event: 'cluster.killed', signal });
        process.exit(EXIT_FAILURE);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // SIGHUP never kills: it reloads what the cluster was started from (see sighup.ts).
  const hup = handleSighup(hupPlan(source.configPath, flags.files), log);

  const options: ClusterOptions = {
    relays: flags.relays,
    listen: flags.listen,
    backend: flags.backend,
    backends: flags.backends,
    certificates: tls.certificates,
    replication: flags.replication,
    proxyProtocol: flags.proxyProtocol,
    ...(tls.alpn ? { alpn: tls.alpn } : {}),
    ...(tls.cipherSuites ? { cipherSuites: tls.cipherSuites } : {}),
    ...(tls.groups ? { groups: tls.groups } : {}),
    ...(tls.ticketMode ? { ticketMode: tls.ticketMode } : {}),
    // A joined node rotates through the cross-node agent, once for every node.
    ...(rotationSeconds !== undefined && !flags.join ? { ticketRotationMs: rotationSeconds * 1000 } : {}),
    ...(flags.config?.ticketKeys ? { ticketKeys: flags.config.ticketKeys } : {}),
    ...(flags.watchdogMs !== undefined ? { watchdogMs: flags.watchdogMs } : {}),
    maxConnections: flags.limits.maxConnections,
    maxHandshakeChangeCipherSpecs: flags.limits.maxHandshakeChangeCipherSpecs,
    maxHandshakeWarningAlerts: flags.limits.maxHandshakeWarningAlerts,
    maxUnreadKeyUpdates: flags.limits.maxUnreadKeyUpdates,
    retainedBudgetBytes: flags.limits.retainedBudgetBytes,
    deadlines: {
      handshakeTimeoutMs: flags.limits.handshakeTimeoutMs,
      idleTimeoutMs: flags.limits.idleTimeoutMs,
      backendConnectTimeoutMs: flags.limits.backendConnectTimeoutMs,
    },
    onEvent: (e) => {
      metrics.supervisorEvent(e);
      const { level, line } = describeEvent(e);
      log(level, line, eventFields(e));
      if (e.type === 'Escalated') {
        escalated = true;
        if (phase === 'running') phase = 'closing';
        interruptDrain('escalated');
        stop({ escalated: true });
      }
    },
  };

  try {
    let cluster: Cluster;
    try {
      cluster = await Cluster.start(options);
    } catch (e) {
      throw startError(e, flags);
    }
    metrics.attach(cluster);
    watchGateway(cluster, logger);
    const drain = new Drain(cluster.gateway, {
      timeoutMs: flags.drainTimeoutMs,
      onTimeout: (n) =>
        log('info', `drain timeout: closing ${n} connection${n === 1 ? '' : 's'} with close_notify`, { event: 'cluster.drainTimeout', connections: n }),
    });
    const drainControl: DrainControl = {
      request: () => {
        if (phase === 'running') {
          phase = 'draining';
          void drain.run('admin');
          stop({ drain: 'admin' });
        }
        return drain.status();
      },
      status: () => drain.status(),
    };

    let admin: StartedAdmin | null = null;
    let join: NodeJoin | undefined;
    let reloader!: ConfigReloader;
    const reload = async (path?: string): Promise<ReloadResult> => {
      const next = await readReload(flags, source, path, reloader.servingSha256, log);
      return 'status' in next ? next : reloader.apply(next);
    };
    // A joined node serves the cluster's active version, which may carry another node's certificate.
    let serving = loaded;
    try {
      if (flags.join) {
        const { NodeJoin } = await import('../cluster/node-join.js');
        const nodeJoin: NodeJoin = new NodeJoin({
          node: flags.join.node,
          cluster: flags.join.cluster,
          nats: flags.join.url.url,
          local: cluster,
          attempt: () => joinOnce(flags, cluster, metrics, logger, () => admin?.address ?? null, () => nodeJoin.joined?.config.running ?? null, tls.ticketMode),
          ...(rotationSeconds !== undefined ? { ticketRotationMs: rotationSeconds * 1000 } : {}),
          admin: () => admin?.address ?? null,
          log: logger,
          // Refused after the node started serving (it waited for NATS): it stops, as it would have at start.
          onFinal: (e) => {
            if (phase !== 'running') return;
            phase = 'closing';
            stop({ joinRefused: e instanceof CliError ? e : new CliError(e instanceof Error ? e.message : String(e), EXIT_FAILURE) });
          },
        });
        join = nodeJoin;
        if ((await nodeJoin.start()) === 'joined') {
          const leaf = describeFileCertificates(cluster.activeTls.certificates);
          if (leaf.fingerprint256 !== loaded.fingerprint256) serving = leaf;
        }
      }
      reloader = new ConfigReloader(
        join?.reloadTarget() ?? localReloadTarget(cluster),
        {
          restartOnly: restartOnly(flags),
          backends: flags.backends,
          servingSha256: serving.fingerprint256,
          ...(rotationSeconds !== undefined ? { ticketRotationSeconds: rotationSeconds } : {}),
        },
        log,
      );
      admin = await startAdmin(flags, cluster, metrics, logger, reload, drainControl, join);
    } catch (e) {
      await join?.close();
      metrics.detach();
      await cluster.close();
      throw e;
    }
    const listen = formatHostPort(cluster.address.address, cluster.address.port);
    const backend = describeBackends(flags.backends);
    const names = [serving.subject, serving.subjectAltName].filter((s) => s.length > 0).join('; ');
    // The start line stays plain text whatever the log level: it is what an operator reads first.
    io.out(
      `baton: ${flags.relays} relay${flags.relays === 1 ? '' : 's'} on ${listen} -> backend ${backend}; ` +
        `certificate sha256 ${serving.fingerprint256} (${serving.selfSigned ? 'self-signed, ' : ''}${names}${serving === loaded ? '' : ', the cluster\'s active version'})` +
        (flags.replication ? '' : '; replication off') +
        (flags.proxyProtocol === 'v2' ? '; PROXY protocol v2 to the backend' : '') +
        (cluster.activeTls.ticketMode === 'stateful' ? '; stateful tickets' : '') +
        `; record protection ${describeProtection(cluster.recordProtection)}` +
        `; config version ${cluster.activeConfig.version} (digest ${shortDigest(cluster.activeConfig.digest)}${source.configPath ? `, from ${source.configPath}` : ''})` +
        (flags.join ? `; node ${flags.join.node} of cluster ${flags.join.cluster} on ${flags.join.url.url}${join?.joined ? '' : ' (NATS unreachable: serving alone on this configuration, joining when it answers)'}` : '') +
        (admin ? `; admin http://${admin.address} (token file ${admin.tokenFile})` : '; admin off'),
    );
    log('info', 'cluster started', {
      event: 'cluster.started',
      relays: flags.relays,
      listen,
      backend,
      certificateSha256: serving.fingerprint256,
      replication: flags.replication,
      proxyProtocol: flags.proxyProtocol,
      recordProtection: cluster.recordProtection.mode,
      ...(cluster.recordProtection.reason ? { recordProtectionFallback: cluster.recordProtection.reason } : {}),
      admin: admin?.address ?? 'off',
      ...(admin ? { tokenFile: admin.tokenFile } : {}),
      configVersion: cluster.activeConfig.version,
      digest: shortDigest(cluster.activeConfig.digest),
      ...(source.configPath ? { configFile: source.configPath } : {}),
      ...(flags.join ? { node: flags.join.node, clusterName: flags.join.cluster, nats: flags.join.url.url, joined: join?.joined !== null } : {}),
    });
    for (const w of flags.config?.obsolete ?? []) log('warn', w, { event: 'config.obsolete', configFile: source.configPath });
    hup.ready(reload);

    const why = await stopped;
    if ('drain' in why) await runDrain(drain, why.drain, drainInterrupted, metrics, log);
    else if ('signal' in why) log('info', `${why.signal}: closing`, { event: 'cluster.closing', signal: why.signal });
    else if ('joinRefused' in why) log('error', `${why.joinRefused.message}: closing`, { event: 'cluster.closing', joinRefused: true });
    else log('error', 'closing the cluster', { event: 'cluster.closing', escalated: true });
    phase = 'closing';
    const closeAll = async () => {
      await join?.close();
      if (admin) {
        await admin.api.close();
        await admin.removeToken();
      }
      metrics.detach();
      await cluster.close();
    };
    const closed = await Promise.race([
      closeAll().then(() => true),
      new Promise<false>((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS, false).unref()),
    ]);
    if (!closed) throw new CliError(`the cluster did not close within ${CLOSE_TIMEOUT_MS} ms`, EXIT_FAILURE);
    if ('joinRefused' in why) throw why.joinRefused;
    if ('escalated' in why || escalated) return EXIT_FAILURE;
    log('info', 'closed', { event: 'cluster.closed' });
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    hup.dispose();
  }
}

/**
 * What ends `baton cluster`: a signal that closes at once, a drain request, an escalation,
 * or NATS refusing a node still waiting to join (its error is the command's).
 */
type StopReason = { signal: NodeJS.Signals } | { drain: DrainCause } | { escalated: true } | { joinRefused: CliError };

/** What cuts a drain short: a signal, or the relay supervisor giving up. */
type DrainInterruption = NodeJS.Signals | 'escalated';

/**
 * Runs the drain until no connection is left or its timeout has closed the rest, or
 * until a signal interrupts it (then the cluster closes at once).
 */
async function runDrain(
  drain: Drain,
  cause: DrainCause,
  interrupted: Promise<DrainInterruption>,
  metrics: ClusterMetrics,
  log: (level: LogLevel, msg: string, fields?: LogFields) => void,
): Promise<void> {
  metrics.drainStarted();
  const outcome = drain.run(cause);
  const s = drain.status()!;
  log('info', `${cause === 'admin' ? 'POST /drain' : cause}: draining ${s.connections} connection${s.connections === 1 ? '' : 's'}, no new ones; close_notify to the rest at ${new Date(s.deadline).toISOString()}`, {
    event: 'cluster.draining',
    cause,
    connections: s.connections,
    deadline: new Date(s.deadline).toISOString(),
  });
  const ended = await Promise.race([outcome, interrupted.then((by) => ({ kind: 'interrupted' as const, by }))]);
  switch (ended.kind) {
    case 'empty':
      log('info', 'drained: no connection left; closing', { event: 'cluster.drained', timedOut: false });
      return;
    case 'timedOut':
      log('info', `drain timeout: ${ended.closed} connection${ended.closed === 1 ? '' : 's'} closed with close_notify${ended.flushed ? '' : ' (not all written in time)'}; closing`, {
        event: 'cluster.drained',
        timedOut: true,
        closed: ended.closed,
        flushed: ended.flushed,
      });
      return;
    case 'interrupted':
      if (ended.by === 'escalated') log('error', 'the relay supervisor gave up during the drain: closing at once', { event: 'cluster.closing', escalated: true });
      else log('warn', `${ended.by} during the drain: closing at once`, { event: 'cluster.closing', signal: ended.by, connections: drain.status()?.connections ?? 0 });
      return;
    default: {
      const never: never = ended;
      return never;
    }
  }
}

/** Gateway events as log lines: per-connection ones at debug, losses at warn. */
function watchGateway(cluster: Cluster, log: Logger): void {
  const g = cluster.gateway;
  if (log.enabled('debug')) {
    g.on('handshake', (h) => log.debug('handshake', { event: 'conn.handshake', conn: h.conn, relay: h.relay, resumed: h.resumed, cipherSuite: h.cipherSuite }));
    g.on('takeover', (t) => log.debug('takeover', { event: 'conn.takeover', conn: t.conn, crash: t.kind, ms: t.ms }));
    g.on('connectionClosed', (c) => log.debug('connection closed', { event: 'conn.closed', conn: c.conn }));
    g.on('timedOut', (t) => log.debug(`connection closed: ${t.deadline} deadline passed`, { event: 'conn.timedOut', conn: t.conn, deadline: t.deadline }));
    g.on('limitExceeded', (l) => log.debug(`connection closed: ${l.limit} cap exceeded`, { event: 'conn.limitExceeded', conn: l.conn, limit: l.limit }));
  }
  // The budget may be reached and left many times a second under load: a warning at most every 10 s.
  let budgetLoggedAt = -Infinity;
  g.on('retainedBudget', (b) => {
    if (!b.paused) {
      log.debug('retained input is below half its budget: every connection is read again', { event: 'gateway.retainedBudget', paused: false, retainedBytes: b.retainedBytes });
      return;
    }
    if (systemClock.now() - budgetLoggedAt < 10_000) return;
    budgetLoggedAt = systemClock.now();
    log.warn(`retained input reached its budget (${b.retainedBytes} bytes; ${g.stats.retainedBudgetPauses} times so far): connections holding more than their share are not read until it halves`, {
      event: 'gateway.retainedBudget',
      paused: true,
      retainedBytes: b.retainedBytes,
      times: g.stats.retainedBudgetPauses,
    });
  });
  g.on('listenError', (e) => log.error(`the listening socket failed: ${e.message}`, { event: 'listen.error', code: (e as NodeJS.ErrnoException).code }));
  g.on('quarantined', (c) => log.warn(`connection quarantined: its input ${c.input} crashed two owners (last: ${c.crash})`, { event: 'conn.quarantined', conn: c.conn, input: c.input, crash: c.crash }));
  g.on('connectionLost', (c) => log.warn(`connection lost: ${c.reason}`, { event: 'conn.lost', conn: c.conn }));
}

interface StartedAdmin {
  readonly api: AdminApi;
  /** host:port it listens on. */
  readonly address: string;
  readonly tokenFile: string;
  readonly removeToken: () => Promise<void>;
}

/**
 * One attempt at joining (cluster/node-join.ts decides when): the node in the membership,
 * its configuration agent, and for stateful tickets the cluster's session bucket; on
 * failure everything opened is closed again, and the CliError keeps its cause's code.
 */
async function joinOnce(
  flags: ClusterFlags,
  cluster: Cluster,
  metrics: ClusterMetrics,
  log: Logger,
  admin: () => string | null,
  config: () => { readonly version: number; readonly digest: string } | null,
  ticketMode: TlsSettings['ticketMode'],
): Promise<{ node: ClusterNode; config: NodeConfig }> {
  const node = await joinNodes(flags, cluster, metrics, log, admin, config);
  let nodeConfig: NodeConfig | undefined;
  try {
    nodeConfig = await startNodeConfig(flags, node, cluster, log);
    // Stateful tickets resume on any node: their sessions live in the cluster's bucket.
    if (ticketMode === 'stateful' || cluster.activeTls.ticketMode === 'stateful') {
      try {
        cluster.useSessionStore(await node.openBucket(SESSIONS_BUCKET, { ttlMs: SESSION_TTL_MS }));
      } catch (e) {
        throw new CliError(`--join ${flags.join!.url.url}: node ${node.node} cannot open the session store of cluster ${node.cluster}: ${(e as Error).message}`, EXIT_FAILURE, { cause: e });
      }
    }
    return { node, config: nodeConfig };
  } catch (e) {
    await nodeConfig?.close();
    await node.close();
    throw e;
  }
}

/**
 * Joins the other nodes (`--join`): connects to NATS, announces this node and serves
 * its actors. Every failure is a CliError keeping its cause: NATS refusing the
 * credentials is a configuration error (exit 2), like a name another live node has.
 */
async function joinNodes(
  flags: ClusterFlags,
  cluster: Cluster,
  metrics: ClusterMetrics,
  log: Logger,
  admin: () => string | null,
  config: () => { readonly version: number; readonly digest: string } | null,
): Promise<ClusterNode> {
  const join = flags.join!;
  try {
    // Loaded only to join: a node alone never loads the NATS client.
    const { ClusterNode } = await import('../cluster/node.js');
    return await ClusterNode.join({
      url: join.url,
      node: join.node,
      cluster: join.cluster,
      ...(join.nkey ? { nkey: join.nkey } : {}),
      system: cluster.system,
      log,
      // The configuration version the cluster of nodes numbers (the agent's), once it runs one.
      summary: (adminAddress) => {
        const s = nodeSummary(join.node, adminAddress, cluster, metrics);
        const c = config();
        return c ? { ...s, config: { version: c.version, digest: c.digest } } : s;
      },
      crash: (req) => crashRelay(cluster, req),
      admin,
      ...testTimings(),
    });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const message = e instanceof Error ? e.message : String(e);
    if (code === 'BATON_ERR_NODE_NAME_TAKEN') throw new CliError(message, EXIT_USAGE, { cause: e });
    if (code === 'BATON_ERR_NATS_REFUSED') throw new CliError(`--join ${join.url.url}: ${message}`, EXIT_USAGE, { cause: e });
    throw new CliError(`--join ${join.url.url}: cannot join cluster ${join.cluster} as node ${join.node}: ${message}`, EXIT_FAILURE, { cause: e });
  }
}

/**
 * Brings a joined node onto the cluster's one configuration (cluster/node-config.ts):
 * the active version, or its own settings when it is the first. Failing that in time
 * is a CliError. The ticket rotation is started by node-join.ts, which owns it.
 */
async function startNodeConfig(flags: ClusterFlags, node: ClusterNode, cluster: Cluster, log: Logger): Promise<NodeConfig> {
  try {
    const { NodeConfig } = await import('../cluster/node-config.js');
    return await NodeConfig.start(node, cluster, log);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new CliError(`--join ${flags.join!.url.url}: node ${node.node} did not get the configuration of cluster ${node.cluster}: ${message}`, EXIT_FAILURE, { cause: e });
  }
}

/**
 * Shorter heartbeats and member TTL for the CLI suites (BATON_TEST_MEMBER_TTL_MS,
 * BATON_TEST_HEARTBEAT_MS), so a killed node is gone in a second; never documented for operators.
 */
function testTimings(): { heartbeatMs?: number; memberTtlMs?: number } {
  const ms = (v: string | undefined) => (v !== undefined && /^\d{2,6}$/.test(v) ? Number(v) : undefined);
  const heartbeatMs = ms(process.env.BATON_TEST_HEARTBEAT_MS);
  const memberTtlMs = ms(process.env.BATON_TEST_MEMBER_TTL_MS);
  return { ...(heartbeatMs !== undefined ? { heartbeatMs } : {}), ...(memberTtlMs !== undefined ? { memberTtlMs } : {}) };
}

/** Starts the admin API (unless --admin off) and writes its token file. */
async function startAdmin(
  flags: ClusterFlags,
  cluster: Cluster,
  metrics: ClusterMetrics,
  log: Logger,
  reload: (path?: string) => Promise<ReloadResult>,
  drain: DrainControl,
  nodes?: NodesControl,
): Promise<StartedAdmin | null> {
  const at = flags.admin ?? DEFAULT_ADMIN;
  if (at === 'off') return null;
  const token = newAdminToken();
  const api = new AdminApi({ cluster, metrics, token, log, reload, drain, ...(nodes ? { nodes } : {}) });
  const wanted = formatHostPort(at.host, at.port);
  let bound: { host: string; port: number };
  try {
    bound = await api.listen(at);
  } catch (e) {
    await api.close();
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'EADDRINUSE') {
      throw new CliError(`--admin: ${wanted} is already in use (another cluster?): pass another --admin port (0: any free port) or --admin off`);
    }
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new CliError(`--admin: ${wanted} is not an address of this host`);
    throw new CliError(`--admin: cannot listen on ${wanted}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const tokenFile = flags.tokenFile ?? defaultTokenFile(bound.port);
  try {
    const removeToken = await writeTokenFile(tokenFile, token, { privateDir: flags.tokenFile === undefined });
    return { api, address: formatHostPort(bound.host, bound.port), tokenFile, removeToken };
  } catch (e) {
    await api.close();
    if (e instanceof TokenFileError) throw new CliError(`--token-file: ${e.message}`);
    throw e;
  }
}

/** Explains a failed start; the listen errors an operator can fix get their own message. */
function startError(e: unknown, flags: ClusterFlags): CliError {
  const listen = formatHostPort(flags.listen.host, flags.listen.port);
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'EADDRINUSE':
      return new CliError(`--listen: ${listen} is already in use`);
    case 'EACCES':
      return new CliError(`--listen: permission denied to listen on ${listen} (ports below 1024 need privileges)`);
    case 'EADDRNOTAVAIL':
      return new CliError(`--listen: ${listen} is not an address of this host`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new CliError(`--listen: cannot resolve host "${flags.listen.host}"`);
    default: {
      const message = e instanceof Error ? e.message : String(e);
      return new CliError(`the cluster failed to start: ${message}`, EXIT_FAILURE);
    }
  }
}

/** The start line's words for how records are protected. */
function describeProtection(p: { readonly mode: string; readonly reason: string | null }): string {
  return p.mode === 'native' ? 'native (OpenSSL)' : `node:crypto (${p.reason ?? 'fallback'})`;
}
