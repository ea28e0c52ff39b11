/**
 * The gateway, on the main thread: owns the listening socket and every TCP
 * socket (client side and backend side), frames client bytes into whole TLS
 * records, numbers and retains every input it hands a connection's owner relay,
 * writes what relays return (skipping bytes already written), fences by epoch,
 * and runs takeover when a relay dies; for a graceful drain it stops accepting and
 * ends connections with their owner's close_notify. Records cross to and from relays
 * on their data channels; committed state lives in the state store, which the gateway
 * copies from slot to slot at a takeover but never decodes: it holds no key material.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Arena, ActorRef, ChannelEnd, Crash } from '../actors/index.js';
import { SESSION_ID_LEN, type TlsLimit } from '../tls/index.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { HostPort } from '../util/host-port.js';
import { newId } from '../util/ids.js';
import { BackendPool, singleBackend, type Backend, type BackendsSpec, type RouteKey } from './backend-pool.js';
import { ChunkLedger, SmallAllocator } from './chunk-ledger.js';
import { DEFAULT_DEADLINES, overdue, sweepPeriodMs, type DeadlineSettings, type Overdue } from './deadlines.js';
import { HealthChecker, type Probe } from './health-check.js';
import type { ConnectionEvent, RelayMsg } from './protocol.js';
import { encodeProxyHeader, ProxyHeaderError, type ProxyProtocolMode } from './proxy-protocol.js';
import { RelayLink } from './relay-link.js';
import { RetainedQueue, type InputKind } from './retained.js';
import { DEFAULT_LOOKUP_DEADLINE_MS, offeredSessionIds, takeWithin, type SessionStore, type StoredSession } from './session-lookup.js';
import { acceptedSocket, SocketInput, takeAccepts } from './socket-input.js';
import { SocketOutput } from './socket-output.js';
import { SlotAllocator, StateStore } from './state-store.js';
import {
  FromRelay,
  H_AUX16,
  H_CONN,
  H_EPOCH,
  H_AUX32,
  H_AUX32B,
  H_FLAGS,
  H_LENGTH,
  H_OFFSET,
  H_SEQ,
  H_TYPE,
  HEADER_BYTES,
  Held,
  decodeFacts,
  doneEvents,
  type HandshakeFacts,
} from './wire.js';

export interface GatewayOptions {
  readonly listen: HostPort;
  readonly backend: HostPort;
  /** Several backends, balanced and health-checked (backend-pool.ts); default `backend` alone. */
  readonly backends?: BackendsSpec;
  /** How health checks probe a backend (tests); default a TCP connect. */
  readonly healthProbe?: Probe;
  /** Retained input per connection above which reading pauses until a commit frees it. */
  readonly retainedLimitBytes: number;
  /**
   * A connection whose input is in flight at this many owner crashes in a row, each
   * while the previous takeover was still replaying it, is poison: quarantined.
   */
  readonly poisonCrashes: number;
  /** Where relays commit connection state; null: no replication, no takeover. */
  readonly store: StateStore | null;
  /** Where input and output bytes lie, shared with the relays. */
  readonly arena: Arena;
  /** Inputs handed to a connection's owner ahead of its output. */
  readonly maxInFlight: number;
  /** Connection ids; default random (nanoid). Reproducible runs number them. */
  readonly connectionId?: (n: number) => string;
  /** Handshake, idle and backend connect deadlines (deadlines.ts); default {@link DEFAULT_DEADLINES}. */
  readonly deadlines?: DeadlineSettings;
  /**
   * Connections served at once, at most; past it accepted connections wait, unread, in
   * arrival order (at most {@link MAX_WAITING}, then closed at once) until one ends.
   * Default: no limit.
   */
  readonly maxConnections?: number;
  /** Where the deadlines read the time; default the system clock. */
  readonly clock?: Clock;
  /**
   * KeyUpdates answering the client's update_requested that may be answered while the
   * client's socket still holds output it has not taken (it does not read); the next
   * one closes the connection. Reset whenever the socket drains. Default
   * {@link DEFAULT_MAX_UNREAD_KEY_UPDATES}.
   */
  readonly maxUnreadKeyUpdates?: number;
  /**
   * Retained input of all connections together (bytes) above which the sockets of
   * every connection holding more than an equal share of half of it are not read, until
   * commits bring the total below half. Default {@link DEFAULT_RETAINED_BUDGET_BYTES}.
   */
  readonly retainedBudgetBytes?: number;
  /**
   * 'v2': every backend connection starts with a PROXY v2 header (proxy-protocol.ts)
   * telling the client's address and the handshake's SNI, ALPN and cipher. Default 'off'.
   */
  readonly proxyProtocol?: ProxyProtocolMode;
  /** Where stateful session tickets are kept (see {@link Gateway.useSessionStore}); absent: none yet. */
  readonly sessions?: SessionStore;
  /** How long a ClientHello waits for its stateful sessions. Default {@link DEFAULT_LOOKUP_DEADLINE_MS}. */
  readonly lookupDeadlineMs?: number;
}

/** Default of {@link GatewayOptions.maxUnreadKeyUpdates}: no client asks that often, let alone without reading. */
export const DEFAULT_MAX_UNREAD_KEY_UPDATES = 32;
/** Default of {@link GatewayOptions.retainedBudgetBytes}: half of the default arena (512 MiB), so output always has room. */
export const DEFAULT_RETAINED_BUDGET_BYTES = 256 << 20;

/** Accepted connections that may wait for room past `maxConnections`; more are closed at once. */
export const MAX_WAITING = 1024;

/** How long a drain's close waits for a backend to answer our FIN with its own (closeAllWithNotify). */
const BACKEND_END_GRACE_MS = 1_000;
/** Backends a connection's connect is tried on before its client gets the failure. */
export const MAX_BACKEND_TRIES = 3;
/** How long an ended client socket may wait for the peer's end of stream. */
const LINGER_MS = 5_000;
/** The socket reads that share a buffer (see socket-input.ts) read into this one. */
const SCRATCH_BYTES = 64 << 10;

export const DEFAULT_GATEWAY = { retainedLimitBytes: 1 << 20, poisonCrashes: 2, maxInFlight: 32 } as const;

/** Resolves once everything written to `socket` and its end are handed to the kernel, or it is gone. */
function ended(socket: net.Socket): Promise<void> {
  if (socket.destroyed || socket.writableFinished) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('finish', () => resolve());
    socket.once('close', () => resolve());
  });
}

/** Closes a TCP socket with an RST (a plain destroy where it cannot: not TCP, already closed). */
function resetSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  // An 'error' from the reset of a socket that is closing anyway is no news.
  socket.on('error', () => undefined);
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/**
 * The PROXY v2 header of a client connection; LOCAL (the TLS facts without addresses)
 * once its socket no longer knows its ends, rather than a throw on the main thread.
 */
function proxyHeader(client: net.Socket, facts: HandshakeFacts): Uint8Array {
  const tls = { alpn: facts.alpn, serverName: facts.serverName, version: 'TLSv1.3', cipher: facts.cipherSuite };
  const { remoteAddress, remotePort, localAddress, localPort } = client;
  if (remoteAddress !== undefined && remotePort !== undefined && localAddress !== undefined && localPort !== undefined) {
    try {
      return encodeProxyHeader({ command: 'proxy', source: { address: remoteAddress, port: remotePort }, destination: { address: localAddress, port: localPort }, tls });
    } catch (e) {
      if (!(e instanceof ProxyHeaderError)) throw e;
    }
  }
  return encodeProxyHeader({ command: 'local', tls });
}

