/**
 * A reload of a running node: the next configuration, already read and checked by
 * whoever loaded it (the `baton cluster` command reads files and flags), is rolled
 * out as the next version (two-phase, rollout.ts), then what lives beside the
 * version follows: the backends of new connections and the ticket rotation period.
 * Settings a running cluster cannot change are kept, with a warning each. Every
 * outcome is logged and returned; nothing here throws for a bad configuration.
 * On a joined node the version goes to every live node ({@link ReloadTarget}).
 */
import { describeBackends, type BackendsSpec } from '../relay/backend-pool.js';
import type { TlsSettings } from '../relay/settings.js';
import type { TicketKeys } from '../tls/index.js';
import type { LogFields, LogLevel } from '../util/log.js';
import type { ReloadResult } from './admin-api.js';
import type { CertificateFacts } from './certificate-facts.js';
import type { Cluster } from './cluster.js';
import { shortDigest } from './config-version.js';
import type { RolloutResult } from './rollout.js';

/** A configuration to roll out, as loaded and checked (public facts and secrets alike). */
export interface ReloadCandidate {
  /** The TLS settings of the next version, but its ticket keys. */
  readonly tls: Omit<TlsSettings, 'ticketKeys'>;
  /** Ticket keys the file names (a key file shared with other processes); absent: the cluster keeps its own. Secret. */
  readonly ticketKeys?: TicketKeys;
  /** The backends of new connections. */
  readonly backends: BackendsSpec;
  /** Ticket key rotation period; absent: none asked for. */
  readonly ticketRotationSeconds?: number;
  /** The settings only a restart changes, as a file field and a shown value. */
  readonly restartOnly: Readonly<Record<string, string>>;
  /** Warnings about obsolete fields of the file, passed on. */
  readonly obsolete: readonly string[];
  /** The leaf certificate new handshakes get. */
  readonly leaf: CertificateFacts;
  /** The configuration file it came from, if any (for the log lines). */
  readonly configFile?: string;
  /** The --cert/--key files it came from, if any (for the log lines). */
  readonly certFiles?: { readonly cert: string; readonly key: string };
}

/** What the node runs now, besides the active version. */
export interface RunningConfig {
  readonly restartOnly: Readonly<Record<string, string>>;
  readonly backends: BackendsSpec;
  readonly ticketRotationSeconds?: number;
  /** Fingerprint of the leaf certificate new handshakes get. */
  readonly servingSha256: string;
}

type Log = (level: LogLevel, msg: string, fields?: LogFields) => void;

/**
 * Where a reload goes: the node's own relays (a node alone), or every live node
 * (a joined node: the cross-node agent, node-config-agent.ts). `rollOut` derives the
 * next settings from the ones active when it runs, so that a ticket rotation that
 * lands meanwhile is not undone.
 */
export interface ReloadTarget {
  readonly gateway: Pick<Cluster['gateway'], 'setBackends'>;
  rollOut(make: (active: TlsSettings) => TlsSettings): Promise<RolloutResult>;
  rotateTicketsEvery(periodMs: number): void;
  /**
   * The leaf certificate new handshakes get now, when a version may also come from
   * elsewhere (another node's reload); undefined: the one the last reload here served.
   */
  servingSha256?(): string | undefined;
}

/** A node alone: reloads roll out over its own relays, and it rotates its own ticket keys. */
export function localReloadTarget(cluster: Pick<Cluster, 'activeTls' | 'reconfigure' | 'rotateTicketsEvery' | 'gateway'>): ReloadTarget {
  return {
    gateway: cluster.gateway,
    rollOut: (make) => cluster.reconfigure(make(cluster.activeTls)),
    rotateTicketsEvery: (ms) => cluster.rotateTicketsEvery(ms),
  };
}

/** Applies reloads to one node, remembering what each one left running. */
export class ConfigReloader {
  private backends: BackendsSpec;
  private rotationSeconds: number | undefined;
  private serving: string;
  private readonly restartOnly: Readonly<Record<string, string>>;

  constructor(
    private readonly cluster: ReloadTarget,
    running: RunningConfig,
    private readonly log: Log,
  ) {
    this.backends = running.backends;
    this.rotationSeconds = running.ticketRotationSeconds;
    this.serving = running.servingSha256;
    this.restartOnly = running.restartOnly;
  }

  /** Fingerprint of the leaf certificate new handshakes get now. */
  get servingSha256(): string {
    return this.cluster.servingSha256?.() ?? this.serving;
  }

  /** Rolls `next` out; resolves with what happened (applied, or refused by a relay). */
  async apply(next: ReloadCandidate): Promise<ReloadResult> {
    const configFile = next.configFile;
    const warnings: string[] = [];
    const servedBefore = this.servingSha256;
    for (const [field, value] of Object.entries(next.restartOnly)) {
      if (value !== this.restartOnly[field]) warnings.push(`${field} requires a restart; kept ${this.restartOnly[field]}`);
    }
    if (next.ticketRotationSeconds === undefined && this.rotationSeconds !== undefined) {
      warnings.push(`tickets.rotationSeconds: stopping the rotation requires a restart; kept ${this.rotationSeconds}`);
    }
    for (const w of warnings) this.log('warn', w, { event: 'config.restartRequired', configFile });
    for (const w of next.obsolete) {
      this.log('warn', w, { event: 'config.obsolete', configFile });
      warnings.push(w);
    }
    // Ticket keys belong to the cluster (and rotate on their own) unless the file names a
    // key file shared with other processes: then rewriting that file rotates them.
    const result = await this.cluster.rollOut((active) => {
      const { certificates: _c, alpn: _a, cipherSuites: _s, groups: _g, ...kept } = active;
      return { ...kept, ticketKeys: next.ticketKeys ?? kept.ticketKeys, ...next.tls };
    });
    if (!result.ok) {
      this.log('error', `configuration refused, still on version ${result.version}: ${result.reason}`, {
        event: 'config.refused',
        configFile,
        version: result.version,
        reason: result.reason,
      });
      return { status: 'refused', version: result.version, error: result.reason };
    }
    if (JSON.stringify(next.backends) !== JSON.stringify(this.backends)) {
      this.cluster.gateway.setBackends(next.backends);
      this.backends = next.backends;
      const backend = describeBackends(next.backends);
      this.log('info', `new connections go to backend ${backend}`, { event: 'backends.replaced', backend });
    }
    if (next.ticketRotationSeconds !== undefined && next.ticketRotationSeconds !== this.rotationSeconds) {
      this.cluster.rotateTicketsEvery(next.ticketRotationSeconds * 1000);
      this.rotationSeconds = next.ticketRotationSeconds;
    }
    this.log('info', `configuration version ${result.version} active${result.unchanged ? ' (unchanged)' : ''}`, {
      event: 'config.active',
      configFile,
      version: result.version,
      digest: shortDigest(result.digest),
      unchanged: result.unchanged,
    });
    if (next.leaf.fingerprint256 !== servedBefore) {
      this.serving = next.leaf.fingerprint256;
      this.log('info', `certificate sha256 ${this.serving} served to new handshakes (${next.leaf.subject})`, {
        event: 'cert.reloaded',
        certificateSha256: this.serving,
        version: result.version,
        ...(next.certFiles ? { certFile: next.certFiles.cert, keyFile: next.certFiles.key } : { configFile }),
      });
    }
    return { status: 'applied', version: result.version, digest: result.digest, unchanged: result.unchanged, warnings };
  }
}
