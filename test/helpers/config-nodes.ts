/**
 * Simulated Baton nodes for the configuration across nodes: each a NodeConfigAgent
 * over one shared store, with relays that validate a version the way real relays do
 * (every certificate loads and matches its key) and can be told to refuse, to hang,
 * or to hold an activation back.
 */
import { NodeConfigAgent, type NodeConfigAgentOptions } from '../../src/cluster/node-config-agent.js';
import type { NodeRelays, StageResult } from '../../src/cluster/node-relays.js';
import type { KvStore } from '../../src/cluster/kv.js';
import { configVersion } from '../../src/cluster/config-version.js';
import { freshTicketKeys } from '../../src/cluster/ticket-keys.js';
import { relayTlsConfig, type ConfigVersion, type TlsSettings } from '../../src/relay/settings.js';
import { loadCertifiedKey } from '../../src/tls/index.js';
import { fixture } from './interop.js';

export const P256 = { cert: fixture('ecdsa-p256.pem'), key: fixture('ecdsa-p256-key.pem') };
export const RSA = { cert: fixture('rsa.pem'), key: fixture('rsa-key.pem') };
/** A certificate with another certificate's key: relays refuse it. */
export const MISMATCHED = { cert: fixture('rsa.pem'), key: fixture('ecdsa-p256-key.pem') };

export function tlsWith(certificate: { cert: string; key: string }, base?: TlsSettings): TlsSettings {
  return { ...(base ?? { ticketKeys: freshTicketKeys() }), certificates: [certificate] };
}

interface Gate {
  promise: Promise<void>;
  open: () => void;
}
function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

export class FakeRelays implements NodeRelays {
  current: ConfigVersion;
  /** Set: every stage is refused with this reason. */
  refuseWith: string | null = null;
  readonly stages: ConfigVersion[] = [];
  readonly activations: ConfigVersion[] = [];
  private hanging: Gate | null = null;
  private holding: Gate | null = null;

  constructor(tls: TlsSettings) {
    this.current = configVersion(1, tls);
  }

  active(): ConfigVersion {
    return this.current;
  }

  /** From now on a stage never answers (a node that stopped answering) until {@link release}. */
  hang(): void {
    this.hanging ??= gate();
  }

  /** From now on an activation waits until {@link release}. */
  holdActivations(): void {
    this.holding ??= gate();
  }

  release(): void {
    this.hanging?.open();
    this.holding?.open();
    this.hanging = null;
    this.holding = null;
  }

  async stage(v: ConfigVersion): Promise<StageResult> {
    if (this.hanging) await this.hanging.promise;
    this.stages.push(v);
    if (this.refuseWith !== null) return { ok: false, reason: this.refuseWith };
    try {
      relayTlsConfig(v.tls, loadCertifiedKey);
    } catch (e) {
      return { ok: false, reason: `relay-0 refused version ${v.version}: ${e instanceof Error ? e.message : String(e)}` };
    }
    return { ok: true };
  }

  async activate(v: ConfigVersion): Promise<void> {
    if (this.holding) await this.holding.promise;
    this.current = v;
    this.activations.push(v);
  }

  async apply(v: ConfigVersion): Promise<StageResult> {
    const r = await this.stage(v);
    if (r.ok) await this.activate(v);
    return r;
  }
}

export interface SimNode {
  readonly name: string;
  readonly relays: FakeRelays;
  readonly agent: NodeConfigAgent;
}

export interface SimCluster {
  readonly store: KvStore;
  /** Membership: the names of the live nodes (the test edits it). */
  readonly live: Set<string>;
  readonly nodes: Map<string, SimNode>;
  /** Starts (or restarts) a node on its own local settings; it joins the cluster. */
  start(name: string, tls?: TlsSettings, extra?: Partial<NodeConfigAgentOptions>): Promise<SimNode>;
  close(): Promise<void>;
}

export function simCluster(store: KvStore, defaults: Partial<NodeConfigAgentOptions> = {}): SimCluster {
  const live = new Set<string>();
  const nodes = new Map<string, SimNode>();
  return {
    store,
    live,
    nodes,
    async start(name, tls = tlsWith(P256), extra = {}) {
      const relays = new FakeRelays(tls);
      live.add(name);
      const agent = await NodeConfigAgent.start({
        store,
        cluster: 'test-cluster',
        node: name,
        relays,
        liveNodes: () => [...live],
        rolloutDeadlineMs: 5_000,
        joinTimeoutMs: 5_000,
        ...defaults,
        ...extra,
      });
      const node = { name, relays, agent };
      nodes.set(name, node);
      return node;
    },
    async close() {
      for (const n of nodes.values()) n.relays.release();
      await Promise.all([...nodes.values()].map((n) => n.agent.close()));
    },
  };
}
