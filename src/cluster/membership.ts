/**
 * Membership of the cluster across nodes: each node announces itself with heartbeats
 * in a key-value bucket whose values expire (the bucket's TTL, JetStream's max_age),
 * so a node that misses them for a TTL is gone, with nobody having to say so. The value
 * is the node's public summary ({@link MemberInfo}): name, admin address, relays,
 * connections and configuration version; `baton status` reads it for a node that does
 * not answer over NATS.
 *
 * A name is one node's: a start finds the key held and its revision moving (another
 * live node beats there) and refuses with `BATON_ERR_NODE_NAME_TAKEN`; a key that
 * stays still (the dead previous run of this node) is taken over.
 *
 * NATS going away never stops the node: a failed beat is logged once, the last known
 * members stay the view, and beats resume when the store answers again.
 */
import { KvError, type KvStore } from './kv.js';
import type { Logger } from '../util/log.js';

/** What a node publishes about itself (public facts only: never a key or a token). */
export interface MemberInfo {
  readonly node: string;
  /** The node's admin API, `host:port` (loopback: for its own host's operators), or null. */
  readonly admin: string | null;
  readonly relays: readonly { readonly name: string; readonly up: boolean; readonly restarts: number }[];
  readonly connections: { readonly active: number; readonly opened: number };
  readonly config: { readonly version: number; readonly digest: string };
  /** When this run of the node started (ISO 8601), and a random id of the run. */
  readonly startedAt: string;
  readonly incarnation: string;
}

/** A member as read from the bucket: its info and the revision of its last beat. */
export interface Member {
  readonly info: MemberInfo;
  readonly revision: number;
}

export interface MembershipOptions {
  readonly kv: KvStore;
  readonly node: string;
  /** The node's summary, read at every beat. */
  readonly info: () => MemberInfo;
  readonly log: Logger;
  /** Between beats. Default 1000 ms. The bucket's TTL should be a few of these (see {@link DEFAULT_MEMBER_TTL_MS}). */
  readonly heartbeatMs?: number;
}

export const DEFAULT_HEARTBEAT_MS = 1_000;
/** Longest a beat (a write and a read of the members) may take before it counts as failed. */
const BEAT_MAX_MS = 15_000;
/** A node that has not beaten for this long is gone: five missed beats at the default. */
export const DEFAULT_MEMBER_TTL_MS = 5_000;

/** The key of node `node` in the membership bucket. */
export const memberKey = (node: string) => `members.${node}`;

/** A change of the live members, as one node sees it at its beats. */
export type MembershipEvent = { readonly type: 'joined'; readonly node: string } | { readonly type: 'left'; readonly node: string };

/** Thrown by {@link Membership.start} when another live node has the name. */
export class NodeNameTakenError extends Error {
  override readonly name = 'NodeNameTakenError';
  readonly code = 'BATON_ERR_NODE_NAME_TAKEN';
}

export class Membership {
  private readonly kv: KvStore;
  private readonly heartbeatMs: number;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private live = new Map<string, Member>();
  private readonly listeners = new Set<(e: MembershipEvent) => void>();
  private beating = false;
  private failing = false;
  private closed = false;

  constructor(private readonly opts: MembershipOptions) {
    this.kv = opts.kv;
    this.heartbeatMs = opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.log = opts.log;
  }

  get node(): string {
    return this.opts.node;
  }

  /**
   * Announces this node (first beat), then beats every `heartbeatMs`. Rejects with
   * {@link NodeNameTakenError} when another live node has the name, and with a KvError
   * `BATON_ERR_KV_UNREACHABLE` when the store does not answer.
   */
  async start(): Promise<void> {
    const key = memberKey(this.node);
    const value = this.encode();
    if ((await this.kv.create(key, value)) === null) {
      // Held: by a live node (its revision moves within a few beats) or by our own dead run.
      const held = await this.kv.get(key);
      if (held !== null) {
        const deadline = Date.now() + this.heartbeatMs * 2.5;
        for (let i = 0; Date.now() < deadline && i < 1_000; i++) {
          await new Promise((r) => setTimeout(r, Math.min(100, this.heartbeatMs / 4)));
          const now = await this.kv.get(key);
          if (now !== null && now.revision !== held.revision) throw this.taken(now.value);
        }
        if ((await this.kv.update(key, value, held.revision)) === null) throw this.taken(held.value);
      } else if ((await this.kv.create(key, value)) === null) {
        throw this.taken(undefined);
      }
    }
    await this.refresh();
    this.timer = setInterval(() => void this.beat(), this.heartbeatMs);
    this.timer.unref();
  }

