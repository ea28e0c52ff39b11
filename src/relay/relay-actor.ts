/**
 * The relay actor: runs on its own worker thread and owns the TLS engines of
 * the connections placed on it, and holds replicated state for the connections
 * it is the replica of. It never touches a socket: inputs come from the gateway
 * numbered, outputs go back to it with byte offsets, and engine state goes to
 * the replica (DESIGN.md, "Replication and takeover").
 */
import { defineActor, type ActorContext, type ActorRef } from '../actors/index.js';
import {
  TlsServerEngine,
  decodeSnapshot,
  encodeSnapshot,
  loadCertifiedKey,
  type TlsDeps,
  type TlsEvent,
  type TlsOutput,
  type TlsServerConfig,
} from '../tls/index.js';
import { systemClock } from '../util/clock.js';
import { seededRandom, systemRandom } from '../util/random.js';
import type { ConnectionEvent, GatewayMsg, RelayMsg } from './protocol.js';
import { relayTlsConfig, type RelaySettings } from './settings.js';
import type { ConfigReply } from './protocol.js';

/** Fault points a test or operator can arm to crash a relay at an exact protocol moment. */
export const RELAY_FAULT_POINTS = [
  /** The post-ClientHello state reached the replica; the server flight waits for its ack. */
  'relay.afterClientHelloReplicated',
  /** The server flight left; the client Finished has arrived and is not yet processed. */
  'relay.beforeClientFinished',
  /** Application data is being relayed (established connection, input received). */
  'relay.midStream',
  /** A KeyUpdate was just processed or started; its output has not been posted. */
  'relay.duringKeyUpdate',
  /** A snapshot was taken and is about to be sent to the replica. */
  'relay.duringReplication',
] as const;
export type RelayFaultPoint = (typeof RELAY_FAULT_POINTS)[number];

export interface RelayArgs {
  /** This relay's name in the cluster (for acks and logs). */
  readonly name: string;
  readonly gateway: ActorRef<GatewayMsg>;
  readonly settings: RelaySettings;
}

interface Owned {
  readonly engine: TlsServerEngine;
  readonly epoch: number;
  /** The last input applied to the engine. */
  lastSeq: number;
  replica: ActorRef<RelayMsg> | null;
  /** Quarantined: abort once inputs up to here are replayed (see RelayMsg Promote). */
  quarantineAfter: number | null;
  /** Inputs applied since the last replication. */
  unreplicated: number;
  timer: NodeJS.Timeout | null;
}

interface Replica {
  readonly epoch: number;
  readonly upTo: number;
  /** Encoded engine snapshot: secret. */
  readonly snapshot: Uint8Array;
}

/**
 * What a relay sends while handling one message, sent together when it is done:
 * one hop per destination. The gateway's batch always leaves first, so it has an
 * input's output before the replica can acknowledge the state after that input.
 */
interface Outbox {
  gateway: GatewayMsg[];
  readonly replicas: Map<string, { readonly ref: ActorRef<RelayMsg>; msgs: RelayMsg[] }>;
}

interface RelayState {
  readonly outbox: Outbox;
  readonly name: string;
  readonly gateway: ActorRef<GatewayMsg>;
  readonly settings: RelaySettings;
  /** The active configuration: new connections (and restored ones) use it. */
  config: TlsServerConfig;
  active: { readonly version: number; readonly digest: string };
  /** Validated versions waiting for activation. */
  readonly staged: Map<number, { readonly digest: string; readonly config: TlsServerConfig }>;
  /** The engine's injected randomness and clock for one connection. */
  readonly deps: (conn: string) => TlsDeps;
  readonly owned: Map<string, Owned>;
  readonly replicas: Map<string, Replica>;
}

function engineDeps(settings: RelaySettings): (conn: string) => TlsDeps {
  const r = settings.reproducible;
  if (!r) {
    const deps = { random: systemRandom, clock: systemClock };
    return () => deps;
  }
  return (conn) => ({ random: seededRandom(`${r.seed}/${conn}`), clock: { now: () => r.clockMs } });
}

const NO_EVENTS: readonly ConnectionEvent[] = Object.freeze([]);

