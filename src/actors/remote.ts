/**
 * The NATS transport for refs on other nodes (DESIGN.md, "Across machines"). Every node
 * subscribes to its own subject, `baton.<cluster>.node.<node>.actor`; a tell to a ref
 * whose `node` is another is published there as a msgpackr frame (protocol.ts,
 * RemoteTell), an ask is a NATS request (RemoteAsk) answered by a RemoteReply. The
 * receiving node delivers into its own system, so the errors are those of a local ref:
 * `BATON_ERR_NO_SUCH_ACTOR`, `BATON_ERR_ACTOR_DEAD`, `BATON_ERR_MAILBOX_FULL` and a
 * failed ask come back with their code; no answer in time is `BATON_ERR_ASK_TIMEOUT`;
 * a node nobody listens for (gone, never there) or NATS being down is
 * `BATON_ERR_UNREACHABLE`.
 *
 * A remote tell is fire-and-forget like NATS publish: what the receiving node refuses
 * is a DeadLetter there. It is refused here, `BATON_ERR_UNREACHABLE`, when NATS is
 * down or the membership says the node is not live. Messages from another node have no
 * sender ref (`ctx.sender` is undefined for a tell, the system's endpoint for an ask).
 *
 * Without a transport attached nothing here runs: a node alone routes exactly as before.
 * Not exported by actors/index.ts: import it from here, so that nothing else loads the
 * NATS client (worker threads import the index).
 */
