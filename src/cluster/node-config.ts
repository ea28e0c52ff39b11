/**
 * One configuration for a joined node (`baton cluster --join`): the cross-node agent
 * (node-config-agent.ts) over this cluster's `config` bucket, driving the node's
 * relays (node-relays.ts). It brings the node onto the cluster's active version, rolls
 * reloads out to every live node, rotates the ticket keys once for all of them, and
 * re-reads the store whenever the NATS connection comes back (a watch may have missed
 * changes meanwhile). A node alone never runs any of this.
 */
import type { ConfigVersion, TlsSettings } from '../relay/settings.js';
import { certificateFacts } from './certificate-facts.js';
import type { Logger } from '../util/log.js';
import type { Cluster } from './cluster.js';
import { NodeConfigAgent } from './node-config-agent.js';
import { clusterRelays, type NodeRelays } from './node-relays.js';
import type { ClusterNode } from './node.js';
import type { ReloadTarget } from './reload.js';
import type { RolloutResult } from './rollout.js';

export interface NodeConfigOptions {
  /** Ticket key rotation period for the whole cluster; absent: none. */
  readonly ticketRotationMs?: number;
  /** How long a rollout waits for every live node; default the agent's (30 s). */
  readonly rolloutDeadlineMs?: number;
  /** How long joining waits for a member to seal the active version; default the agent's (30 s). */
  readonly joinTimeoutMs?: number;
}

/** The cross-node configuration of a joined node, and where its reloads go. */
export class NodeConfig {
  private closed = false;
  private agentRef: NodeConfigAgent | null = null;
  /** Fingerprint of the leaf certificate the relays serve to new handshakes. */
  private serving: string;

  private constructor(
    private readonly cluster: Cluster,
    private readonly log: Logger,
  ) {
    this.serving = leafSha256(cluster.activeTls);
  }

  get agent(): NodeConfigAgent {
    return this.agentRef!;
  }

  /**
   * Opens the bucket and starts the agent: on return the relays run the cluster's
   * active version (or this node's own settings, when it starts the cluster). Rejects
   * (CrossNodeError, KvError) when that cannot happen within the join timeout.
   */
  static async start(node: ClusterNode, cluster: Cluster, log: Logger, opts: NodeConfigOptions = {}): Promise<NodeConfig> {
    const clog = log.child({ component: 'config', node: node.node });
    const store = await node.openBucket('config');
    const config = new NodeConfig(cluster, clog);
    const agent = await NodeConfigAgent.start({
      store,
      cluster: node.cluster,
      node: node.node,
      relays: config.watched(clusterRelays(cluster)),
      liveNodes: () => node.liveNodes(),
      ...(opts.rolloutDeadlineMs !== undefined ? { rolloutDeadlineMs: opts.rolloutDeadlineMs } : {}),
      ...(opts.joinTimeoutMs !== undefined ? { joinTimeoutMs: opts.joinTimeoutMs } : {}),
      log: (level, msg, fields) => clog[level](msg, { event: 'config.cluster', ...fields }),
    });
    config.agentRef = agent;
    if (opts.ticketRotationMs !== undefined) agent.rotateTicketsEvery(opts.ticketRotationMs);
    void config.resyncOnReconnect(node);
    return config;
  }

  /** The version this node runs, as the cluster numbers it (null before the agent has one). */
  get running(): { readonly versionId: string; readonly version: number; readonly digest: string } | null {
    return this.agent.running;
  }

  /** Reloads on this node roll out to every live node. */
  reloadTarget(): ReloadTarget {
    return {
      gateway: this.cluster.gateway,
      rollOut: async (make: (active: TlsSettings) => TlsSettings): Promise<RolloutResult> => {
        const r = await this.agent.rollOut(make);
        return r.ok ? { ok: true, version: r.version, digest: r.digest, unchanged: r.unchanged } : { ok: false, version: r.version, reason: r.reason };
      },
      rotateTicketsEvery: (ms) => this.agent.rotateTicketsEvery(ms),
      servingSha256: () => this.serving,
    };
  }

  /** The relays, saying when a version from the cluster (any node's reload) changes the certificate served here. */
  private watched(relays: NodeRelays): NodeRelays {
    const served = (v: ConfigVersion) => {
      const sha256 = leafSha256(v.tls);
      if (sha256 === this.serving) return;
      this.serving = sha256;
      this.log.info(`certificate sha256 ${sha256} served to new handshakes (cluster configuration version ${v.version})`, {
        event: 'cert.served',
        certificateSha256: sha256,
        version: v.version,
      });
    };
    return {
      active: () => relays.active(),
      stage: (v) => relays.stage(v),
      activate: async (v) => {
        await relays.activate(v);
        served(v);
      },
      apply: async (v) => {
        const r = await relays.apply(v);
        if (r.ok) served(v);
        return r;
      },
    };
  }

  /** Stops the agent (the relays keep their version); before the node leaves and the cluster closes. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.agent.close();
  }

  /** Every reconnect: act on what changed in the store while the watch was away. Ends with the connection. */
  private async resyncOnReconnect(node: ClusterNode): Promise<void> {
    try {
      for await (const s of node.nc.status()) {
        if (this.closed) return;
        if (s.type === 'reconnect') void this.agent.resync();
      }
    } catch {
      // The status stream ends when the connection closes: nothing left to resync.
    }
  }
}

/** The fingerprint of the leaf certificate of `tls` (public). */
function leafSha256(tls: TlsSettings): string {
  const leaf = tls.certificates[0];
  return leaf ? certificateFacts(leaf.cert).fingerprint256 : '';
}
