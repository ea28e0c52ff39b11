/**
 * One configuration across nodes (Zhang et al.): a version is staged on every live
 * node, each node's relays validating it (the in-node two-phase rollout), and becomes
 * active only when every live node has accepted it; one refusal aborts, and every node
 * stays on the version it runs. A node that starts later, or restarts, comes up on the
 * active version, sealed for its own key by a member. Every state change is a
 * compare-and-set on the {@link KvStore}: one rollout holds the lock, one activation
 * wins. Secrets only travel in sealed blocks, one per node (sealed-block.ts).
 *
 * A rollout:
 *   1. the coordinator (the node `baton reload` asked) takes `config.rollout` (CAS),
 *   2. seals the version for each live node's published key (`config.block.<id>.<node>`),
 *   3. each node opens its block, stages it on its relays and writes its accept or
 *      refusal (`config.ack.<id>.<node>`),
 *   4. all accepted: the coordinator sets `config.active` (CAS on the revision it
 *      planned from); every node, watching it, activates the staged version.
 *      A refusal, or a node that neither answers nor leaves the membership by the
 *      deadline, aborts: `config.rollout` says why and nothing is activated.
 *
 * Membership is an input (`liveNodes`): a node it drops is no longer waited for, and
 * takes the active version as a late joiner when it comes back.
 *
 * Who may seal: the blocks of a rollout, and those a member seals for a node that
 * already runs a version, are in PSK mode under the cluster's member key (made when
 * the cluster starts, carried inside every block): a node that runs a version takes
 * no other, so one who can write the store but is no member cannot configure it. A
 * new process holds no member key yet and takes a base-mode block: it trusts the
 * store's credentials (each node its own NATS user) once, for its first version.
 */
import { randomBytes } from 'node:crypto';
import { KvError, type KvChange, type KvStore } from './kv.js';
import type { ConfigVersion, TlsSettings } from '../relay/settings.js';
import { configVersion } from './config-version.js';
import { decodeSealedConfig, encodeSealedConfig, type SealedConfig } from './config-codec.js';
import {
  ACK_PREFIX,
  ACTIVE_KEY,
  BLOCK_PREFIX,
  CONFIG_PREFIX,
  KEYS_PREFIX,
  ROLLOUT_KEY,
  ackCodec,
  ackKey,
  activeCodec,
  blockKey,
  checkNodeName,
  nodeKeyCodec,
  nodeKeyKey,
  parseBlockKey,
  rolloutCodec,
  type ActiveRecord,
  type NodeKeyRecord,
  type RolloutRecord,
} from './config-records.js';
import type { NodeRelays } from './node-relays.js';
import { NodeKeyPair, openBlock, readBlockHeader, sealBlock, type MemberKey } from './sealed-block.js';
import { advanceTicketKeys, holdsNextKey, rotationDue, scheduleTicketKeys, type TicketSchedule } from './ticket-schedule.js';
import { equalBytes } from '../util/bytes.js';

export const DEFAULT_ROLLOUT_DEADLINE_MS = 30_000;
export const DEFAULT_JOIN_TIMEOUT_MS = 30_000;
const CLOSE_WAIT_MS = 2_000;
export const DEFAULT_RESYNC_MS = 5_000;
/** How long a rollout waits for this node to finish activating the active version. */
const CATCH_UP_MS = 5_000;