  /** Calls `listener` when a node joins or leaves (expired or closed); returns the unsubscribe. */
  on(listener: (e: MembershipEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether `node` was live at the last look (this node always is). */
  isLive(node: string): boolean {
    return node === this.node || this.live.has(node);
  }

  /** The live members at the last look, by name (this node's own beat included). */
  members(): Member[] {
    return [...this.live.values()].sort((a, b) => a.info.node.localeCompare(b.info.node));
  }

  /** Reads the bucket now: the members whose beats have not expired. */
  async refresh(): Promise<Member[]> {
    const keys = await this.kv.keys('members.');
    const next = new Map<string, Member>();
    const entries = await Promise.all(keys.map((k) => this.kv.get(k)));
    for (const e of entries) {
      if (e === null) continue;
      const info = decodeInfo(e.value);
      if (info !== undefined) next.set(info.node, { info, revision: e.revision });
    }
    const before = this.live;
    this.live = next;
    for (const node of next.keys()) if (!before.has(node) && node !== this.node) this.emit({ type: 'joined', node });
    for (const node of before.keys()) if (!next.has(node) && node !== this.node) this.emit({ type: 'left', node });
    return this.members();
  }

  /** Stops beating and removes this node's entry (best effort: it expires anyway). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.kv.delete(memberKey(this.node)).catch(() => false);
  }

  private async beat(): Promise<void> {
    if (this.beating || this.closed) return;
    this.beating = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Each store call is bounded; this bounds the beat as a whole, so one stuck call
      // can never stop the beats for good.
      const stuck = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new KvError('BATON_ERR_KV_UNREACHABLE', `a heartbeat took over ${BEAT_MAX_MS} ms`)), BEAT_MAX_MS);
      });
      await Promise.race([
        (async () => {
          await this.kv.put(memberKey(this.node), this.encode());
          await this.refresh();
        })(),
        stuck,
      ]);
      if (this.failing) this.log.info('membership heartbeats resumed', { event: 'membership.resumed', node: this.node });
      this.failing = false;
    } catch (e) {
      if (!this.failing) {
        this.log.warn(`membership heartbeat failed; serving on, retrying every ${this.heartbeatMs} ms: ${(e as Error).message}`, {
          event: 'membership.failing',
          node: this.node,
          code: e instanceof KvError ? e.code : undefined,
        });
      }
      this.failing = true;
    } finally {
      clearTimeout(timer);
      this.beating = false;
    }
  }

  private emit(e: MembershipEvent): void {
    this.log.info(e.type === 'joined' ? `node ${e.node} joined` : `node ${e.node} left (no heartbeat for a TTL, or it closed)`, {
      event: `membership.${e.type}`,
      member: e.node,
    });
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A faulty listener must not stop the beats.
      }
    }
  }

  private encode(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.opts.info()));
  }

  private taken(value: Uint8Array | undefined): NodeNameTakenError {
    const info = value === undefined ? undefined : decodeInfo(value);
    const where = info?.admin ? ` (admin ${info.admin}, started ${info.startedAt})` : '';
    return new NodeNameTakenError(`--node ${this.node}: another live node of this cluster has that name${where}; pick another name or stop that node`);
  }
}

/** A member's info from its stored bytes; undefined for anything that is not one. */
export function decodeInfo(bytes: Uint8Array): MemberInfo | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Partial<MemberInfo>;
    if (typeof v.node !== 'string' || !Array.isArray(v.relays) || typeof v.config?.version !== 'number') return undefined;
    return v as MemberInfo;
  } catch {
    return undefined;
  }
}
