/**
 * Two-phase configuration rollout over the relays: a version is staged on every
 * live relay, each validating it; only when all have acknowledged is it
 * activated everywhere. A refusal aborts the rollout and the cluster stays on the
 * old version, with the reason. A relay that restarts mid-rollout comes back on the
 * active version and is staged again. So no relay ever issues a ticket under a key
 * that a sibling could not open.
 */
import type { ActorRef, ActorSystem } from '../actors/index.js';
import type { ConfigReply, RelayMsg } from '../relay/protocol.js';
import type { ConfigVersion, TlsSettings } from '../relay/settings.js';
import { configVersion } from './config-version.js';

export type RolloutResult =
  | { readonly ok: true; readonly version: number; readonly digest: string; readonly unchanged: boolean }
  | { readonly ok: false; readonly version: number; readonly reason: string };

/** What the rollout needs of the cluster. */
export interface RolloutHost {
  readonly system: ActorSystem;
  readonly relayNames: readonly string[];
  ref(name: string): ActorRef<RelayMsg>;
  isUp(name: string): boolean;
  /** The version relays get when they (re)start; set when activation begins. */
  active: ConfigVersion;
}

const ASK_MS = 10_000;
const ATTEMPTS = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Asks one relay, waiting out a restart (bounded) if it dies meanwhile. */
async function askRelay(host: RolloutHost, name: string, msg: RelayMsg): Promise<ConfigReply> {
  let last = 'no answer';
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const deadline = Date.now() + ASK_MS;
    while (!host.isUp(name) && Date.now() < deadline) await sleep(20);
    try {
      return await host.system.ask<ConfigReply>(host.ref(name), msg, ASK_MS);
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
  }
  return { ok: false, reason: `${name} did not answer: ${last}` };
}

/** A stage's outcome on this node's relays: all accepted, or the first refusal with its reason. */
export type StageResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Phase one on this node: stages `next` on every relay, each validating it. Nothing
 * changes for new connections. Across nodes this is the node's accept or refusal.
 */
export async function stageOnRelays(host: RolloutHost, next: ConfigVersion): Promise<StageResult> {
  const staged = await Promise.all(host.relayNames.map(async (name) => ({ name, reply: await askRelay(host, name, { t: 'StageConfig', config: next }) })));
  const refused = staged.find((r) => !r.reply.ok);
  if (refused && !refused.reply.ok) return { ok: false, reason: `${refused.name} refused version ${next.version}: ${refused.reply.reason}` };
  return { ok: true };
}

/** Phase two on this node: activates a version every relay has staged. */
export async function activateOnRelays(host: RolloutHost, next: ConfigVersion): Promise<void> {
  // From here a relay that restarts gets the new version directly.
  host.active = next;
  await Promise.all(
    host.relayNames.map(async (name) => {
      const reply = await askRelay(host, name, { t: 'ActivateConfig', version: next.version, digest: next.digest });
      // Restarted after staging: it lost the staged copy; give it the version whole.
      if (!reply.ok) await askRelay(host, name, { t: 'Configure', config: next });
    }),
  );
}

/** Both phases for a version numbered by the caller (a node taking its cluster's active version). */
export async function applyVersion(host: RolloutHost, next: ConfigVersion): Promise<RolloutResult> {
  const current = host.active;
  if (next.version === current.version && next.digest === current.digest) return { ok: true, version: current.version, digest: current.digest, unchanged: true };
  const staged = await stageOnRelays(host, next);
  if (!staged.ok) return { ok: false, version: current.version, reason: staged.reason };
  await activateOnRelays(host, next);
  return { ok: true, version: next.version, digest: next.digest, unchanged: false };
}

/** Rolls `tls` out as the next version. One rollout at a time (the caller serialises). */
export async function rollOut(host: RolloutHost, tls: TlsSettings): Promise<RolloutResult> {
  const current = host.active;
  const next = configVersion(current.version + 1, tls);
  if (next.digest === current.digest) return { ok: true, version: current.version, digest: current.digest, unchanged: true };
  return applyVersion(host, next);
}