export interface NodeConfigAgentOptions {
  readonly store: KvStore;
  /** The cluster's name: bound into every sealed block. */
  readonly cluster: string;
  /** This node's name (letters, digits, _ and -). */
  readonly node: string;
  readonly relays: NodeRelays;
  /** The nodes membership counts as live now (this one is added if missing). */
  readonly liveNodes: () => readonly string[] | Promise<readonly string[]>;
  /** How long a rollout waits for every live node's answer before aborting. */
  readonly rolloutDeadlineMs?: number;
  /** How long start waits for a member to seal the active version for this node. */
  readonly joinTimeoutMs?: number;
  readonly now?: () => number;
  /** This node's key pair; a fresh one by default (one per process). */
  readonly keys?: NodeKeyPair;
  /**
   * How often the node re-reads the store besides watching it, so that a change a
   * watch missed (a reconnect) is still acted on. 0: never. Default 5 s.
   */
  readonly resyncMs?: number;
  readonly log?: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

/** A rollout's outcome; the shape of the in-node RolloutResult, plus what the cluster did. */
export type CrossNodeResult =
  | { readonly ok: true; readonly version: number; readonly digest: string; readonly versionId: string; readonly unchanged: boolean; readonly nodes: readonly string[] }
  | { readonly ok: false; readonly version: number; readonly reason: string; readonly busy: boolean };

export class CrossNodeError extends Error {
  override readonly name = 'CrossNodeError';
  readonly code = 'BATON_ERR_CROSS_NODE';
}

/** What a rollout is planned from: the settings this node runs and the active record. */
type Plan = (base: TlsSettings, active: ActiveRecord | null, now: number) => { tls: TlsSettings; tickets: TicketSchedule } | null;

interface Running {
  readonly record: ActiveRecord;
  readonly version: ConfigVersion;
  /** The cluster's member key (secret): blocks for this node must be sealed under it. */
  readonly memberKey: MemberKey;
}

function freshMemberKey(): MemberKey {
  return { id: randomBytes(8).toString('hex'), secret: new Uint8Array(randomBytes(32)) };
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));
const versionNumber = (versionId: string) => Number(/^v([0-9]+)-/.exec(versionId)?.[1] ?? NaN);
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');

export class NodeConfigAgent {
  readonly node: string;
  readonly cluster: string;
  /** A fresh id per process (a restart is a new incarnation with a new key pair). */
  readonly incarnation = randomBytes(8).toString('hex');
  readonly keys: NodeKeyPair;
  /** The last error met handling a change in the store (never holds a secret). */
  lastError: string | null = null;

  private readonly store: KvStore;
  private readonly relays: NodeRelays;
  private readonly now: () => number;
  private readonly deadlineMs: number;
  private readonly joinTimeoutMs: number;
  private runs: Running | null = null;
  private readonly staged = new Map<string, SealedConfig>();
  private readonly answered = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private stopWatch: (() => Promise<void>) | null = null;
  private readonly waiters = new Set<() => void>();
  private rotation: NodeJS.Timeout | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  private rotating = false;
  private closed = false;

  private constructor(private readonly opts: NodeConfigAgentOptions) {
    this.node = checkNodeName(opts.node);
    if (opts.cluster.length === 0 || opts.cluster.length > 255) throw new RangeError('the cluster name must be 1 to 255 characters');
    this.cluster = opts.cluster;
    this.store = opts.store;
    this.relays = opts.relays;
    this.now = opts.now ?? Date.now;
    this.deadlineMs = opts.rolloutDeadlineMs ?? DEFAULT_ROLLOUT_DEADLINE_MS;
    this.joinTimeoutMs = opts.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS;
    this.keys = opts.keys ?? NodeKeyPair.generate();
  }

  /**
   * Joins: publishes this node's public key, watches the store, and brings the relays
   * onto the cluster's active version (sealed for this node by a member, within
   * `joinTimeoutMs`). With no active version, or none that a live member runs (every
   * node restarted), the node rolls out its own configuration (`relays.active()`).
   * Throws CrossNodeError when no member seals the active version in time.
   */
  static async start(opts: NodeConfigAgentOptions): Promise<NodeConfigAgent> {
    const agent = new NodeConfigAgent(opts);
    try {
      await agent.join();
      const every = opts.resyncMs ?? DEFAULT_RESYNC_MS;
      if (every > 0) {
        agent.resyncTimer = setInterval(() => void agent.resync(), every);
        agent.resyncTimer.unref();
      }
    } catch (e) {
      await agent.close();
      throw e;
    }
    return agent;
  }

  /** The cluster version this node runs (null before it has one). */
  get running(): { readonly versionId: string; readonly version: number; readonly digest: string } | null {
    const r = this.runs?.record;
    return r ? { versionId: r.versionId, version: r.version, digest: r.digest } : null;
  }

  /**
   * Rolls out new settings to every live node: `next`, or `next(active)` computed from
   * the settings the cluster runs (keep its ticket keys, say). What `baton reload` calls
   * on a joined node. Resolves once the version is active here, or with why not.
   */
  rollOut(next: TlsSettings | ((active: TlsSettings) => TlsSettings)): Promise<CrossNodeResult> {
    return this.runRollout((base, active, now) => {
      const tls = typeof next === 'function' ? next(base) : next;
      const kept = active !== null && holdsNextKey(tls.ticketKeys, active.tickets);
      // New keys from the operator (a key file rewritten) start a new period.
      const sameCurrent = equalBytes(tls.ticketKeys.current.id, base.ticketKeys.current.id);
      return { tls, tickets: { nextId: kept ? active.tickets.nextId : null, rotatedAt: sameCurrent && active ? active.tickets.rotatedAt : now } };
    });
  }