function gatewayEvents(events: readonly TlsEvent[]): readonly ConnectionEvent[] {
  if (events.length === 0) return NO_EVENTS;
  const out: ConnectionEvent[] = [];
  for (const e of events) {
    switch (e.type) {
      case 'handshakeDone':
        out.push({ type: 'handshakeDone', alpn: e.alpn, serverName: e.serverName, resumed: e.resumed, cipherSuite: e.cipherSuite });
        break;
      case 'peerClosed':
        out.push({ type: 'peerClosed' });
        break;
      case 'alertSent':
        out.push({ type: 'alert', sent: true, alert: e.alert });
        break;
      case 'alertReceived':
        out.push({ type: 'alert', sent: false, alert: e.alert });
        break;
      case 'closed':
        out.push({ type: 'closed', error: e.error });
        break;
      case 'keyLog':
      case 'keyUpdated':
        break;
    }
  }
  return out.length ? out : NO_EVENTS;
}

/** The engine's pieces go out as they are: the frame encoder copies each once. */
const pieces = (parts: readonly Uint8Array[]): readonly Uint8Array[] | null => (parts.length === 0 ? null : parts);

/** Posts the engine's output for input `seq` to the gateway. */
function post(s: RelayState, ctx: ActorContext, conn: string, o: Owned, seq: number, before: { client: number; backend: number }, out: TlsOutput, gated: boolean): void {
  const events = gatewayEvents(out.events);
  s.outbox.gateway.push({
    t: 'Output',
    conn,
    epoch: o.epoch,
    seq,
    clientOffset: before.client,
    toClient: pieces(out.toClient),
    backendOffset: before.backend,
    toBackend: pieces(out.plaintext),
    events,
    gated,
  });
}

function replicate(s: RelayState, ctx: ActorContext, conn: string, o: Owned): void {
  if (o.timer) {
    clearTimeout(o.timer);
    o.timer = null;
  }
  o.unreplicated = 0;
  if (!o.replica) return;
  const snapshot = encodeSnapshot(o.engine.snapshot());
  ctx.faultPoint('relay.duringReplication');
  const to = o.replica;
  let box = s.outbox.replicas.get(to.id);
  if (!box) s.outbox.replicas.set(to.id, (box = { ref: to, msgs: [] }));
  box.msgs.push({ t: 'Replicate', conn, epoch: o.epoch, upTo: o.lastSeq, snapshot });
}

const one = <M>(msgs: readonly M[]): M | { t: 'Batch'; msgs: readonly M[] } => (msgs.length === 1 ? msgs[0]! : { t: 'Batch', msgs });

/** Sends what the outbox holds: the gateway's share first (see {@link Outbox}). */
function flush(s: RelayState, ctx: ActorContext): void {
  const { outbox } = s;
  if (outbox.gateway.length) {
    const msgs = outbox.gateway;
    outbox.gateway = [];
    ctx.tell(s.gateway, one(msgs) as GatewayMsg);
  }
  for (const [id, box] of outbox.replicas) {
    outbox.replicas.delete(id);
    ctx.tell(box.ref, one(box.msgs) as RelayMsg);
  }
}

/** Batched replication: a count or a short timer, whichever comes first. */
function scheduleReplication(s: RelayState, ctx: ActorContext, conn: string, o: Owned): void {
  if (!o.replica) return;
  o.unreplicated++;
  if (o.unreplicated >= s.settings.replication.batchInputs) return replicate(s, ctx, conn, o);
  if (o.timer) return;
  o.timer = setTimeout(() => {
    o.timer = null;
    // The connection may have been forgotten or replaced meanwhile.
    if (s.owned.get(conn) === o && o.unreplicated > 0) {
      replicate(s, ctx, conn, o);
      flush(s, ctx);
    }
  }, s.settings.replication.batchDelayMs);
}

function forget(s: RelayState, conn: string): void {
  const o = s.owned.get(conn);
  if (o?.timer) clearTimeout(o.timer);
  s.owned.delete(conn);
  s.replicas.delete(conn);
}

function counters(engine: TlsServerEngine): { client: number; backend: number } {
  const c = engine.counters;
  return { client: c.bytesToClient, backend: c.plaintextReceived };
}