import { NoRespondersError, TimeoutError, type Msg, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { ActorError, type ActorErrorCode } from './errors.js';
import {
  decodeHeader,
  decodePayload,
  encodeFrame,
  errorToFailure,
  failureToError,
  type NodeFrame,
  type RemoteAskFrame,
  type RemoteReplyFrame,
  type RemoteTellFrame,
} from './protocol.js';
import { actorSubject, badNodeName } from './node-name.js';
import type { ActorRef } from './ref.js';
import type { ActorSystem, RemoteRouter } from './system.js';

export interface RemoteTransportOptions {
  readonly nc: NatsConnection;
  /** The cluster's name: nodes of different clusters on one NATS never hear each other. */
  readonly cluster: string;
  /** This node's name (unique in the cluster). */
  readonly node: string;
  /**
   * The membership's view: false for a node known not to be live, so a tell to it is
   * refused at once rather than lost. Default: every node may be live.
   */
  readonly isLive?: (node: string) => boolean;
  /** Called on a failure the transport absorbs (a bad frame from afar); never throws. */
  readonly onError?: (what: string, e: unknown) => void;
}

/**
 * Attaches to `system` and serves its actors to the other nodes. Close it (idempotent)
 * before the connection: messages in flight to this node then get no answer.
 */
export class RemoteTransport implements RemoteRouter {
  readonly node: string;
  readonly subject: string;
  private readonly nc: NatsConnection;
  private readonly cluster: string;
  private readonly isLive: (node: string) => boolean;
  private readonly onError: (what: string, e: unknown) => void;
  private sub: Subscription | undefined;
  private connected = true;
  private closed = false;

  private constructor(
    private readonly system: ActorSystem,
    opts: RemoteTransportOptions,
  ) {
    const bad = badNodeName(opts.node) ?? badNodeName(opts.cluster);
    if (bad !== undefined) throw new ActorError('BATON_ERR_BAD_NAME', bad);
    this.nc = opts.nc;
    this.cluster = opts.cluster;
    this.node = opts.node;
    this.subject = actorSubject(opts.cluster, opts.node);
    this.isLive = opts.isLive ?? (() => true);
    this.onError = opts.onError ?? (() => undefined);
  }

  /** Subscribes to this node's subject (flushed, so it is live on the server) and attaches to `system`. */
  static async start(system: ActorSystem, opts: RemoteTransportOptions): Promise<RemoteTransport> {
    const t = new RemoteTransport(system, opts);
    t.sub = t.nc.subscribe(t.subject, { callback: (err, msg) => (err ? t.onError('subscription', err) : t.receive(msg)) });
    void t.followStatus();
    await t.nc.flush();
    system.attachRemote(t);
    return t;
  }

  tell(to: ActorRef, msg: unknown, raw?: Uint8Array): void {
    const node = this.reachable(to);
    const frame = encodeFrame({ t: 'RemoteTell', to: to.id } satisfies RemoteTellFrame, msg, raw);
    try {
      this.nc.publish(actorSubject(this.cluster, node), frame);
    } catch (e) {
      throw sendError(node, e);
    }
  }

  async ask<R>(to: ActorRef, msg: unknown, timeoutMs: number, raw?: Uint8Array): Promise<R> {
    const node = this.reachable(to);
    const frame = encodeFrame({ t: 'RemoteAsk', to: to.id, timeoutMs } satisfies RemoteAskFrame, msg, raw);
    let reply: Msg;
    try {
      reply = await this.nc.request(actorSubject(this.cluster, node), frame, { timeout: timeoutMs });
    } catch (e) {
      if (e instanceof TimeoutError || (e instanceof Error && e.cause instanceof TimeoutError)) {
        throw new ActorError('BATON_ERR_ASK_TIMEOUT', `ask to ${to.id} on node ${node} timed out after ${timeoutMs} ms`);
      }
      if (isNoResponders(e)) throw new ActorError('BATON_ERR_UNREACHABLE', `node ${node} is not reachable: nobody listens on NATS for it`);
      throw sendError(node, e);
    }
    const { header, payloadAt } = decodeHeader<NodeFrame>(reply.data);
    if (header.t !== 'RemoteReply') throw new ActorError('BATON_ERR_CODEC', `node ${node} answered with a ${header.t} frame`);
    if (header.fail !== undefined) throw failureToError(header.fail);
    return decodePayload<R>(reply.data, payloadAt);
  }

  /** Detaches from the system and unsubscribes. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.system.detachRemote(this);
    try {
      this.sub?.unsubscribe();
      // A flush waits for the server: bounded, as NATS may be away.
      if (!this.nc.isClosed()) await Promise.race([this.nc.flush(), new Promise((r) => setTimeout(r, 1_000).unref())]);
    } catch {
      // The connection may be gone already: nothing left to unsubscribe from.
    }
  }

  /** The target's node, or `BATON_ERR_UNREACHABLE` when NATS is down or the node not live. */
  private reachable(to: ActorRef): string {
    const node = to.node!;
    if (this.closed || this.nc.isClosed()) throw new ActorError('BATON_ERR_UNREACHABLE', `node ${node} is not reachable: the NATS transport is closed`);
    if (!this.connected) throw new ActorError('BATON_ERR_UNREACHABLE', `node ${node} is not reachable: NATS is disconnected`);
    if (!this.isLive(node)) throw new ActorError('BATON_ERR_UNREACHABLE', `node ${node} is not a live member of cluster ${this.cluster}`);
    return node;
  }

  /** A frame from another node, delivered into this system; never throws. */
  private receive(msg: Msg): void {
    let header: NodeFrame;
    let payloadAt: number;
    let value: unknown;
    try {
      ({ header, payloadAt } = decodeHeader<NodeFrame>(msg.data));
      value = decodePayload(msg.data, payloadAt);
    } catch (e) {
      this.onError('a frame that does not decode', e);
      if (msg.reply) this.respond(msg, { t: 'RemoteReply', fail: errorToFailure(e) });
      return;
    }
    switch (header.t) {
      case 'RemoteTell': {
        // As a local tell from outside any actor; a refusal becomes a DeadLetter here.
        this.system.tryTellQuiet({ id: header.to }, value);
        return;
      }
      case 'RemoteAsk': {
        if (!msg.reply) return;
        this.system.ask({ id: header.to }, value, header.timeoutMs).then(
          (v) => this.respond(msg, { t: 'RemoteReply' }, v),
          (e: unknown) => this.respond(msg, { t: 'RemoteReply', fail: errorToFailure(e) }),
        );
        return;
      }
      default:
        this.onError('an unexpected frame', new ActorError('BATON_ERR_CODEC', `unexpected ${header.t} frame`));
    }
  }

  private respond(msg: Msg, header: RemoteReplyFrame, value?: unknown): void {
    try {
      msg.respond(header.fail === undefined ? encodeFrame(header, value) : encodeFrame(header));
    } catch (e) {
      // An answer that cannot be encoded (or the connection just closed): tell the asker why.
      try {
        msg.respond(encodeFrame({ t: 'RemoteReply', fail: errorToFailure(e) }));
      } catch (e2) {
        this.onError('a reply that could not be sent', e2);
      }
    }
  }

  private async followStatus(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        if (s.type === 'disconnect') this.connected = false;
        else if (s.type === 'reconnect') this.connected = true;
      }
    } catch {
      // The status stream ends with the connection.
    }
  }
}

function isNoResponders(e: unknown): boolean {
  if (e instanceof NoRespondersError) return true;
  return e instanceof Error && e.cause instanceof NoRespondersError;
}

function sendError(node: string, e: unknown): ActorError {
  const code: ActorErrorCode = e instanceof ActorError ? e.code : 'BATON_ERR_UNREACHABLE';
  return new ActorError(code, `cannot send to node ${node}: ${(e as Error).message ?? String(e)}`, { cause: e });
}