  /** One ticket-key rotation for every node, through a rollout (see ticket-schedule.ts). */
  rotateTicketKeys(): Promise<CrossNodeResult> {
    return this.runRollout((base, active, now) => {
      const r = advanceTicketKeys(base.ticketKeys, active?.tickets ?? { nextId: null, rotatedAt: now }, now);
      return { tls: { ...base, ticketKeys: r.keys }, tickets: r.schedule };
    });
  }

  /**
   * Rotates the ticket keys every `periodMs`, once for the whole cluster: every node
   * may run this; the one that finds the rotation due first takes the rollout lock,
   * and the others then find it not due.
   */
  rotateTicketsEvery(periodMs: number): void {
    if (!(periodMs > 0)) throw new RangeError('the rotation period must be positive');
    if (this.rotation) clearInterval(this.rotation);
    this.rotation = setInterval(() => void this.rotateIfDue(periodMs), Math.max(10, Math.min(periodMs / 4, 60_000)));
    this.rotation.unref();
  }

  /** A rotation when one is due (the check is repeated under the lock); the outcome, or null when not due. */
  async rotateIfDue(periodMs: number): Promise<CrossNodeResult | null> {
    if (this.rotating || this.closed) return null;
    this.rotating = true;
    try {
      const active = await this.readActive();
      if (!active || !rotationDue(active.tickets, periodMs, this.now())) return null;
      return await this.runRollout((base, current, now) => {
        if (!current || !rotationDue(current.tickets, periodMs, now)) return null;
        const r = advanceTicketKeys(base.ticketKeys, current.tickets, now);
        return { tls: { ...base, ticketKeys: r.keys }, tickets: r.schedule };
      });
    } catch (e) {
      this.report('ticket rotation', e);
      return null;
    } finally {
      this.rotating = false;
    }
  }

  /** Stops watching and rotating; idempotent. The relays keep the version they run. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.rotation) clearInterval(this.rotation);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    for (const wake of this.waiters) wake();
    const stop = this.stopWatch;
    this.stopWatch = null;
    await stop?.().catch(() => undefined);
    // A change being handled finishes on its own; a relay that hangs must not hang close.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.queue, new Promise<void>((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /**
   * Acts on the store's state as if every change had just been watched: the active
   * version, a rollout waiting for this node's answer, nodes waiting for a block.
   * Run on a timer; call it after the store reconnects.
   */
  resync(): Promise<void> {
    return this.enqueue(async () => {
      if (this.closed) return;
      const active = await this.readActive();
      if (active && this.runs?.record.versionId !== active.versionId) await this.onActive(active);
      const rollout = await this.readRollout();
      if (rollout?.state === 'staging' && rollout.nodes.includes(this.node)) await this.stage(rollout);
      if (active && this.runs?.record.versionId === active.versionId) {
        for (const n of await this.live()) {
          const e = await this.store.get(nodeKeyKey(n));
          if (e) await this.onPeerKey(nodeKeyCodec.decode(e.key, e.value));
        }
      }
    });
  }

  // ---- joining -------------------------------------------------------------