/** A relay as the gateway sees it. */
interface RelaySlot {
  readonly name: string;
  ref: ActorRef<RelayMsg>;
  /** The data channel of its live incarnation (null while it is down). */
  link: RelayLink | null;
  up: boolean;
  /** Connections it owns, for placement. */
  owned: number;
  /** Its live incarnation's name in the arena's owner table (0: none). */
  arenaOwner: number;
  /** Its dead incarnation's, whose arena chunks are reclaimed once it is back. */
  deadArenaOwner: number;
  /** Store slots of its dead incarnation, reusable once it is back (a zombie of it can no longer write). */
  cooling: number[];
}

/**
 * Whether a crash can be an input's doing: an uncaught throw, an exit, running out of
 * memory or a hang, or a fault point that stands in for one. An injected crash (an
 * operator's, the demo's) and a start deadline never are.
 */
function inputCouldCause(crash: Crash): boolean {
  if (crash.fault !== undefined && crash.fault.point === undefined) return false;
  switch (crash.reason.kind) {
    case 'throw':
    case 'exit':
    case 'oom':
    case 'hang':
      return true;
    case 'terminated':
      return crash.reason.by === 'fault-point';
    default:
      return false;
  }
}

/** An output entry of a handshaking connection, kept (its header copied, its chunk held) until a commit covers it. */
interface HeldEntry {
  readonly seq: number;
  readonly held: boolean;
  readonly entry: Uint8Array;
  /** The arena chunk it names (-1: none). */
  readonly chunk: number;
}

interface Conn {
  readonly id: string;
  /** The connection's number on the data channel. */
  readonly num: number;
  epoch: number;
  /** Null while no relay is up to own it (its state waits in the store). */
  owner: RelaySlot | null;
  /** Where the current owner commits its state (-1: no replication). */
  slot: number;
  token: number;
  client: net.Socket;
  backend: net.Socket | null;
  backendConnected: boolean;
  /** The backend `backend` connects to (its connection counted there), the ones tried, and what routes it. */
  backendServer: Backend | null;
  backendTried: Set<Backend> | null;
  routeKey: RouteKey;
  /** The PROXY v2 header every backend socket of this connection starts with (null: off). */
  proxyHeader: Uint8Array | null;
  readonly clientIn: SocketInput;
  backendIn: SocketInput | null;
  readonly retained: RetainedQueue;
  /** The last input handed to the current owner. */
  sentUpTo: number;
  /** The newest commit the gateway learned of covers inputs up to here. */
  committedUpTo: number;
  /** The last input whose output arrived (held or not). */
  answeredUpTo: number;
  /** The last input whose output was acted on (written, its events applied). */
  outputUpTo: number;
  /** Bytes of relay output for the client / backend already taken (and written or queued). */
  clientWritten: number;
  backendWritten: number;
  /** Output to write when the relay's entries are all read (the backend's waits for it to connect). */
  readonly toClient: SocketOutput;
  readonly toBackend: SocketOutput;
  touched: boolean;
  /** Output waiting for a commit (handshake clustering), in order. */
  held: HeldEntry[];
  handshakeDone: boolean;
  peerClosed: boolean;
  engineClosed: boolean;
  /** TCP end of stream from the client, and the backend's end of stream as input number. */
  clientEnded: boolean;
  backendEndSeq: number;
  /** Backpressure: too much uncommitted input, or a socket that stopped accepting writes. */
  pausedForRetained: boolean;
  /** KeyUpdates answered to the client's update_requested since its socket last drained, while it held unwritten output. */
  unreadKeyUpdates: number;
  /** Over the retained-input budget, this connection holds more than its share: it is not read. */
  overShare: boolean;
  clientFull: boolean;
  backendFull: boolean;
  /** Owner crashes while running input `suspect` (poison detection). */
  strikes: number;
  suspect: number;
  /** Poison: no input past this one is handed to a relay again. */
  quarantineAfter: number | null;
  /** Deadline bookkeeping (deadlines.ts), in clock milliseconds. */
  handshakeSince: number | null;
  lastActive: number;
  backendConnectingSince: number;
  idleClosingSince: number;
  /** Detection time and crash kind of a takeover in progress, for latency. */
  takeover: { readonly since: number; readonly kind: string } | null;
  /** Asked to close (closeAllWithNotify): the client socket ends once the close_notify is written. */
  endAfterNotify: boolean;
  /**
   * A stateful-session lookup for its ClientHello is out: that input and every later
   * one wait here, in order, until it ends (null: none out).
   */
  lookup: WaitingInput[] | null;
  done: boolean;
}

/** An input held back while its connection's session lookup is out. */
interface WaitingInput {
  readonly kind: InputKind;
  readonly chunk: number;
  readonly offset: number;
  readonly length: number;
}

/** What `connections()` tells of one connection. */
export interface ConnectionInfo {
  readonly id: string;
  readonly owner: string | null;
  readonly epoch: number;
  readonly handshakeDone: boolean;
  /** Inputs received so far, handed to the owner, answered by it, covered by a commit. */
  readonly inputs: number;
  readonly sentUpTo: number;
  readonly outputUpTo: number;
  readonly committedUpTo: number;
  readonly retainedBytes: number;
  readonly heldOutputs: number;
}

export interface TakeoverSample {
  readonly kind: string;
  readonly ms: number;
}

/** Counters the gateway keeps; secrets never enter them. */
export interface GatewayStats {
  connectionsOpened: number;
  connectionsActive: number;
  /** Connections turned away: every state slot taken, too many waiting, or draining (with no relay up they wait instead). */
  connectionsRefused: number;
  handshakes: number;
  bytesFromClients: number;
  bytesToClients: number;
  bytesToBackends: number;
  bytesFromBackends: number;
  takeovers: number;
  connectionsLost: number;
  quarantined: number;
  /** Output that arrived past what was written (bytes a client would miss; the connection is reset; must stay 0). */
  outputGaps: number;
  /** Connections reset (TCP RST, both sockets) because their output would have had a gap; must stay 0. */
  gapResets: number;
  /** Connections closed by a deadline: handshake, idle, backend connect (deadlines.ts). */
  handshakeTimeouts: number;
  idleTimeouts: number;
  backendConnectTimeouts: number;
  /** Accepted connections that had to wait for room (max connections reached) or for a relay to be up, and those waiting now. */
  connectionsQueued: number;
  connectionsWaiting: number;
  /** Connections closed for a cap (see GatewayEvents.limitExceeded). */
  handshakeChangeCipherSpecCloses: number;
  handshakeWarningAlertCloses: number;
  unreadKeyUpdateCloses: number;
  /** Input bytes retained for replay, all connections together, and the budget they are held to. */
  retainedBytes: number;
  readonly retainedBudgetBytes: number;
  /** Times the budget was reached (connections over their share stopped being read), and whether it holds now. */
  retainedBudgetPauses: number;
  retainedBudgetPaused: boolean;
  /** ClientHellos that offered stateful tickets (a lookup went out), and those whose lookup found a session. */
  sessionLookups: number;
  sessionsFound: number;
  /** The most recent takeovers (at most {@link MAX_SAMPLES}); every one is also a 'takeover' event. */
  readonly takeoverSamples: TakeoverSample[];
}

const MAX_SAMPLES = 4096;

/** The caps that close a connection. */
export type GatewayLimit = TlsLimit | 'unreadKeyUpdates';

/** What the gateway announces as it happens, for metrics and logs (no secrets). */
export interface GatewayEvents {
  takeover: [sample: TakeoverSample & { readonly conn: string }];
  handshake: [info: { readonly conn: string; readonly relay: string; readonly resumed: boolean; readonly cipherSuite: string }];
  /** `input`: the input that crashed two owners; `crash`: the last one's crash kind. */
  quarantined: [info: { readonly conn: string; readonly input: number; readonly crash: string }];
  connectionLost: [info: { readonly conn: string; readonly reason: string }];
  connectionClosed: [info: { readonly conn: string }];
  /** A deadline closed the connection (see deadlines.ts). */
  timedOut: [info: { readonly conn: string; readonly deadline: Exclude<Overdue, 'idleGrace'> }];
  /** A cap closed the connection: the engine's (with a fatal alert) or the gateway's (see GatewayOptions.maxUnreadKeyUpdates). */
  limitExceeded: [info: { readonly conn: string; readonly limit: GatewayLimit }];
  /** The retained-input budget was reached (connections over their share stop being read) or left (all are read again). */
  retainedBudget: [info: { readonly paused: boolean; readonly retainedBytes: number }];
  /** The listening socket failed after it started listening (it is not retried). */
  listenError: [error: Error];
}

