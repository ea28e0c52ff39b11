/**
 * A node joined to the others through NATS (`baton cluster --join nats://HOST:PORT
 * --node NAME`): its one NATS connection (nats-connection.ts), the remote actor
 * transport of its actor system (actors/remote.ts), its membership heartbeats
 * (membership.ts) and the `node-admin` actor every node runs, through which any node
 * reads another's status and forwards a crash to it. The admin API reaches the other
 * nodes through {@link ClusterNode} as its {@link NodesControl}.
 *
 * The buckets of one cluster are named `baton_<cluster>_<name>` ({@link ClusterNode.openBucket});
 * the subjects `baton.<cluster>.node.<node>.actor`. Nothing here is on the path of a
 * connection's bytes, and a node that never joins runs none of it.
 */
import type { NatsNkey } from './nats-credentials.js';
import { ActorSystem, defineActor, isActorError, refOf, type ActorRef } from '../actors/index.js';
import { RemoteTransport } from '../actors/remote.js';
import type { Logger } from '../util/log.js';
import { AdminHttpError, type CrashRequest, type CrashResponse, type NodeStatus, type NodesControl, type StatusResponse } from './admin-api.js';
import { connectNats, type NatsConnection, type NatsUrl } from './nats-connection.js';
import { openNatsKv, type NatsKvOptions, type NatsKvStore } from './nats-kv.js';
import { DEFAULT_MEMBER_TTL_MS, Membership } from './membership.js';
import { newId } from '../util/ids.js';

/** The id of the actor every joined node runs to answer the others. */
export const NODE_ADMIN_ID = 'node-admin';

/** What the `node-admin` actor answers. */
export type NodeAdminMsg = { readonly type: 'status' } | { readonly type: 'crash'; readonly req: Omit<CrashRequest, 'node'> };
/** A forwarded crash's outcome: the answer, or the HTTP refusal of the node that ran it. */
export type NodeCrashResult = { readonly ok: CrashResponse } | { readonly status: number; readonly error: string };

export interface JoinOptions {
  readonly url: NatsUrl;
  readonly node: string;
  readonly cluster: string;
  /** The actor system of this node's relay cluster: refs naming other nodes go over NATS. */
  readonly system: ActorSystem;
  readonly log: Logger;
  /** This node's summary for the others (admin-api.ts nodeSummary), given its admin address. */
  readonly summary: (admin: string | null) => NodeSummary;
  /** Crashes one of this node's relays (admin-api.ts crashRelay). */
  readonly crash: (req: Omit<CrashRequest, 'node'>) => Promise<CrashResponse>;
  /** This node's admin API address (`host:port`) once it listens, else null. */
  readonly admin: () => string | null;
  /** Heartbeat period and member TTL; tests shorten them. Defaults 1000 and 5000 ms. */
  readonly heartbeatMs?: number;
  readonly memberTtlMs?: number;
  /** Bound on the first connect to NATS and on each request. Default 5000 ms. */
  readonly timeoutMs?: number;
  /** This node's own credentials for NATS (`--nats-nkey`). */
  readonly nkey?: NatsNkey;
  /** Bound on asking another node for its status or to crash. Default 2000 ms. */
  readonly askTimeoutMs?: number;
}

/** A joined node; close it before its actor system. */
export class ClusterNode implements NodesControl {
  private closed = false;

  private constructor(
    readonly node: string,
    readonly cluster: string,
    readonly nc: NatsConnection,
    readonly membership: Membership,
    readonly transport: RemoteTransport,
    private readonly opts: JoinOptions,
  ) {}

  /**
   * Connects, announces this node, and serves its actors to the others. Rejects (with
   * everything it opened closed again) when NATS cannot be reached
   * (`BATON_ERR_NATS_UNREACHABLE`, `BATON_ERR_KV_UNREACHABLE`), refuses this node's
   * credentials (`BATON_ERR_NATS_REFUSED`) or the name is taken (`BATON_ERR_NODE_NAME_TAKEN`).
   */
  static async join(opts: JoinOptions): Promise<ClusterNode> {
    const log = opts.log.child({ component: 'node', node: opts.node });
    const timeoutMs = opts.timeoutMs ?? 5_000;
    const nc = await connectNats({
      url: opts.url,
      name: `baton-${opts.cluster}-${opts.node}`,
      log,
      connectTimeoutMs: timeoutMs,
      ...(opts.nkey ? { nkey: opts.nkey } : {}),
    });
    let membership: Membership | undefined;
    let transport: RemoteTransport | undefined;
    try {
      const kv = await openNatsKv(nc, { bucket: bucketName(opts.cluster, 'members'), ttlMs: opts.memberTtlMs ?? DEFAULT_MEMBER_TTL_MS, timeoutMs });
      const startedAt = new Date().toISOString();
      const incarnation = newId('run-');
      membership = new Membership({
        kv,
        node: opts.node,
        log,
        ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
        info: () => {
          const { name: _, ...summary } = opts.summary(opts.admin());
          return { node: opts.node, ...summary, startedAt, incarnation };
        },
      });
      await membership.start();
      const m = membership;
      transport = await RemoteTransport.start(opts.system, {
        nc,
        cluster: opts.cluster,
        node: opts.node,
        isLive: (n) => m.isLive(n),
        onError: (what, e) => log.warn(`remote actor transport: ${what}`, { event: 'remote.error', error: (e as Error).message }),
      });
      await opts.system.spawnLocal(nodeAdmin, { status: () => opts.summary(opts.admin()), crash: opts.crash }, { id: NODE_ADMIN_ID });
      log.info(`joined cluster ${opts.cluster} on ${opts.url.url} as node ${opts.node}`, {
        event: 'node.joined',
        cluster: opts.cluster,
        nats: opts.url.url,
        members: m.members().map((x) => x.info.node),
      });
      return new ClusterNode(opts.node, opts.cluster, nc, m, transport, { ...opts, log });
    } catch (e) {
      await transport?.close();
      await membership?.close();
      await nc.close().catch(() => undefined);
      throw e;
    }
  }

