/**
 * Joining the other nodes now, or as soon as NATS answers (issue 15, faults). A node
 * started with `--join` while NATS is unreachable does not wait for it: it serves on
 * its own configuration (its files and flags, as its active version) and tries again
 * with a bounded back-off until it joins: membership, the configuration agent (which
 * then brings it onto the cluster's active version, or makes its own the first one),
 * the shared ticket schedule and the shared session store. Until then its reloads roll
 * out over its own relays, it rotates its own ticket keys, and it reaches no other
 * node. Stateful tickets meanwhile live in the node's own memory store (Cluster.start):
 * they resume at most once, on this node only, and after the join in no store at all.
 *
 * A refusal no retry mends (NATS refusing the credentials, another live node of the
 * same name) is final: before the node serves it is thrown, afterwards it is handed to
 * `onFinal` so the node stops rather than serve unjoined for ever.
 *
 * What one attempt does is the caller's (`baton cluster` builds its error messages);
 * this module decides when to try, what the node runs meanwhile, and what it says.
 */
import type { Logger } from '../util/log.js';
import { AdminHttpError, type CrashRequest, type CrashResponse, type JoinStatus, type NodeStatus, type NodesControl, type StatusResponse } from './admin-api.js';
import type { Cluster } from './cluster.js';
import { summarize, type ClusterNode } from './node.js';
import type { NodeConfig } from './node-config.js';
import { localReloadTarget, type ReloadTarget } from './reload.js';

/** What a successful attempt holds: the node in the membership and its configuration agent. */
export interface JoinedNode {
  readonly node: ClusterNode;
  readonly config: NodeConfig;
}

export interface NodeJoinOptions {
  readonly node: string;
  readonly cluster: string;
  /** The NATS URL, for what the node says. */
  readonly nats: string;
  /** This node's relays: where reloads and ticket rotation go until it joins. */
  readonly local: Pick<Cluster, 'activeTls' | 'reconfigure' | 'rotateTicketsEvery' | 'stopTicketRotation' | 'gateway'>;
  /** One attempt: joined, or rejected with everything it opened closed again. */
  readonly attempt: () => Promise<JoinedNode>;
  /** Ticket key rotation: once for all nodes when joined, the node's own until then; absent: none. */
  readonly ticketRotationMs?: number;
  /** This node's admin API address, for its own line in `/status` while not joined. */
  readonly admin: () => string | null;
  /** A final refusal after the node started serving (see the module comment). */
  readonly onFinal: (e: unknown) => void;
  readonly log: Logger;
  /** Wait after the first failed attempt, doubled each time up to `maxMs`. Defaults 250 and 5000 ms. */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
}

/** Codes of a NATS (or its key-value store) that did not answer: worth another attempt. */
const PASSING = new Set(['BATON_ERR_NATS_UNREACHABLE', 'BATON_ERR_KV_UNREACHABLE']);
/** Codes no retry mends: an operator must act. */
const FINAL = new Set(['BATON_ERR_NATS_REFUSED', 'BATON_ERR_NODE_NAME_TAKEN']);

/** The stable code of `e` or of an error it wraps (a CliError keeps the original as its cause). */
export function faultCode(e: unknown): string | undefined {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 5; x = x.cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'BATON_ERR_CLI') return code;
  }
  return undefined;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The join of one node: its state, its reload target and its view of the other nodes. */
export class NodeJoin implements NodesControl {
  readonly node: string;
  private joinedNode: JoinedNode | null = null;
  private since = new Date();
  private failedAttempts = 0;
  private lastError: string | undefined;
  private rotationMs: number | undefined;
  private closed = false;
  private retrying: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private readonly local: ReloadTarget;

  constructor(private readonly opts: NodeJoinOptions) {
    this.node = opts.node;
    this.rotationMs = opts.ticketRotationMs;
    this.local = localReloadTarget(opts.local);
  }

  /** The joined node, or null while NATS has not answered. */
  get joined(): JoinedNode | null {
    return this.joinedNode;
  }

  /**
   * The first attempt, before the node serves: 'joined'; or 'waiting' when NATS did not
   * answer (the node serves alone and keeps trying); any other failure is thrown.
   */
  async start(): Promise<'joined' | 'waiting'> {
    try {
      this.becomeJoined(await this.opts.attempt());
      return 'joined';
    } catch (e) {
      if (!PASSING.has(faultCode(e) ?? '')) throw e;
      this.failed(e);
      this.opts.log.warn(
        `${message(e)}: serving on this node's own configuration; node ${this.node} joins cluster ${this.opts.cluster} ` +
          `when NATS answers (trying again every ${this.maxMs / 1000} s at most)`,
        { event: 'node.joinWaiting', nats: this.opts.nats, cluster: this.opts.cluster, error: message(e) },
      );
      if (this.rotationMs !== undefined) this.opts.local.rotateTicketsEvery(this.rotationMs);
      this.retrying = this.retry();
      return 'waiting';
    }
  }