export class Gateway extends EventEmitter<GatewayEvents> {
  private server: net.Server | null = null;
  private readonly relays = new Map<string, RelaySlot>();
  private readonly conns = new Map<number, Conn>();
  /** Called once no takeover waits on a live relay to restore ({@link restored}). */
  private readonly restoreWaiters: (() => void)[] = [];
  /** Finished connections whose owner has not yet confirmed it forgot them: their slots. */
  private readonly closing = new Map<number, { readonly epoch: number; readonly slot: number; readonly owner: RelaySlot }>();
  /** Connections with output of this turn to write. */
  private readonly touched: Conn[] = [];
  /** Every client socket still open, lingering ones included, for close(). */
  private readonly sockets = new Set<net.Socket>();
  private readonly ledger: ChunkLedger;
  private readonly small: SmallAllocator;
  private readonly scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  /** Connections whose reading stopped for lack of arena chunks. */
  private readonly starved = new Set<Conn>();
  private readonly slots: SlotAllocator | null;
  private nextOwner = 0;
  private nextNum = 1;
  readonly stats: GatewayStats = {
    connectionsOpened: 0,
    connectionsActive: 0,
    connectionsRefused: 0,
    handshakes: 0,
    bytesFromClients: 0,
    bytesToClients: 0,
    bytesToBackends: 0,
    bytesFromBackends: 0,
    takeovers: 0,
    connectionsLost: 0,
    quarantined: 0,
    outputGaps: 0,
    gapResets: 0,
    handshakeTimeouts: 0,
    idleTimeouts: 0,
    backendConnectTimeouts: 0,
    connectionsQueued: 0,
    connectionsWaiting: 0,
    handshakeChangeCipherSpecCloses: 0,
    handshakeWarningAlertCloses: 0,
    unreadKeyUpdateCloses: 0,
    retainedBytes: 0,
    retainedBudgetBytes: 0,
    retainedBudgetPauses: 0,
    retainedBudgetPaused: false,
    sessionLookups: 0,
    sessionsFound: 0,
    takeoverSamples: [],
  };
  private readonly clock: Clock;
  private readonly deadlines: DeadlineSettings;
  /** Where new connections find their backend; a reload may replace it (see setBackends). */
  private pool: BackendPool;
  private checker: HealthChecker<Backend>;
  private readonly maxUnreadKeyUpdates: number;
  private sweeper: NodeJS.Timeout | null = null;
  /** Accepted connections waiting for room (max connections) or for a relay to be up, oldest first, with when they came. */
  private readonly waiting: { readonly accepted: net.Socket | object; readonly at: number }[] = [];
  private admitScheduled = false;
  /** False once stopAccepting() ran: new connections are refused, the listener is closed. */
  private accepting = true;

  /** Where stateful session tickets are kept (session-lookup.ts); null: stateless tickets only, no ClientHello waits. */
  private sessions: SessionStore | null = null;

  constructor(private readonly opts: GatewayOptions) {
    super();
    this.slots = opts.store ? new SlotAllocator(opts.store) : null;
    this.ledger = new ChunkLedger(opts.arena);
    this.small = new SmallAllocator(this.ledger);
    this.clock = opts.clock ?? systemClock;
    this.deadlines = opts.deadlines ?? DEFAULT_DEADLINES;
    this.pool = new BackendPool(opts.backends ?? singleBackend(opts.backend));
    this.checker = new HealthChecker(this.pool, this.pool.spec.health, opts.healthProbe);
    this.maxUnreadKeyUpdates = opts.maxUnreadKeyUpdates ?? DEFAULT_MAX_UNREAD_KEY_UPDATES;
    this.stats = { ...this.stats, retainedBudgetBytes: opts.retainedBudgetBytes ?? DEFAULT_RETAINED_BUDGET_BYTES };
    this.sessions = opts.sessions ?? null;
  }

  /**
   * Registers a relay incarnation and its data channel (at start, and again after each
   * restart). Connections waiting for a relay are taken over by it.
   */
  relayUp(name: string, ref: ActorRef<RelayMsg>, channel: ChannelEnd, arenaOwner: number): void {
    let slot = this.relays.get(name);
    if (!slot) {
      slot = { name, ref, link: null, up: false, owned: 0, arenaOwner: 0, deadArenaOwner: 0, cooling: [] };
      this.relays.set(name, slot);
    }
    const relay = slot;
    relay.ref = ref;
    // The dead incarnation is gone for good by now: what it held in the arena is free.
    if (relay.deadArenaOwner) this.ledger.reclaim(relay.deadArenaOwner);
    relay.deadArenaOwner = 0;
    relay.arenaOwner = arenaOwner;
    relay.link = new RelayLink(
      channel,
      (view, bytes, at, length) => this.onEntry(relay, view, bytes, at, length),
      () => this.flushWrites(),
    );
    relay.up = true;
    for (const s of relay.cooling) this.slots?.release(s);
    relay.cooling = [];
    const waited = [...this.conns.values()].filter((c) => c.owner === null && !c.done);
    for (const c of waited) this.promote(c, relay);
    for (const c of waited) this.pump(c);
    // Connections accepted while no relay was up are served now (room permitting).
    if (this.waiting.length > 0 && this.accepting) this.admit();
  }