  /**
   * A bucket of this cluster (`baton_<cluster>_<name>`), created when missing: where
   * configuration versions, ticket keys and sessions are kept. Its connection is this node's.
   */
  openBucket(name: string, opts: Omit<NatsKvOptions, 'bucket'> = {}): Promise<NatsKvStore> {
    return openNatsKv(this.nc, { timeoutMs: this.opts.timeoutMs ?? 5_000, ...opts, bucket: bucketName(this.cluster, name) });
  }

  /** The ref of `node`'s `node-admin` actor. */
  adminRef(node: string): ActorRef<NodeAdminMsg> {
    return refOf(NODE_ADMIN_ID, node);
  }

  /** Names of the live nodes at the last heartbeat, this one included. */
  liveNodes(): string[] {
    const names = this.membership.members().map((m) => m.info.node);
    return names.includes(this.node) ? names : [this.node, ...names].sort();
  }

  async nodes(local: StatusResponse): Promise<NodeStatus[]> {
    const self: NodeStatus = { ...summarize(this.node, this.opts.admin(), local), source: 'self' };
    const others = this.membership.members().filter((m) => m.info.node !== this.node);
    const asked = await Promise.all(
      others.map(async (m): Promise<NodeStatus> => {
        try {
          const s = await this.opts.system.ask<NodeSummary>(this.adminRef(m.info.node), { type: 'status' }, this.askTimeoutMs);
          return { ...s, source: 'nats' };
        } catch (e) {
          const { node: _n, startedAt: _s, incarnation: _i, ...last } = m.info;
          return { name: m.info.node, ...last, source: 'heartbeat', error: (e as Error).message };
        }
      }),
    );
    return [self, ...asked];
  }

  async crash(node: string, req: Omit<CrashRequest, 'node'>): Promise<CrashResponse> {
    if (!this.membership.isLive(node)) {
      throw new AdminHttpError(404, `node: no live node named "${node}" in cluster ${this.cluster} (live nodes: ${this.liveNodes().join(', ')})`);
    }
    let r: NodeCrashResult;
    try {
      r = await this.opts.system.ask<NodeCrashResult>(this.adminRef(node), { type: 'crash', req }, this.askTimeoutMs);
    } catch (e) {
      const why = isActorError(e) ? `${e.code}: ${e.message}` : (e as Error).message;
      throw new AdminHttpError(502, `node ${node} did not run the crash: ${why}`);
    }
    if ('ok' in r) return r.ok;
    throw new AdminHttpError(r.status, `node ${node}: ${r.error}`);
  }

  /** Leaves: membership entry removed, transport closed, connection drained. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Leaving is best effort and bounded: with NATS away the entry expires on its own.
    await Promise.race([this.membership.close(), new Promise((r) => setTimeout(r, 1_000).unref())]);
    await Promise.race([this.transport.close(), new Promise((r) => setTimeout(r, 1_000).unref())]);
    await this.opts.system.stop(refOf(NODE_ADMIN_ID));
    // A bounded drain: NATS may be gone, and a close must not wait on it.
    await Promise.race([this.nc.drain().catch(() => undefined), new Promise((r) => setTimeout(r, 2_000).unref())]);
    if (!this.nc.isClosed()) await this.nc.close().catch(() => undefined);
    this.opts.log.info(`left cluster ${this.cluster}`, { event: 'node.left', cluster: this.cluster });
  }

  private get askTimeoutMs(): number {
    return this.opts.askTimeoutMs ?? 2_000;
  }
}

/** `baton_<cluster>_<name>`: JetStream bucket names allow letters, digits, - and _. */
export function bucketName(cluster: string, name: string): string {
  return `baton_${cluster}_${name}`;
}

/** What a node tells the others about itself: `/status`'s node line without its source. */
export type NodeSummary = Omit<NodeStatus, 'source' | 'error'>;

/** A node's public summary from its `/status`. */
export function summarize(node: string, admin: string | null, s: StatusResponse): NodeSummary {
  return {
    name: node,
    admin,
    relays: s.relays.map((r) => ({ name: r.name, up: r.up, restarts: r.restarts })),
    connections: { active: s.connections.active, opened: s.connections.opened },
    config: { version: s.config.version, digest: s.config.digest },
  };
}

interface NodeAdminArgs {
  readonly status: () => NodeSummary;
  readonly crash: (req: Omit<CrashRequest, 'node'>) => Promise<CrashResponse>;
}

/** The main-thread actor that answers the other nodes: its node's status, and crashes. */
const nodeAdmin = defineActor<NodeAdminMsg, NodeAdminArgs, NodeAdminArgs>({
  name: 'node-admin',
  init: (args) => args,
  async receive(msg, state, ctx) {
    switch (msg.type) {
      case 'status':
        ctx.reply(state.status());
        return;
      case 'crash': {
        const r = ctx.replier();
        try {
          r?.reply({ ok: await state.crash(msg.req) } satisfies NodeCrashResult);
        } catch (e) {
          // The refusal crosses as a value: an operator's mistake must not crash this actor.
          const status = e instanceof AdminHttpError ? e.status : 500;
          r?.reply({ status, error: e instanceof Error ? e.message : String(e) } satisfies NodeCrashResult);
        }
        return;
      }
      default: {
        const never: never = msg;
        return never;
      }
    }
  },
});