  /** Tries again after a growing wait until joined, closed, or refused for good. */
  private async retry(): Promise<void> {
    for (let n = 0; !this.closed; n++) {
      const initial = this.opts.backoff?.initialMs ?? 250;
      // Jitter: nodes that lost NATS together do not all come back in one instant.
      await this.nap(Math.min(this.maxMs, initial * 2 ** Math.min(n, 20)) * (0.75 + Math.random() / 4));
      if (this.closed) return;
      let joined: JoinedNode;
      try {
        joined = await this.opts.attempt();
      } catch (e) {
        if (this.closed) return;
        if (FINAL.has(faultCode(e) ?? '')) {
          this.opts.onFinal(e);
          return;
        }
        // One warning per new reason (the first one said all there is to say about an unreachable NATS).
        const reason = message(e);
        const level = PASSING.has(faultCode(e) ?? '') || reason === this.lastError ? 'debug' : 'warn';
        this.failed(e);
        this.opts.log[level](`joining cluster ${this.opts.cluster} failed (attempt ${this.failedAttempts}); trying again`, { event: 'node.joinRetry', error: reason });
        continue;
      }
      if (this.closed) {
        await closeJoined(joined);
        return;
      }
      const attempts = this.failedAttempts;
      this.becomeJoined(joined);
      this.opts.log.info(`NATS at ${this.opts.nats} answered after ${attempts} failed attempt${attempts === 1 ? '' : 's'}: node ${this.node} joined cluster ${this.opts.cluster}`, {
        event: 'node.joinedLate',
        nats: this.opts.nats,
        cluster: this.opts.cluster,
        failedAttempts: attempts,
      });
      return;
    }
  }

  private get maxMs(): number {
    return this.opts.backoff?.maxMs ?? 5_000;
  }

  private failed(e: unknown): void {
    this.failedAttempts++;
    this.lastError = message(e);
  }

  private becomeJoined(joined: JoinedNode): void {
    this.joinedNode = joined;
    this.since = new Date();
    this.lastError = undefined;
    // From now on the keys rotate once for every node, through the agent.
    this.opts.local.stopTicketRotation();
    if (this.rotationMs !== undefined) joined.config.reloadTarget().rotateTicketsEvery(this.rotationMs);
  }

  private nap(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /** Where reloads go: every live node once joined, this node's relays until then. */
  reloadTarget(): ReloadTarget {
    const now = () => this.joinedNode?.config.reloadTarget() ?? this.local;
    return {
      gateway: this.opts.local.gateway,
      rollOut: (make) => now().rollOut(make),
      rotateTicketsEvery: (ms) => {
        this.rotationMs = ms;
        now().rotateTicketsEvery(ms);
      },
      servingSha256: () => this.joinedNode?.config.reloadTarget().servingSha256?.(),
    };
  }

  join(): JoinStatus {
    return {
      cluster: this.opts.cluster,
      nats: this.opts.nats,
      joined: this.joinedNode !== null,
      since: this.since.toISOString(),
      failedAttempts: this.failedAttempts,
      ...(this.joinedNode === null && this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  nodes(local: StatusResponse): Promise<NodeStatus[]> {
    if (this.joinedNode) return this.joinedNode.node.nodes(local);
    return Promise.resolve([{ ...summarize(this.node, this.opts.admin(), local), source: 'self' }]);
  }

  async crash(node: string, req: CrashRequest): Promise<CrashResponse> {
    if (this.joinedNode) return this.joinedNode.node.crash(node, req);
    throw new AdminHttpError(503, `node: node ${this.node} has not joined cluster ${this.opts.cluster} yet (NATS at ${this.opts.nats} does not answer), so it reaches no node "${node}"`);
  }

  /** Stops trying, then leaves (agent first: it needs the node's connection to stop watching). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    // An attempt in flight closes what it opened itself (see retry); a close does not wait on NATS.
    await Promise.race([this.retrying, new Promise((r) => setTimeout(r, 1_000).unref())]);
    const joined = this.joinedNode;
    if (joined) await closeJoined(joined);
  }
}

async function closeJoined(joined: JoinedNode): Promise<void> {
  await joined.config.close();
  await joined.node.close();
}