  private async join(): Promise<void> {
    this.stopWatch = await this.store.watch(CONFIG_PREFIX, (c) => this.onWatch(c));
    await this.publishKey();
    const deadline = this.now() + this.joinTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const active = await this.readActive();
      if (active && this.runs?.record.versionId === active.versionId) break;
      if (active === null || !(await this.someLiveMemberRuns(active.versionId))) {
        // The first node, or a cluster whose every node restarted: start from this node's own settings.
        const r = await this.runRollout((base, _active, now) => {
          const s = scheduleTicketKeys(base.ticketKeys, now);
          return { tls: { ...base, ticketKeys: s.keys }, tickets: s.schedule };
        }, true);
        if (r.ok) break;
        this.lastError = `starting the cluster's configuration: ${r.reason}`;
        this.log('warn', `node ${this.node}: could not start the cluster's configuration: ${r.reason}`);
      } else {
        await this.enqueue(() => this.takeActive(active));
        if (this.runs?.record.versionId === active.versionId) break;
      }
      if (this.now() >= deadline) {
        const what = active ? `the active version ${active.version} (${active.versionId})` : 'a configuration version';
        const why = this.lastError ?? 'no live member sealed it for this node';
        throw new CrossNodeError(`node ${this.node} did not get ${what} within ${this.joinTimeoutMs} ms: ${why}`);
      }
      await this.nap(Math.min(50 * 2 ** attempt, 500, Math.max(1, deadline - this.now())));
    }
    // A rollout that began while this node (re)started waits for its answer: give it.
    const rollout = await this.readRollout();
    if (rollout?.state === 'staging' && rollout.nodes.includes(this.node)) await this.enqueue(() => this.stage(rollout));
  }

  private async someLiveMemberRuns(versionId: string): Promise<boolean> {
    for (const n of await this.live()) {
      if (n === this.node) continue;
      const entry = await this.store.get(nodeKeyKey(n));
      if (entry && nodeKeyCodec.decode(entry.key, entry.value).runs === versionId) return true;
    }
    return false;
  }

  private async publishKey(): Promise<void> {
    const rec: NodeKeyRecord = {
      node: this.node,
      publicKey: b64(this.keys.publicKey),
      incarnation: this.incarnation,
      runs: this.runs?.record.versionId ?? null,
      at: this.now(),
    };
    await this.store.put(nodeKeyKey(this.node), nodeKeyCodec.encode(rec));
  }

  // ---- reacting to the store -----------------------------------------------

  private onWatch(change: KvChange): void {
    // Whoever waits (answers, an activation, a block while joining) looks again.
    for (const wake of this.waiters) wake();
    if (change.kind !== 'put' || this.closed) return;
    void this.enqueue(() => this.onPut(change.entry.key, change.entry.value));
  }

  /** Handlers run one at a time, in the order of the changes; an error is reported, never thrown. */
  private enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.queue.then(step).catch((e: unknown) => this.report('a configuration change', e));
    this.queue = run;
    return run;
  }

  private async onPut(key: string, value: Uint8Array): Promise<void> {
    if (key === ACTIVE_KEY) return this.onActive(activeCodec.decode(key, value));
    if (key === ROLLOUT_KEY) {
      const r = rolloutCodec.decode(key, value);
      if (r.state === 'aborted') this.staged.delete(r.versionId);
      return;
    }
    if (key.startsWith(KEYS_PREFIX)) return this.onPeerKey(nodeKeyCodec.decode(key, value));
    if (key.startsWith(BLOCK_PREFIX)) {
      const b = parseBlockKey(key);
      if (b?.node !== this.node) return;
      const rollout = await this.readRollout();
      if (rollout?.state === 'staging' && rollout.versionId === b.versionId && rollout.nodes.includes(this.node)) return this.stage(rollout);
      const active = await this.readActive();
      if (active?.versionId === b.versionId) return this.takeActive(active);
    }
  }

  /** Phase one here: open this node's block, stage it on the relays, answer. */
  private async stage(rollout: RolloutRecord): Promise<void> {
    if (this.answered.has(rollout.versionId)) return;
    // The lock is taken before the blocks are written: the block's own change brings us back.
    if (!(await this.store.get(blockKey(rollout.versionId, this.node)))) return;
    let ok = false;
    let reason: string | undefined;
    try {
      const opened = await this.openVersion(rollout.versionId);
      const v = opened.version;
      if (v.version !== rollout.version || v.digest !== rollout.digest) {
        throw new CrossNodeError(`the block of ${rollout.versionId} holds version ${v.version}, not the version ${rollout.version} the rollout names`);
      }
      const r = await this.relays.stage(v);
      ok = r.ok;
      if (r.ok) this.staged.set(rollout.versionId, opened);
      else reason = r.reason;
    } catch (e) {
      reason = message(e);
    }
    if (this.closed) return;
    this.answered.add(rollout.versionId);
    if (!ok) this.log('error', `node ${this.node} refused version ${rollout.version}: ${reason}`, { versionId: rollout.versionId });
    await this.store.put(
      ackKey(rollout.versionId, this.node),
      ackCodec.encode({ node: this.node, incarnation: this.incarnation, ok, ...(reason !== undefined ? { reason: reason.slice(0, 2000) } : {}) }),
    );
  }

  /** Phase two here: the cluster activated a version; activate it, or take it whole. */
  private async onActive(record: ActiveRecord): Promise<void> {
    if (this.runs?.record.versionId === record.versionId) return;
    const staged = this.staged.get(record.versionId);
    if (!staged) return this.takeActive(record);
    await this.relays.activate(staged.version);
    this.becomeRunning(record, staged);
    await this.publishKey();
  }

  /** The active version without a staged copy (joining, restarted, or dropped mid-rollout). */
  private async takeActive(record: ActiveRecord): Promise<void> {
    if (this.runs?.record.versionId === record.versionId) return;
    const entry = await this.store.get(blockKey(record.versionId, this.node));
    if (!entry || !equalBytes(readBlockHeader(entry.value).recipientPublicKey, this.keys.publicKey)) {
      // Ask a member to seal it for this key: members watch the published keys.
      await this.publishKey();
      return;
    }
    const opened = await this.openVersion(record.versionId);
    const v = opened.version;
    if (v.version !== record.version || v.digest !== record.digest) {
      throw new CrossNodeError(`the block of ${record.versionId} holds version ${v.version}, not the active version ${record.version}`);
    }
    const r = await this.relays.apply(v);
    if (!r.ok) throw new CrossNodeError(`node ${this.node} cannot run the active version ${record.version}: ${r.reason}`);
    this.becomeRunning(record, opened);
    await this.publishKey();
  }

  private becomeRunning(record: ActiveRecord, opened: SealedConfig): void {
    this.runs = { record, version: opened.version, memberKey: opened.memberKey };
    this.staged.clear();
    this.answered.clear();
    for (const wake of this.waiters) wake();
    this.log('info', `node ${this.node} runs configuration version ${record.version}`, { versionId: record.versionId, digest: record.digest });
  }

  /** A member seals the active version for a node that published a key it has no block for. */
  private async onPeerKey(peer: NodeKeyRecord): Promise<void> {
    if (peer.node === this.node || !this.runs) return;
    const id = this.runs.record.versionId;
    if (peer.runs === id || (await this.readActive())?.versionId !== id) return;
    const key = blockKey(id, peer.node);
    const publicKey = new Uint8Array(Buffer.from(peer.publicKey, 'base64url'));
    const existing = await this.store.get(key);
    if (existing && equalBytes(readBlockHeader(existing.value).recipientPublicKey, publicKey)) return;
    // A node that runs a version takes only member-sealed blocks; a new process holds no member key yet.
    const block = this.seal({ version: this.runs.version, memberKey: this.runs.memberKey }, id, peer.node, publicKey, peer.runs !== null);
    // Several members may race to seal it: one write is enough.
    await (existing ? this.store.update(key, block, existing.revision) : this.store.create(key, block));
  }

  private async openVersion(versionId: string): Promise<SealedConfig> {
    const entry = await this.store.get(blockKey(versionId, this.node));
    if (!entry) throw new CrossNodeError(`no block of ${versionId} is sealed for node ${this.node}`);
    const memberKey = this.runs?.memberKey;
    const plain = openBlock({ cluster: this.cluster, versionId, node: this.node, ...(memberKey ? { memberKey } : {}) }, this.keys, entry.value);
    try {
      return decodeSealedConfig(plain);
    } finally {
      plain.fill(0);
    }
  }

  /** Seals `config` for one node: in PSK mode under the member key it carries when `member`. */
  private seal(config: SealedConfig, versionId: string, node: string, publicKey: Uint8Array, member: boolean): Uint8Array {
    const plain = encodeSealedConfig(config);
    try {
      return sealBlock({ cluster: this.cluster, versionId, node, recipientPublicKey: publicKey }, plain, member ? config.memberKey : undefined);
    } finally {
      plain.fill(0);
    }
  }

  // ---- coordinating a rollout ----------------------------------------------

  private async runRollout(plan: Plan, bootstrap = false): Promise<CrossNodeResult> {
    let stays = this.runs?.record.version ?? 0;
    const fail = (reason: string, busy = false): CrossNodeResult => ({ ok: false, version: stays, reason, busy });
    if (this.closed) return fail(`node ${this.node} has left the cluster`);
    try {
      const activeEntry = await this.store.get(ACTIVE_KEY);
      const active = activeEntry ? activeCodec.decode(ACTIVE_KEY, activeEntry.value) : null;
      stays = active?.version ?? stays;
      if (active && !bootstrap && this.runs?.record.versionId !== active.versionId) {
        // Just activated elsewhere, still activating here: give it a moment (bounded).
        const until = this.now() + Math.min(this.deadlineMs, CATCH_UP_MS);
        while (this.runs?.record.versionId !== active.versionId && this.now() < until && !this.closed) await this.nap(Math.min(50, until - this.now()));
        if (this.runs?.record.versionId !== active.versionId) return fail(`node ${this.node} does not run the active version ${active.version} yet`, true);
      }
      const planned = plan(this.runs?.version.tls ?? this.relays.active().tls, active, this.now());
      if (!planned) return { ok: true, version: stays, digest: active?.digest ?? '', versionId: active?.versionId ?? '', unchanged: true, nodes: [] };
      const next = configVersion((active?.version ?? 0) + 1, planned.tls);
      if (active && next.digest === active.digest) {
        return { ok: true, version: active.version, digest: active.digest, versionId: active.versionId, unchanged: true, nodes: [] };
      }
      // A live node that has published no key, or runs no version yet, is joining: it
      // comes up on the active version once there is one, sealed for by a member.
      // (Starting the cluster, every node runs none: all take part, in base mode.)
      const sealFor = new Map<string, NodeKeyRecord>();
      for (const n of await this.live()) {
        const keyEntry = await this.store.get(nodeKeyKey(n));
        const peer = keyEntry ? nodeKeyCodec.decode(keyEntry.key, keyEntry.value) : null;
        if (peer && (bootstrap || peer.runs !== null || n === this.node)) sealFor.set(n, peer);
        else this.log('info', `node ${n} is live but still joining: it will come up on the active version`);
      }
      const nodes = [...sealFor.keys()];
      if (!sealFor.has(this.node)) return fail(`node ${this.node} has not published its key`);
      const versionId = `v${next.version}-${randomBytes(6).toString('hex')}`;
      const t = this.now();
      const record: RolloutRecord = {
        versionId,
        version: next.version,
        digest: next.digest,
        coordinator: this.node,
        nodes,
        state: 'staging',
        basedOn: active?.versionId ?? null,
        startedAt: t,
        deadlineAt: t + this.deadlineMs,
      };
      const lockEntry = await this.store.get(ROLLOUT_KEY);
      if (lockEntry) {
        let held: RolloutRecord | null = null;
        try {
          held = rolloutCodec.decode(ROLLOUT_KEY, lockEntry.value);
        } catch (e) {
          // A damaged lock must not stop rollouts for ever: take it over (still by CAS).
          this.report('the rollout lock', e);
        }
        if (held?.state === 'staging' && t < held.deadlineAt) {
          return fail(`another rollout is in progress: version ${held.version} from node ${held.coordinator}`, true);
        }
      }
      const enc = rolloutCodec.encode(record);
      const lockRev = lockEntry ? await this.store.update(ROLLOUT_KEY, enc, lockEntry.revision) : await this.store.create(ROLLOUT_KEY, enc);
      if (lockRev === null) return fail('another rollout began at the same moment', true);
      const abort = async (reason: string): Promise<CrossNodeResult> => {
        await this.store.update(ROLLOUT_KEY, rolloutCodec.encode({ ...record, state: 'aborted', reason }), lockRev).catch(() => null);
        this.log('error', `configuration version ${next.version} aborted, the cluster stays on version ${stays}: ${reason}`, { versionId });
        return fail(reason);
      };
      // Under the lock, the version planned from must still be the active one.
      const again = await this.store.get(ACTIVE_KEY);
      if ((again?.revision ?? null) !== (activeEntry?.revision ?? null)) return abort('another version became active meanwhile');
      // Members seal under the member key they hold; starting the cluster makes one.
      const memberKey = this.runs && !bootstrap ? this.runs.memberKey : freshMemberKey();
      for (const [n, peer] of sealFor) {
        const block = this.seal({ version: next, memberKey }, versionId, n, new Uint8Array(Buffer.from(peer.publicKey, 'base64url')), !bootstrap);
        await this.store.put(blockKey(versionId, n), block);
      }
      const answers = await this.awaitAnswers(record, new Map([...sealFor].map(([n, peer]) => [n, peer.incarnation])));
      if (!answers.ok) return abort(answers.reason);
      const activeRecord: ActiveRecord = { versionId, version: next.version, digest: next.digest, by: this.node, activatedAt: this.now(), tickets: planned.tickets };
      const activeEnc = activeCodec.encode(activeRecord);
      const committed = activeEntry ? await this.store.update(ACTIVE_KEY, activeEnc, activeEntry.revision) : await this.store.create(ACTIVE_KEY, activeEnc);
      if (committed === null) return abort('another version became active meanwhile');
      // Committed: what follows is bookkeeping, and cannot make the outcome a failure.
      await this.store.update(ROLLOUT_KEY, rolloutCodec.encode({ ...record, state: 'committed' }), lockRev).catch((e: unknown) => this.report('marking the rollout committed', e));
      this.log('info', `configuration version ${next.version} active on ${answers.nodes.join(', ')}`, { versionId, digest: next.digest });
      // Activated everywhere by the watchers; answer once it is active here too (bounded).
      const until = this.now() + this.deadlineMs;
      while (this.runs?.record.versionId !== versionId && this.now() < until && !this.closed) await this.nap(Math.min(100, until - this.now()));
      void this.sweep(next.version);
      return { ok: true, version: next.version, digest: next.digest, versionId, unchanged: false, nodes: answers.nodes };
    } catch (e) {
      if (e instanceof KvError) return fail(`the cluster store: ${e.message}`);
      return fail(message(e));
    }
  }

  /**
   * Waits for the answers of the nodes that began the rollout and are still live:
   * all accepted, the first refusal, or the deadline (bounded by it).
   */
  private async awaitAnswers(record: RolloutRecord, incarnations: ReadonlyMap<string, string>): Promise<{ ok: true; nodes: string[] } | { ok: false; reason: string }> {
    for (;;) {
      const live = new Set(await this.live());
      const required = record.nodes.filter((n) => live.has(n));
      const missing: string[] = [];
      for (const n of required) {
        const entry = await this.store.get(ackKey(record.versionId, n));
        if (!entry) {
          missing.push(n);
          continue;
        }
        const ack = ackCodec.decode(entry.key, entry.value);
        // Sealed for one run of the node, answered by another: it restarted meanwhile.
        if (ack.incarnation !== incarnations.get(n)) {
          return { ok: false, reason: `node ${n} restarted during the rollout of version ${record.version}${ack.ok ? '' : `: ${ack.reason ?? ''}`}` };
        }
        if (!ack.ok) return { ok: false, reason: `node ${n} refused version ${record.version}: ${ack.reason ?? 'no reason given'}` };
      }
      if (missing.length === 0) return { ok: true, nodes: required };
      const left = record.deadlineAt - this.now();
      if (left <= 0) return { ok: false, reason: `node ${missing.join(', ')} did not answer version ${record.version} within ${this.deadlineMs} ms` };
      if (this.closed) return { ok: false, reason: `node ${this.node} left the cluster during the rollout` };
      // Woken by any answer; membership is polled.
      await this.nap(Math.min(100, left));
    }
  }

  /** Deletes the blocks and answers of versions older than `version` (best effort). */
  private async sweep(version: number): Promise<void> {
    try {
      for (const prefix of [BLOCK_PREFIX, ACK_PREFIX]) {
        for (const key of await this.store.keys(prefix)) {
          const id = key.slice(prefix.length).split('.')[0]!;
          if (versionNumber(id) < version) await this.store.delete(key);
        }
      }
    } catch (e) {
      this.report('cleaning old versions', e);
    }
  }

  // ---- small pieces ----------------------------------------------------------

  private async live(): Promise<string[]> {
    const names = new Set(await this.opts.liveNodes());
    names.add(this.node);
    return [...names].map(checkNodeName).sort();
  }

  private async readActive(): Promise<ActiveRecord | null> {
    const e = await this.store.get(ACTIVE_KEY);
    return e ? activeCodec.decode(e.key, e.value) : null;
  }

  private async readRollout(): Promise<RolloutRecord | null> {
    const e = await this.store.get(ROLLOUT_KEY);
    return e ? rolloutCodec.decode(e.key, e.value) : null;
  }

  /** Sleeps up to `ms`, or less when an answer or an activation arrives. */
  private nap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  private report(what: string, e: unknown): void {
    this.lastError = `${what}: ${message(e)}`;
    this.log('error', `node ${this.node}: ${this.lastError}`);
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void {
    this.opts.log?.(level, msg, fields);
  }
}