function onInput(s: RelayState, ctx: ActorContext, msg: Extract<RelayMsg, { t: 'Input' }>): void {
  const o = s.owned.get(msg.conn);
  // Fencing: inputs of an older epoch, or already covered by a restored state, are dropped.
  if (!o || o.epoch !== msg.epoch || msg.seq <= o.lastSeq) return;
  const { engine } = o;
  const phase = engine.phase;
  if (phase === 'handshaking' && engine.negotiated) ctx.faultPoint('relay.beforeClientFinished');
  else if (phase === 'established') ctx.faultPoint('relay.midStream');
  const negotiatedBefore = engine.negotiated !== null;
  const before = counters(engine);
  let out: TlsOutput;
  switch (msg.kind) {
    case 'client':
      out = engine.receive(msg.bytes ?? new Uint8Array(0));
      break;
    case 'backend':
      out = engine.send(msg.bytes ?? new Uint8Array(0));
      break;
    case 'backendEnd':
      out = engine.close();
      break;
    case 'backendFailed':
      out = engine.abort('internal_error', 'backend connection failed');
      break;
  }
  o.lastSeq = msg.seq;
  if (out.events.some((e) => e.type === 'keyUpdated')) ctx.faultPoint('relay.duringKeyUpdate');
  // Handshake clustering: the server flight, and the first output after the client
  // Finished, leave only once the replica holds the state that produced them.
  const flight = !negotiatedBefore && engine.negotiated !== null;
  const established = phase !== 'established' && engine.phase === 'established';
  const gated = o.replica !== null && (flight || established);
  post(s, ctx, msg.conn, o, msg.seq, before, out, gated);
  if (quarantineDue(s, ctx, msg.conn, o)) return;
  if (engine.phase === 'closed') {
    forget(s, msg.conn);
    return;
  }
  if (gated) {
    replicate(s, ctx, msg.conn, o);
    if (flight) {
      // The point means what it says: the state has left for the replica.
      flush(s, ctx);
      ctx.faultPoint('relay.afterClientHelloReplicated');
    }
  } else {
    scheduleReplication(s, ctx, msg.conn, o);
  }
}

/**
 * A quarantined connection, once replayed up to its last answered input, ends
 * with a fatal alert sealed at the right sequence number. True when it ended.
 */
function quarantineDue(s: RelayState, ctx: ActorContext, conn: string, o: Owned): boolean {
  if (o.quarantineAfter === null || o.lastSeq < o.quarantineAfter) return false;
  const before = counters(o.engine);
  post(s, ctx, conn, o, o.lastSeq, before, o.engine.abort('internal_error', 'connection quarantined'), false);
  forget(s, conn);
  return true;
}

function onPromote(s: RelayState, ctx: ActorContext, msg: Extract<RelayMsg, { t: 'Promote' }>): void {
  const held = s.replicas.get(msg.conn);
  s.replicas.delete(msg.conn);
  const engine = held
    ? TlsServerEngine.restore(decodeSnapshot(held.snapshot), s.config, s.deps(msg.conn))
    : TlsServerEngine.create(s.config, s.deps(msg.conn));
  const o: Owned = { engine, epoch: msg.epoch, lastSeq: held?.upTo ?? 0, replica: msg.replica, quarantineAfter: msg.quarantineAfter, unreplicated: 0, timer: null };
  s.owned.set(msg.conn, o);
  s.outbox.gateway.push({ t: 'Promoted', conn: msg.conn, epoch: msg.epoch, upTo: o.lastSeq });
  if (quarantineDue(s, ctx, msg.conn, o)) return;
  // The new replica gets the state before any replayed input runs: if that input
  // kills us too, the state it needs is already on its way.
  replicate(s, ctx, msg.conn, o);
  flush(s, ctx);
}

