/**
 * What the configuration across nodes needs of one node's relays: the in-node
 * two-phase rollout (relay/rollout.ts), driven with versions the cluster of nodes
 * numbers. {@link clusterRelays} adapts a running {@link Cluster}.
 */
import type { Cluster } from './cluster.js';
import type { StageResult } from './rollout.js';
import type { ConfigVersion } from '../relay/settings.js';

export type { StageResult };

export interface NodeRelays {
  /** The version this node's relays run now (secret: it holds the keys). */
  active(): ConfigVersion;
  /** Phase one: every relay validates and stages `version`; the node's accept or refusal. */
  stage(version: ConfigVersion): Promise<StageResult>;
  /** Phase two: every relay activates a version it staged. */
  activate(version: ConfigVersion): Promise<void>;
  /** Both phases at once: the node takes a version already active in the cluster. */
  apply(version: ConfigVersion): Promise<StageResult>;
}

/** The relays of a running cluster, as the agent drives them. */
export function clusterRelays(cluster: Cluster): NodeRelays {
  return {
    active: () => ({ ...cluster.activeConfig, tls: cluster.activeTls }),
    stage: (v) => cluster.stageVersion(v),
    activate: (v) => cluster.activateVersion(v),
    apply: async (v) => {
      const r = await cluster.applyVersion(v);
      return r.ok ? { ok: true } : { ok: false, reason: r.reason };
    },
  };
}