  async listen(): Promise<net.AddressInfo> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.listen.port, this.opts.listen.host, () => {
        server.off('error', reject);
        // Without a listener an error after start would end the process with a stack trace.
        server.on('error', (e) => this.emit('listenError', e));
        // Accepted connections read straight into the arena (see socket-input.ts).
        takeAccepts(server, (handle) => this.accept(handle));
        this.sweeper = setInterval(() => this.sweep(), sweepPeriodMs(this.deadlines));
        this.sweeper.unref();
        this.checker.start();
        resolve();
      });
    });
    return server.address() as net.AddressInfo;
  }

  /** The backends new connections go to, with their health and counters. */
  get backends(): BackendPool {
    return this.pool;
  }

  /**
   * Keeps stateful session tickets in `store` from now on: relays' SessionIssued
   * entries are stored there, and a ClientHello offering stateful ids waits (bounded)
   * for them to be taken. A node that joins other nodes moves to their shared store.
   */
  useSessionStore(store: SessionStore | null): void {
    this.sessions = store;
  }

  /**
   * Sends new connections to these backends from now on (a reload): open connections
   * stay where they are; a backend kept by name keeps its health and counters, a new
   * one starts up.
   */
  setBackends(spec: BackendsSpec): void {
    this.checker.close();
    this.pool = new BackendPool(spec, this.pool);
    this.checker = new HealthChecker(this.pool, spec.health, this.opts.healthProbe);
    if (this.server) this.checker.start();
  }

  /** Connections owned per relay. */
  placement(): Map<string, { owned: number; up: boolean }> {
    return new Map([...this.relays.values()].map((r) => [r.name, { owned: r.owned, up: r.up }]));
  }

  /** Every live connection's placement and progress (public facts only). */
  connections(): ConnectionInfo[] {
    return [...this.conns.values()].map((c) => ({
      id: c.id,
      owner: c.owner?.name ?? null,
      epoch: c.epoch,
      handshakeDone: c.handshakeDone,
      inputs: c.retained.next - 1,
      sentUpTo: c.sentUpTo,
      outputUpTo: c.outputUpTo,
      committedUpTo: c.committedUpTo,
      retainedBytes: c.retained.bytes,
      heldOutputs: c.held.length,
    }));
  }

  // ---- connections ----

  /**
   * The up relay owning the fewest connections, ties broken in turn: a restarted relay,
   * which owns nothing, gets new connections first, so load evens out after takeovers.
   */
  private leastLoaded(): RelaySlot | null {
    const up = [...this.relays.values()].filter((r) => r.up);
    let best: RelaySlot | null = null;
    const start = this.nextOwner++;
    for (let k = 0; k < up.length; k++) {
      const r = up[(start + k) % up.length]!;
      if (best === null || r.owned < best.owned) best = r;
    }
    return best;
  }

  private anyRelayUp(): boolean {
    for (const r of this.relays.values()) if (r.up) return true;
    return false;
  }

  private setOwner(c: Conn, owner: RelaySlot | null): void {
    if (c.owner === owner) return;
    if (c.owner) c.owner.owned--;
    if (owner) owner.owned++;
    c.owner = owner;
  }

  /** Closes an accepted connection at once (its handle, or a Socket). */
  private refuse(accepted: net.Socket | object): void {
    if (accepted instanceof net.Socket) accepted.destroy();
    else acceptedSocket(accepted, { buffer: () => this.scratch, callback: () => true }).destroy();
  }

  /**
   * A new client connection: its handle (the usual way), or a Socket where Node kept the
   * handle to itself. At max connections it waits, unread (the kernel holds its bytes).
   */
  private accept(accepted: net.Socket | object): void {
    if (!this.accepting) {
      this.stats.connectionsRefused++;
      this.refuse(accepted);
      return;
    }
    const max = this.opts.maxConnections;
    // With every relay down at once (crashed, none restarted yet) a new connection waits,
    // unread, for the first one back, as for room: a crash storm is a pause, not a reset.
    const full = max !== undefined && this.stats.connectionsActive >= max;
    if (full || this.waiting.length > 0 || !this.anyRelayUp()) {
      if (this.waiting.length >= MAX_WAITING) {
        this.stats.connectionsRefused++;
        this.refuse(accepted);
        return;
      }
      if (accepted instanceof net.Socket) accepted.pause();
      this.waiting.push({ accepted, at: this.clock.now() });
      this.stats.connectionsQueued++;
      this.stats.connectionsWaiting = this.waiting.length;
      return;
    }
    this.serve(accepted);
  }

  /** Serves waiting connections while there is room and a relay is up (after a connection ended, a relay came back). */
  private admit(): void {
    this.admitScheduled = false;
    const max = this.opts.maxConnections ?? Infinity;
    while (this.waiting.length > 0 && this.stats.connectionsActive < max && this.server !== null && this.anyRelayUp()) {
      const { accepted } = this.waiting.shift()!;
      this.serve(accepted);
      if (accepted instanceof net.Socket) accepted.resume();
    }
    this.stats.connectionsWaiting = this.waiting.length;
  }

  private serve(accepted: net.Socket | object): void {
    const owner = this.leastLoaded();
    const slot = this.slots ? this.slots.allocate() : { slot: -1, token: 0 };
    if (owner === null || slot === null) {
      this.stats.connectionsRefused++;
      if (slot !== null && slot.slot >= 0) this.slots?.release(slot.slot);
      this.refuse(accepted);
      return;
    }
    const num = this.nextNum++;
    // Filled in below, once the connection exists for the readers to call back into.
    let conn: Conn | null = null;
    const clientIn = new SocketInput(this.ledger, this.small, this.scratch, true, (chunk, offset, length) => this.input(conn!, 'client', chunk, offset, length));
    const client = accepted instanceof net.Socket ? accepted : acceptedSocket(accepted, clientIn.onread);
    const c: Conn = {
      id: this.opts.connectionId?.(this.stats.connectionsOpened) ?? newId('c_'),
      num,
      epoch: 1,
      owner: null,
      slot: slot.slot,
      token: slot.token,
      client,
      backend: null,
      backendConnected: false,
      backendServer: null,
      backendTried: null,
      routeKey: { serverName: null, alpn: null },
      proxyHeader: null,
      clientIn,
      backendIn: null,
      retained: new RetainedQueue((chunk) => this.ledger.unref(chunk)),
      sentUpTo: 0,
      committedUpTo: 0,
      answeredUpTo: 0,
      outputUpTo: 0,
      clientWritten: 0,
      backendWritten: 0,
      toClient: new SocketOutput(this.ledger),
      toBackend: new SocketOutput(this.ledger),
      touched: false,
      held: [],
      handshakeDone: false,
      peerClosed: false,
      engineClosed: false,
      clientEnded: false,
      backendEndSeq: 0,
      pausedForRetained: false,
      unreadKeyUpdates: 0,
      overShare: false,
      clientFull: false,
      backendFull: false,
      strikes: 0,
      suspect: 0,
      quarantineAfter: null,
      handshakeSince: this.clock.now(),
      lastActive: 0,
      backendConnectingSince: 0,
      idleClosingSince: 0,
      takeover: null,
      endAfterNotify: false,
      lookup: null,
      done: false,
    };
    c.lastActive = c.handshakeSince!;
    conn = c;
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    this.setOwner(c, owner);
    this.conns.set(num, c);
    this.stats.connectionsOpened++;
    this.stats.connectionsActive++;
    owner.link!.open(num, c.epoch, c.slot, c.token);
    // A Socket the server made reads 'data' events: the bytes are copied in.
    if (client === accepted) client.on('data', (chunk: Buffer) => clientIn.push(chunk));
    client.on('end', () => {
      // The client sends no more (after close_notify, or a truncation without it): end the
      // backend's input, and keep relaying its answer until it ends too (half-close).
      c.clientEnded = true;
      this.endBackend(c);
      this.maybeFinish(c);
    });
    client.on('error', () => this.finish(c));
    client.on('close', () => this.finish(c));
    client.on('drain', () => {
      c.clientFull = false;
      c.unreadKeyUpdates = 0;
      this.flow(c);
    });
  }

  /**
   * One input for the connection's owner; its bytes (if any) are held once for the
   * retained queue. A ClientHello offering stateful tickets first waits for them.
   */
  private input(c: Conn, kind: InputKind, chunk = -1, offset = 0, length = 0): void {
    if (c.done) {
      if (chunk >= 0) this.ledger.unref(chunk);
      return;
    }
    if (c.lookup !== null) {
      c.lookup.push({ kind, chunk, offset, length });
      return;
    }
    const sessions = this.sessions;
    if (sessions !== null && kind === 'client' && !c.handshakeDone) {
      const start = this.ledger.arena.offset(chunk) + offset;
      const ids = offeredSessionIds(this.ledger.arena.bytes.subarray(start, start + length));
      if (ids.length > 0) {
        c.lookup = [{ kind, chunk, offset, length }];
        this.stats.sessionLookups++;
        this.flow(c);
        void takeWithin(sessions, ids, this.opts.lookupDeadlineMs ?? DEFAULT_LOOKUP_DEADLINE_MS).then((found) => this.lookedUp(c, found));
        return;
      }
    }
    this.retain(c, kind, chunk, offset, length);
  }

  /**
   * The session lookup of `c` ended: what it found goes to the owner as session
   * inputs, then the inputs that waited, in order. Nothing found (unknown, used,
   * unreachable, too late): the ClientHello goes alone, to a full handshake.
   */
  private lookedUp(c: Conn, found: readonly StoredSession[]): void {
    const waiting = c.lookup ?? [];
    c.lookup = null;
    if (!c.done) {
      if (found.length > 0) this.stats.sessionsFound++;
      for (const { id, entry } of found) {
        const room = this.small.alloc(id.length + entry.length);
        // No arena room: the session is dropped, as if not found.
        if (room === null) continue;
        const at = this.ledger.arena.offset(room[0]) + room[1];
        this.ledger.arena.bytes.set(id, at);
        this.ledger.arena.bytes.set(entry, at + id.length);
        this.retain(c, 'session', room[0], room[1], id.length + entry.length);
      }
    }
    // Not input(): the ClientHello would start its lookup again.
    for (const w of waiting) {
      if (c.done) {
        if (w.chunk >= 0) this.ledger.unref(w.chunk);
      } else this.retain(c, w.kind, w.chunk, w.offset, w.length);
    }
    this.flow(c);
    this.maybeFinish(c);
  }

  /** {@link input}, once nothing holds it back. */
  private retain(c: Conn, kind: InputKind, chunk: number, offset: number, length: number): void {
    if (kind === 'client') this.stats.bytesFromClients += length;
    else if (kind === 'backend') this.stats.bytesFromBackends += length;
    c.lastActive = this.clock.now();
    c.retained.push(kind, chunk, offset, length);
    this.stats.retainedBytes += length;
    if (this.stats.retainedBytes > this.stats.retainedBudgetBytes && !this.stats.retainedBudgetPaused) this.budgetReached(true);
    else if (this.stats.retainedBudgetPaused && !c.overShare && c.retained.bytes >= this.budgetShare()) this.flow(c);
    if (c.clientIn.starved || c.backendIn?.starved) {
      this.starved.add(c);
      this.flow(c);
    }
    if (c.retained.bytes > this.opts.retainedLimitBytes && !c.pausedForRetained) {
      c.pausedForRetained = true;
      this.flow(c);
    }
    this.pump(c);
  }

  /**
   * Hands the owner the retained inputs it has not had yet, at most `maxInFlight`
   * ahead of its output, so a takeover's Promote is not queued behind seconds of
   * other connections' traffic.
   */
  private pump(c: Conn): void {
    const owner = c.owner;
    if (c.done || owner === null || !owner.up) return;
    const last = Math.min(c.retained.next - 1, c.quarantineAfter ?? Infinity);
    while (c.sentUpTo < last && c.sentUpTo - c.answeredUpTo < this.opts.maxInFlight) {
      const item = c.retained.at(c.sentUpTo + 1);
      if (!item) break;
      owner.link!.input(c.num, c.epoch, item.seq, item.kind, item.chunk, item.offset, item.length);
      c.sentUpTo = item.seq;
    }
  }

  /**
   * Ends the backend's input once (a close_notify and the client's FIN both ask): a
   * second `end()` builds an ERR_STREAM_ALREADY_FINISHED, stack trace and all.
   */
  private endBackend(c: Conn): void {
    if (c.backendConnected && !c.backend!.writableEnded) c.backend!.end();
  }

  /** Connects the connection to a backend its route's pool picks; none up: as a refused connect. */
  private connectBackend(c: Conn, facts: HandshakeFacts): void {
    // One header per connection, made now that the handshake's facts are known; each
    // backend socket tried (a retry after a refused connect is a new socket) starts with it.
    c.proxyHeader = this.opts.proxyProtocol === 'v2' ? proxyHeader(c.client, facts) : null;
    const server = this.pool.pick(c.routeKey);
    if (server === null) {
      // After this turn, as a connect's 'error' would come.
      setImmediate(() => {
        if (!c.engineClosed) this.input(c, 'backendFailed');
      });
      return;
    }
    this.connectTo(c, server);
  }

  private connectTo(c: Conn, server: Backend): void {
    (c.backendTried ??= new Set()).add(server);
    this.pool.acquire(server);
    c.backendServer = server;
    const backendIn = new SocketInput(this.ledger, this.small, this.scratch, false, (chunk, offset, length) => this.input(c, 'backend', chunk, offset, length));
    c.backendIn = backendIn;
    const backend = net.connect({
      host: server.address.host,
      port: server.address.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: backendIn.onread,
    } as net.NetConnectOpts);
    c.backend = backend;
    c.backendConnectingSince = this.clock.now();
    // Queued on the socket before it connects, so it precedes the first plaintext, which
    // waits in toBackend until 'connect'. Written here, once per backend socket: a takeover
    // re-routes the connection but keeps this socket and its offsets (backendWritten counts
    // relay plaintext only), so replayed output never brings the header a second time.
    if (c.proxyHeader) backend.write(c.proxyHeader);
    backend.on('connect', () => {
      c.backendConnected = true;
      c.backendConnectingSince = 0;
      if (c.toBackend.pending) this.touch(c);
      this.flushWrites();
      if (c.peerClosed || c.clientEnded) this.endBackend(c);
    });
    backend.on('end', () => {
      this.input(c, 'backendEnd');
      c.backendEndSeq = c.retained.next - 1;
    });
    backend.on('error', () => {
      if (!c.backendConnected && this.retryBackend(c)) return;
      // Refused or reset: the client gets a fatal alert from its relay, never a hang.
      if (!c.engineClosed) this.input(c, 'backendFailed');
    });
    backend.on('drain', () => {
      c.backendFull = false;
      this.flow(c);
    });
  }

  /**
   * A connect that failed before any plaintext went to the backend is tried on another
   * up backend, at most {@link MAX_BACKEND_TRIES} in all; false when none is left.
   */
  private retryBackend(c: Conn): boolean {
    if (c.done) return false;
    if (c.backendServer) this.pool.connectFailed(c.backendServer);
    this.releaseBackend(c);
    if (c.done || c.engineClosed || c.backendTried!.size >= MAX_BACKEND_TRIES) return false;
    const next = this.pool.pick(c.routeKey, c.backendTried!);
    if (next === null) return false;
    c.backend!.removeAllListeners();
    c.backend!.on('error', () => undefined);
    c.backend!.destroy();
    c.backendIn!.close();
    this.connectTo(c, next);
    return true;
  }

  /** The connection no longer counts at its backend (least-connections). Idempotent. */
  private releaseBackend(c: Conn): void {
    if (c.backendServer) this.pool.release(c.backendServer);
    c.backendServer = null;
  }

  // ---- entries from relays ----

  /** One entry from `relay`'s data channel (or a held copy of one), in order. */
  private onEntry(relay: RelaySlot, view: DataView, bytes: Uint8Array, at: number, length: number): void {
    const c = this.conns.get(view.getUint32(at + H_CONN, true));
    const type = view.getUint8(at + H_TYPE);
    const epoch = view.getUint32(at + H_EPOCH, true);
    if (type === FromRelay.ChunkDone) {
      this.ledger.close(view.getUint32(at + H_AUX32, true));
      return;
    }
    if (type === FromRelay.Forgotten) {
      const closing = this.closing.get(view.getUint32(at + H_CONN, true));
      if (closing && closing.epoch === epoch && closing.owner === relay) {
        this.closing.delete(view.getUint32(at + H_CONN, true));
        this.slots?.release(closing.slot);
      }
      if (c && !c.done && c.epoch === epoch && c.owner === relay) this.lose(c, 'its owner could not restore its state');
      return;
    }
    // Fencing: an entry of an older epoch comes from a relay that no longer owns the connection.
    if (!c || c.done || epoch !== c.epoch || c.owner !== relay) return;
    const seq = view.getUint32(at + H_SEQ, true);
    switch (type) {
      case FromRelay.ToClient:
      case FromRelay.ToBackend:
      case FromRelay.Done:
        if (type === FromRelay.Done && seq > c.answeredUpTo) {
          c.answeredUpTo = seq;
          this.pump(c);
        }
        if (c.held.length > 0 || (view.getUint8(at + H_FLAGS) & Held && seq > c.committedUpTo)) {
          const chunk = type === FromRelay.Done ? -1 : view.getUint32(at + H_AUX32, true);
          if (chunk >= 0) this.ledger.ref(chunk);
          c.held.push({ seq, held: (view.getUint8(at + H_FLAGS) & Held) !== 0, entry: bytes.slice(at, at + length), chunk });
          return;
        }
        this.apply(c, type, view, bytes, at, length, seq);
        return;
      case FromRelay.SessionIssued:
        // A replay after a takeover issues the same id and entry again: storing it twice is harmless.
        if (length > HEADER_BYTES + SESSION_ID_LEN) {
          const payload = bytes.slice(at + HEADER_BYTES, at + length);
          this.sessions?.store({ id: payload.subarray(0, SESSION_ID_LEN), entry: payload.subarray(SESSION_ID_LEN) });
        }
        return;
      case FromRelay.Committed:
        if (seq > c.committedUpTo) c.committedUpTo = seq;
        this.release(c, c.committedUpTo);
        this.releaseHeld(c);
        return;
      case FromRelay.Promoted:
        if (c.takeover) {
          const sample = { kind: c.takeover.kind, ms: Date.now() - c.takeover.since };
          this.stats.takeoverSamples.push(sample);
          if (this.stats.takeoverSamples.length > MAX_SAMPLES) this.stats.takeoverSamples.shift();
          this.emit('takeover', { ...sample, conn: c.id });
          c.takeover = null;
          this.settleRestores();
        }
        return;
    }
  }

  /** Acts on an output entry that may leave now. */
  private apply(c: Conn, type: number, view: DataView, bytes: Uint8Array, at: number, length: number, seq: number): void {
    if (type === FromRelay.Done) {
      // A replayed input's events were acted on already when its first owner answered it.
      const fresh = seq > c.outputUpTo;
      if (fresh) c.outputUpTo = seq;
      // Without a store nothing could replay the input: it is done with once answered.
      if (this.slots === null) this.release(c, c.outputUpTo);
      const bits = view.getUint16(at + H_AUX16, true);
      if (bits !== 0) this.events(c, doneEvents(bits, length > HEADER_BYTES ? decodeFacts(bytes.subarray(at + HEADER_BYTES, at + length)) : null), fresh);
      if (c.done) return;
      this.pump(c);
      this.maybeFinish(c);
      this.maybeEndAfterNotify(c);
      return;
    }
    const toClient = type === FromRelay.ToClient;
    const offset = view.getFloat64(at + H_OFFSET, true);
    const n = view.getUint32(at + H_LENGTH, true);
    const written = toClient ? c.clientWritten : c.backendWritten;
    // Replayed output the dead owner already produced is skipped by its stream offset.
    if (offset + n <= written) return;
    if (offset > written) {
      // Bytes before this piece were never written: the stream would have a hole. Never
      // patched over: the connection is reset, so neither peer takes what follows for
      // the rest of its stream (a client would decrypt under the wrong sequence number).
      this.stats.outputGaps += offset - written;
      this.stats.gapResets++;
      this.lose(c, `its output would have a gap (${offset - written} bytes toward the ${toClient ? 'client' : 'backend'}): reset`, true);
      return;
    }
    const chunk = view.getUint32(at + H_AUX32, true);
    const start = this.ledger.arena.offset(chunk) + view.getUint32(at + H_AUX32B, true);
    if (toClient) {
      c.clientWritten = offset + n;
      c.toClient.add(chunk, start + (written - offset), start + n);
    } else {
      c.backendWritten = offset + n;
      c.toBackend.add(chunk, start + (written - offset), start + n);
    }
    this.touch(c);
  }

  /** Marks a connection for the write pass at the end of this read of relay entries. */
  private touch(c: Conn): void {
    if (!c.touched) {
      c.touched = true;
      this.touched.push(c);
    }
  }

  private events(c: Conn, events: readonly ConnectionEvent[], fresh: boolean): void {
    for (const e of events) {
      switch (e.type) {
        case 'limitExceeded':
          if (!fresh) break;
          if (e.limit === 'handshakeChangeCipherSpecs') this.stats.handshakeChangeCipherSpecCloses++;
          else this.stats.handshakeWarningAlertCloses++;
          this.emit('limitExceeded', { conn: c.id, limit: e.limit });
          break;
        case 'keyUpdateAnswered':
          // Counted only while the socket holds output the client has not taken: a client
          // that asks for KeyUpdates and reads their answers is not held to the cap.
          if (!fresh || (c.client.writableLength === 0 && !c.clientFull)) break;
          if (++c.unreadKeyUpdates > this.maxUnreadKeyUpdates) {
            // No alert: it would be sealed behind the output this client does not read.
            this.stats.unreadKeyUpdateCloses++;
            this.emit('limitExceeded', { conn: c.id, limit: 'unreadKeyUpdates' });
            this.finish(c);
            return;
          }
          break;
        case 'handshakeDone':
          if (!c.handshakeDone) {
            c.handshakeDone = true;
            this.stats.handshakes++;
            this.emit('handshake', { conn: c.id, relay: c.owner?.name ?? '', resumed: e.resumed, cipherSuite: e.cipherSuite });
            c.routeKey = { serverName: e.serverName, alpn: e.alpn };
            this.connectBackend(c, e);
          }
          break;
        case 'peerClosed':
          if (!c.peerClosed) {
            c.peerClosed = true;
            this.endBackend(c);
          }
          break;
        case 'closed':
          // Ended after this turn's output is written (see flushWrites).
          c.engineClosed = true;
          this.touch(c);
          break;
      }
    }
  }

  /** Writes every connection's output of this turn: one write per socket. */
  private flushWrites(): void {
    const touched = this.touched;
    for (let i = 0; i < touched.length; i++) {
      const c = touched[i]!;
      c.touched = false;
      if (c.toClient.pending) {
        this.stats.bytesToClients += c.toClient.bytes;
        if (!c.toClient.flush(c.client)) {
          c.clientFull = true;
          this.flow(c);
        }
      }
      // Output for the backend waits in its queue until the backend is connected; after our
      // FIN to it (a drain's close) it has nowhere to go.
      if (c.endAfterNotify && c.toBackend.pending && c.backendConnected && c.backend!.writableEnded) c.toBackend.drop();
      if (c.toBackend.pending && c.backendConnected) {
        this.stats.bytesToBackends += c.toBackend.bytes;
        if (!c.toBackend.flush(c.backend!)) {
          c.backendFull = true;
          this.flow(c);
        }
      }
      if (c.engineClosed && !c.done) {
        c.client.end();
        this.finish(c);
      }
    }
    touched.length = 0;
    if (this.starved.size) this.feedStarved();
  }

  /** Connections that stopped reading for lack of arena chunks try again. */
  private feedStarved(): void {
    for (const c of this.starved) {
      if (c.done || (c.clientIn.resume() && (c.backendIn?.resume() ?? true))) {
        this.starved.delete(c);
        this.flow(c);
      }
    }
  }

  /** Frees retained input up to `upTo` and resumes reading once below half the limit (and half the budget). */
  private release(c: Conn, upTo: number): void {
    const before = c.retained.bytes;
    c.retained.release(upTo);
    this.stats.retainedBytes -= before - c.retained.bytes;
    if (c.pausedForRetained && c.retained.bytes < this.opts.retainedLimitBytes / 2) {
      c.pausedForRetained = false;
      this.flow(c);
    }
    if (this.stats.retainedBudgetPaused && this.stats.retainedBytes < this.stats.retainedBudgetBytes / 2) this.budgetReached(false);
    else if (c.overShare && c.retained.bytes < this.budgetShare()) this.flow(c);
  }

  /**
   * Over the budget, what one connection may retain and still be read: an equal share
   * of half the budget. Those holding more wait for their commits; the others read on,
   * so one connection with much in flight cannot stall every other one, and the total
   * stays within the budget (a share each at most, and what the rest already held).
   */
  private budgetShare(): number {
    return this.stats.retainedBudgetBytes / 2 / Math.max(1, this.stats.connectionsActive);
  }

  /**
   * The retained-input budget reached (`paused`) or left: the sockets, client and
   * backend, of every connection holding more than its share (see budgetShare) stop or
   * resume being read (the kernel holds what they send meanwhile). Nothing waits for a
   * read to free retained input: relays work through what is retained, their output is
   * written, and the commits that follow release it.
   */
  private budgetReached(paused: boolean): void {
    this.stats.retainedBudgetPaused = paused;
    if (paused) this.stats.retainedBudgetPauses++;
    for (const c of this.conns.values()) this.flow(c);
    this.emit('retainedBudget', { paused, retainedBytes: this.stats.retainedBytes });
  }

  /**
   * Reads from a side only while its input can go somewhere: the other side takes
   * writes, and the retained input is under its limit. Memory stays flat with a
   * slow client or a slow backend.
   */
  private flow(c: Conn): void {
    if (c.done) return;
    c.overShare = this.stats.retainedBudgetPaused && c.retained.bytes >= this.budgetShare();
    // While its session lookup is out the client is not read: what it sends waits in the socket, not here.
    if (c.pausedForRetained || c.overShare || c.backendFull || c.clientIn.starved || c.lookup !== null) c.client.pause();
    else c.client.resume();
    if (c.backend) {
      if (c.pausedForRetained || c.overShare || c.clientFull || c.backendIn!.starved) c.backend.pause();
      else c.backend.resume();
    }
  }

  /** Lets held output go, in order, up to the first entry a commit does not cover yet. */
  private releaseHeld(c: Conn): void {
    while (c.held.length && !(c.held[0]!.held && c.held[0]!.seq > c.committedUpTo) && !c.done) {
      const e = c.held.shift()!;
      const view = new DataView(e.entry.buffer, e.entry.byteOffset, e.entry.byteLength);
      this.apply(c, view.getUint8(H_TYPE), view, e.entry, 0, e.entry.length, e.seq);
      if (e.chunk >= 0) this.ledger.unref(e.chunk);
    }
  }

  /** Held output that will never leave (a takeover or the end of the connection): its chunks let go. */
  private dropHeld(c: Conn): void {
    for (const e of c.held) if (e.chunk >= 0) this.ledger.unref(e.chunk);
    c.held = [];
  }

  /**
   * After the client's TCP end, once every input is answered: a handshake that never
   * completed is over; otherwise wait for the backend's end, whose close_notify then
   * ends the client socket too (the engine itself closes only with both alerts seen).
   */
  private maybeFinish(c: Conn): void {
    if (c.done || !c.clientEnded || c.lookup !== null || c.outputUpTo < c.retained.next - 1) return;
    if (!c.handshakeDone) {
      this.finish(c);
      return;
    }
    if (c.backendEndSeq === 0) return;
    c.engineClosed = true;
    this.flushOne(c);
  }

  /**
   * A connection asked to close (closeAllWithNotify) whose close_notify has been answered
   * by its owner: everything before it, and it, is queued for the client, so the socket
   * is written and ended (TCP FIN after the last byte).
   */
  private maybeEndAfterNotify(c: Conn): void {
    if (c.done || !c.endAfterNotify || c.backendEndSeq === 0 || c.outputUpTo < c.backendEndSeq) return;
    c.engineClosed = true;
    this.flushOne(c);
  }

  /** Writes a connection's pending output now (it is about to end). */
  private flushOne(c: Conn): void {
    this.touch(c);
    this.flushWrites();
  }

  /**
   * Ends a connection: sockets closed (with `reset`, by a TCP RST each, nothing pending
   * written), its owner told to forget it. Idempotent.
   */
  private finish(c: Conn, reset = false): void {
    if (c.done) return;
    c.done = true;
    this.stats.connectionsActive--;
    this.emit('connectionClosed', { conn: c.id });
    if (this.waiting.length > 0 && !this.admitScheduled) {
      this.admitScheduled = true;
      setImmediate(() => this.admit());
    }
    if (reset) {
      resetSocket(c.client);
      if (c.backend) resetSocket(c.backend);
    } else if (!c.engineClosed) c.client.destroy();
    // A peer that never closes its side does not hold the socket forever.
    else setTimeout(() => c.client.destroy(), LINGER_MS).unref();
    c.backend?.destroy();
    this.releaseBackend(c);
    c.clientIn.close();
    c.backendIn?.close();
    this.release(c, Infinity);
    c.toClient.drop();
    c.toBackend.drop();
    this.dropHeld(c);
    this.starved.delete(c);
    this.conns.delete(c.num);
    if (c.takeover !== null) this.settleRestores();
    const owner = c.owner;
    this.setOwner(c, null);
    if (owner?.up) {
      owner.link!.forget(c.num, c.epoch);
      if (c.slot >= 0) this.closing.set(c.num, { epoch: c.epoch, slot: c.slot, owner });
    } else if (c.slot >= 0) {
      if (owner) owner.cooling.push(c.slot);
      else this.slots?.release(c.slot);
    }
  }

  /** Ends a connection that cannot be carried on (with `reset`, by a TCP RST), and says why. */
  private lose(c: Conn, reason: string, reset = false): void {
    if (c.done) return;
    this.stats.connectionsLost++;
    this.emit('connectionLost', { conn: c.id, reason });
    this.finish(c, reset);
  }

  // ---- takeover ----

  /**
   * A relay died. Everything it made visible before dying is taken first (output,
   * commits), so the takeover starts from exactly what the gateway has; then each of
   * its connections moves, with its committed state, to another relay (or waits in the
   * store for the first one back).
   */
  relayCrashed(name: string, crash: Crash): void {
    const dead = this.relays.get(name);
    if (!dead || !dead.up) return;
    dead.up = false;
    dead.deadArenaOwner = dead.arenaOwner;
    dead.arenaOwner = 0;
    const link = dead.link;
    dead.link = null;
    if (link) {
      link.drain();
      link.close();
    }
    for (const [num, closing] of this.closing) {
      if (closing.owner !== dead) continue;
      this.closing.delete(num);
      dead.cooling.push(closing.slot);
    }
    const moved: Conn[] = [];
    for (const c of [...this.conns.values()]) if (c.owner === dead && !c.done && this.takeOver(c, dead, crash)) moved.push(c);
    // Every restore is asked for before any replay: a takeover is done once restored, and
    // replays queued between two Promotes would hold the later restores back.
    for (const c of moved) this.pump(c);
    this.flushWrites();
    this.settleRestores();
  }

  /**
   * Resolves once no connection handed to a live relay is still waiting for it to restore
   * (connections that wait for a relay to come back do not count), or after `maxMs`.
   */
  restored(maxMs: number): Promise<void> {
    if (!this.restoring()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, maxMs);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.restoreWaiters.push(done);
    });
  }

  private restoring(): boolean {
    for (const c of this.conns.values()) if (!c.done && c.takeover !== null && c.owner?.up === true) return true;
    return false;
  }

  private settleRestores(): void {
    if (this.restoreWaiters.length === 0 || this.restoring()) return;
    for (const w of this.restoreWaiters.splice(0)) w();
  }

  /** True when `c` went to a live relay, its retained input not yet replayed (the caller pumps). */
  private takeOver(c: Conn, dead: RelaySlot, crash: Crash): boolean {
    const store = this.opts.store;
    if (store === null || this.slots === null) {
      this.lose(c, 'replication is off');
      return false;
    }
    // The store never runs ahead of the output the gateway has (the relay makes output
    // visible before it commits), unless the dead thread ran on a moment past the last
    // look at its output (a kill stops its JavaScript first, but not in the same
    // instant): the newest commit that output covers is taken.
    const committed = store.committedUpTo(c.slot, c.token, c.answeredUpTo);
    if (committed < c.committedUpTo) {
      this.lose(c, `no committed state covers its output (commit ${committed}, output up to input ${c.answeredUpTo}, announced ${c.committedUpTo})`);
      return false;
    }
    const next = this.slots.allocate();
    if (next === null) {
      this.lose(c, 'no free state slot');
      return false;
    }
    // Held output up to the commit may leave; past it, the next owner makes it again.
    c.committedUpTo = committed;
    this.release(c, committed);
    this.releaseHeld(c);
    this.dropHeld(c);
    // What stays answered: what was acted on; the rest the next owner answers again.
    c.answeredUpTo = Math.max(committed, c.outputUpTo);
    // Quarantine on evidence: only the input its owner was running when it died is a
    // suspect, and only if an input could have caused the death; the same input
    // crashing the next owner too is poison.
    const suspect = inputCouldCause(crash) ? store.inHand(c.slot) : 0;
    if (suspect !== 0) {
      c.strikes = suspect === c.suspect ? c.strikes + 1 : 1;
      c.suspect = suspect;
    }
    // Poison is quarantined after replaying what was answered before it, so the alert is
    // sealed where the client's record stream stands.
    if (c.strikes >= this.opts.poisonCrashes && c.quarantineAfter === null) {
      c.quarantineAfter = Math.max(c.answeredUpTo, c.suspect - 1);
      this.stats.quarantined++;
      this.emit('quarantined', { conn: c.id, input: c.suspect, crash: crash.reason.kind });
    }
    if (store.copy(c.slot, c.token, next.slot, next.token, committed) === null) store.clear(next.slot);
    dead.cooling.push(c.slot);
    c.slot = next.slot;
    c.token = next.token;
    c.epoch++;
    c.sentUpTo = committed;
    c.takeover = { since: crash.detectedAt, kind: crash.reason.kind };
    this.stats.takeovers++;
    this.setOwner(c, null);
    // Until the next owner has it, a handshake waits on Baton: its deadline's clock stops.
    c.handshakeSince = null;
    const relay = this.leastLoaded();
    if (relay === null) return false;
    this.promote(c, relay);
    return true;
  }

  /** Hands a connection whose state is in its slot to `relay`; the caller then replays what is retained ({@link pump}). */
  private promote(c: Conn, relay: RelaySlot): void {
    this.setOwner(c, relay);
    // The new owner gets the whole handshake deadline: the client lost nothing of it.
    if (!c.handshakeDone) c.handshakeSince = this.clock.now();
    relay.link!.promote(c.num, c.epoch, c.slot, c.token, c.quarantineAfter);
  }

  // ---- deadlines ----

  /**
   * One pass over every connection's deadlines (deadlines.ts), and over the connections
   * waiting for room: one that waited past the handshake deadline is closed. Run every
   * sweep period; public for tests that move an injected clock.
   */
  sweep(): void {
    const now = this.clock.now();
    const d = this.deadlines;
    // While no relay is up, those waiting for one wait on Baton, not on their client.
    if (d.handshakeTimeoutMs > 0 && this.anyRelayUp()) {
      while (this.waiting.length > 0 && now - this.waiting[0]!.at >= d.handshakeTimeoutMs) {
        this.stats.handshakeTimeouts++;
        this.refuse(this.waiting.shift()!.accepted);
      }
      this.stats.connectionsWaiting = this.waiting.length;
    }
    let closed = false;
    for (const c of this.conns.values()) {
      if (c.done) continue;
      const late = overdue(c, now, d);
      if (late === null) continue;
      closed = true;
      switch (late) {
        case 'handshake':
          this.stats.handshakeTimeouts++;
          this.emit('timedOut', { conn: c.id, deadline: late });
          this.finish(c);
          break;
        case 'backendConnect':
          // As a refused connect: the relay answers with a fatal alert and closes.
          c.backendConnectingSince = 0;
          // Another up backend gets the connection, if there is one to try.
          if (this.retryBackend(c)) break;
          this.stats.backendConnectTimeouts++;
          this.emit('timedOut', { conn: c.id, deadline: late });
          c.backend!.removeAllListeners('connect');
          c.backend!.destroy();
          if (!c.engineClosed) this.input(c, 'backendFailed');
          break;
        case 'idle':
          this.stats.idleTimeouts++;
          this.emit('timedOut', { conn: c.id, deadline: late });
          this.closeIdle(c, now);
          break;
        case 'idleGrace':
          this.finish(c);
          break;
      }
    }
    if (closed) this.flushWrites();
  }

  /**
   * Closes an idle connection with close_notify: the backend is let go and its end of
   * stream given to the relay, which answers with close_notify; the connection ends
   * once the client answers hers, or after the grace.
   */
  private closeIdle(c: Conn, now: number): void {
    c.idleClosingSince = now;
    if (c.backendEndSeq !== 0 || c.engineClosed) {
      // Its close_notify is sent already, or there is no relay to seal one: cut it.
      this.finish(c);
      return;
    }
    this.letBackendGo(c);
  }

  /**
   * Closes the backend socket and hands the owner its end of stream, as the input after
   * every backend byte already read: the owner seals those, then its close_notify.
   */
  private letBackendGo(c: Conn): void {
    if (c.backend) {
      c.backend.removeAllListeners('end');
      c.backend.removeAllListeners('error');
      c.backend.on('error', () => {});
      c.backend.destroy();
    }
    this.input(c, 'backendEnd');
    c.backendEndSeq = c.retained.next - 1;
  }

  /** Client connections still open (being served, or waiting for room). */
  get openConnections(): number {
    return this.conns.size + this.waiting.length;
  }

  /**
   * Graceful drain, step one: closes the listening socket, so new connections are
   * refused by the kernel, and turns away those accepted but still waiting for room
   * (they were never served). Live connections carry on. Idempotent.
   */
  stopAccepting(): void {
    if (!this.accepting) return;
    this.accepting = false;
    for (const w of this.waiting.splice(0)) this.refuse(w.accepted);
    this.stats.connectionsWaiting = 0;
    // Its callback waits for every connection to end: close() awaits that, not us.
    this.server?.close();
  }

  /**
   * Graceful drain, last step: ends every connection with a TLS close_notify sealed by
   * its owner relay through the usual record path, then a TCP FIN. The backend gets a
   * FIN; its end of stream (or, after {@link BACKEND_END_GRACE_MS}, ours) is queued behind
   * every backend byte already read, so the client gets all of them before the
   * close_notify. A connection still in its handshake has nothing to notify and is
   * closed. Resolves once each close_notify and FIN have been handed to the kernel (or
   * the connection ended otherwise); the caller bounds the wait.
   */
  closeAllWithNotify(): Promise<void> {
    const flushed: Promise<void>[] = [];
    for (const c of [...this.conns.values()]) {
      flushed.push(ended(c.client));
      if (!c.handshakeDone) {
        this.finish(c);
        continue;
      }
      c.endAfterNotify = true;
      if (c.backendEndSeq === 0 && !c.engineClosed) {
        if (!c.backendConnected) this.letBackendGo(c);
        else {
          // The backend gets our FIN and what it sends before its own end still reaches the
          // client ahead of the close_notify; one that does not end in time is let go.
          this.endBackend(c);
          setTimeout(() => {
            if (!c.done && c.backendEndSeq === 0) this.letBackendGo(c);
          }, BACKEND_END_GRACE_MS).unref();
        }
      }
      // Already answered (the backend had ended): end it now.
      this.maybeEndAfterNotify(c);
    }
    this.flushWrites();
    return Promise.all(flushed).then(() => undefined);
  }

  /** Stops listening and ends every connection. Idempotent. */
  async close(): Promise<void> {
    this.checker.close();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const w of this.waiting.splice(0)) this.refuse(w.accepted);
    this.stats.connectionsWaiting = 0;
    for (const c of [...this.conns.values()]) this.finish(c);
    for (const s of this.sockets) s.destroy();
    for (const r of this.relays.values()) r.link?.close();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