export default defineActor<RelayMsg, RelayState, RelayArgs>({
  name: 'relay',
  init(args) {
    return {
      name: args.name,
      gateway: args.gateway,
      settings: args.settings,
      config: relayTlsConfig(args.settings.config.tls, loadCertifiedKey),
      active: { version: args.settings.config.version, digest: args.settings.config.digest },
      staged: new Map(),
      deps: engineDeps(args.settings),
      owned: new Map(),
      replicas: new Map(),
      outbox: { gateway: [], replicas: new Map() },
    };
  },
  receive(msg, s, ctx) {
    handle(s, ctx, msg);
    flush(s, ctx);
  },
  undelivered(msg, _to, _code, s, ctx) {
    // A refused Replicate must be retried: a gated flight waits for its acknowledgement.
    const refused = (msg as RelayMsg).t === 'Batch' ? (msg as Extract<RelayMsg, { t: 'Batch' }>).msgs : [msg as RelayMsg];
    for (const m of refused) {
      if (m.t !== 'Replicate') continue;
      const o = s.owned.get(m.conn);
      if (!o || o.epoch !== m.epoch || o.timer) continue;
      o.timer = setTimeout(() => {
        o.timer = null;
        if (s.owned.get(m.conn) !== o) return;
        replicate(s, ctx, m.conn, o);
        flush(s, ctx);
      }, s.settings.replication.batchDelayMs);
    }
  },
  stop(s) {
    for (const conn of [...s.owned.keys()]) forget(s, conn);
  },
});

function handle(s: RelayState, ctx: ActorContext, msg: RelayMsg): void {
  switch (msg.t) {
    case 'Batch':
      for (const m of msg.msgs) handle(s, ctx, m);
      return;
    case 'Open':
      s.owned.set(msg.conn, {
        engine: TlsServerEngine.create(s.config, s.deps(msg.conn)),
        epoch: msg.epoch,
        lastSeq: 0,
        replica: msg.replica,
        quarantineAfter: null,
        unreplicated: 0,
        timer: null,
      });
      return;
    case 'Input':
      return onInput(s, ctx, msg);
    case 'Promote':
      return onPromote(s, ctx, msg);
    case 'SetReplica': {
      const o = s.owned.get(msg.conn);
      if (!o || o.epoch !== msg.epoch) return;
      o.replica = msg.replica;
      replicate(s, ctx, msg.conn, o);
      return;
    }
    case 'Replicate': {
      const held = s.replicas.get(msg.conn);
      if (held && (held.epoch > msg.epoch || (held.epoch === msg.epoch && held.upTo > msg.upTo))) return;
      s.replicas.set(msg.conn, { epoch: msg.epoch, upTo: msg.upTo, snapshot: msg.snapshot });
      s.outbox.gateway.push({ t: 'Replicated', conn: msg.conn, epoch: msg.epoch, upTo: msg.upTo, relay: s.name });
      return;
    }
    case 'Forget':
      forget(s, msg.conn);
      return;
    case 'StageConfig':
    case 'ActivateConfig':
    case 'Configure':
      // Answer an ask; a plain tell (the cluster after a restart) needs no answer.
      ctx.replier()?.reply(configure(s, msg));
      return;
  }
}

/**
 * Two-phase configuration: a staged version is validated here (every certificate
 * parses and matches its key) before any relay may use it; activation swaps it in
 * for new connections, while existing ones keep what they negotiated.
 */
function configure(s: RelayState, msg: Extract<RelayMsg, { t: 'StageConfig' | 'ActivateConfig' | 'Configure' }>): ConfigReply {
  if (msg.t === 'ActivateConfig') {
    const staged = s.staged.get(msg.version);
    if (!staged || staged.digest !== msg.digest) return { ok: false, reason: `version ${msg.version} is not staged here` };
    s.staged.clear();
    s.config = staged.config;
    s.active = { version: msg.version, digest: msg.digest };
    return { ok: true, version: msg.version };
  }
  let config: TlsServerConfig;
  try {
    config = relayTlsConfig(msg.config.tls, loadCertifiedKey);
  } catch (e) {
    // TlsConfigError messages name the problem, never key material.
    return { ok: false, reason: e instanceof Error ? e.message : 'invalid configuration' };
  }
  if (msg.t === 'StageConfig') {
    s.staged.set(msg.config.version, { digest: msg.config.digest, config });
    return { ok: true, version: msg.config.version };
  }
  s.staged.clear();
  s.config = config;
  s.active = { version: msg.config.version, digest: msg.config.digest };
  return { ok: true, version: msg.config.version };
}
