/**
 * The gateway, on the main thread: owns the listening socket and every TCP
 * socket (client side and backend side), frames client bytes into whole TLS
 * records, numbers and retains every input it hands a connection's owner relay,
 * writes what relays return (skipping bytes already written), fences by epoch,
 * and runs takeover when a relay dies. It holds no key material: snapshots pass
 * between relays as opaque bytes through the actor runtime, never through here.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { ActorError, type ActorRef, type ActorSystem, type Crash } from '../actors/index.js';
import { newId } from '../util/ids.js';
import { RecordFramer } from './framing.js';
import type { GatewayMsg, RelayMsg } from './protocol.js';
import { RetainedQueue, type InputKind } from './retained.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface GatewayOptions {
  readonly listen: HostPort;
  readonly backend: HostPort;
  /** Retained input per connection above which reading pauses until replication frees it. */
  readonly retainedLimitBytes: number;
  /**
   * A connection whose input is in flight at this many owner crashes in a row, each
   * while the previous takeover was still replaying it, is poison: quarantined.
   */
  readonly poisonCrashes: number;
  /** Place a replica for every connection (false: no replication, no takeover). */
  readonly replication: boolean;
  /** Inputs handed to a connection's owner ahead of its output. */
  readonly maxInFlight: number;
  /** Connection ids; default random (nanoid). Reproducible runs number them. */
  readonly connectionId?: (n: number) => string;
}

/** How long an ended client socket may wait for the peer's end of stream. */
const LINGER_MS = 5_000;

export const DEFAULT_GATEWAY = { retainedLimitBytes: 4 << 20, poisonCrashes: 2, maxInFlight: 16 } as const;

/** The part of `piece` (which starts at stream offset `at`) past `written`, as a Buffer view. */
function skipTo(piece: Uint8Array, at: number, written: number): Buffer {
  const skip = written > at ? written - at : 0;
  return Buffer.from(piece.buffer, piece.byteOffset + skip, piece.byteLength - skip);
}

/** A relay as the gateway sees it. */
interface RelaySlot {
  readonly name: string;
  ref: ActorRef<RelayMsg>;
  up: boolean;
  /** Connections it owns and holds replicas of, for placement. */
  owned: number;
  replicas: number;
  /** Messages of this event-loop turn, sent as one batch when the turn ends. */
  outbox: RelayMsg[];
  /** Batches waiting for room in the relay's mailbox, in order: nothing is dropped or reordered. */
  backlog: RelayMsg[];
  draining: boolean;
}

type Output = Extract<GatewayMsg, { t: 'Output' }>;

interface Conn {
  readonly id: string;
  epoch: number;
  owner: RelaySlot;
  replica: RelaySlot | null;
  readonly client: net.Socket;
  backend: net.Socket | null;
  backendConnected: boolean;
  /** Plaintext for the backend that arrived before it connected. */
  backendPending: Buffer[];
  readonly framer: RecordFramer;
  readonly retained: RetainedQueue;
  /** The last input handed to the current owner. */
  sentUpTo: number;
  /** The newest state the current replica acknowledged covers inputs up to here (0: none yet). */
  replicatedUpTo: number;
  /** Retained input is freed up to here: what any replica ever acknowledged. */
  releasedUpTo: number;
  /** The last input whose output arrived. */
  outputUpTo: number;
  /** Bytes of relay output for the client / backend already taken (and written or queued). */
  clientWritten: number;
  backendWritten: number;
  /** Outputs waiting for a replica acknowledgement (handshake clustering), in order. */
  held: Output[];
  handshakeDone: boolean;
  peerClosed: boolean;
  engineClosed: boolean;
  /** TCP end of stream from the client, and the backend's end of stream as input number. */
  clientEnded: boolean;
  backendEndSeq: number;
  /** Backpressure: too much unacknowledged input, or a socket that stopped accepting writes. */
  pausedForRetained: boolean;
  clientFull: boolean;
  backendFull: boolean;
  /** Owner crashes in a row with this connection's input in flight (poison detection). */
  strikes: number;
  /** After a takeover: the last replayed input; the connection is recovering until its output arrives. */
  recoverUntil: number;
  /** Poison: no input past this one is handed to a relay again. */
  quarantineAfter: number | null;
  /** Detection time and crash kind of a takeover in progress, for latency. */
  takeover: { readonly since: number; readonly kind: string } | null;
  done: boolean;
}

/** What `connections()` tells of one connection. */
export interface ConnectionInfo {
  readonly id: string;
  readonly owner: string;
  readonly replica: string | null;
  readonly epoch: number;
  readonly handshakeDone: boolean;
  /** Inputs received so far, handed to the owner, answered by it, covered by the replica. */
  readonly inputs: number;
  readonly sentUpTo: number;
  readonly outputUpTo: number;
  readonly replicatedUpTo: number;
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
  handshakes: number;
  bytesFromClients: number;
  bytesToClients: number;
  bytesToBackends: number;
  bytesFromBackends: number;
  takeovers: number;
  connectionsLost: number;
  quarantined: number;
  /** Output that arrived past what was written: bytes a client would miss (must stay 0). */
  outputGaps: number;
  /** The most recent takeovers (at most {@link MAX_SAMPLES}); every one is also a 'takeover' event. */
  readonly takeoverSamples: TakeoverSample[];
}

const MAX_SAMPLES = 4096;

/** What the gateway announces as it happens, for metrics and logs (no secrets). */
export interface GatewayEvents {
  takeover: [sample: TakeoverSample & { readonly conn: string }];
  handshake: [info: { readonly conn: string; readonly relay: string; readonly resumed: boolean; readonly cipherSuite: string }];
  quarantined: [info: { readonly conn: string }];
  connectionLost: [info: { readonly conn: string }];
  connectionClosed: [info: { readonly conn: string }];
}

export class Gateway extends EventEmitter<GatewayEvents> {
  private server: net.Server | null = null;
  private readonly relays = new Map<string, RelaySlot>();
  private readonly conns = new Map<string, Conn>();
  /** Every client socket still open, lingering ones included, for close(). */
  private readonly sockets = new Set<net.Socket>();
  private nextOwner = 0;
  readonly stats: GatewayStats = {
    connectionsOpened: 0,
    connectionsActive: 0,
    handshakes: 0,
    bytesFromClients: 0,
    bytesToClients: 0,
    bytesToBackends: 0,
    bytesFromBackends: 0,
    takeovers: 0,
    connectionsLost: 0,
    quarantined: 0,
    outputGaps: 0,
    takeoverSamples: [],
  };

  constructor(
    private readonly system: ActorSystem,
    private readonly opts: GatewayOptions,
  ) {
    super();
  }

  /** Registers a relay (at start, and again with its new ref after a restart). */
  relayUp(name: string, ref: ActorRef<RelayMsg>): void {
    const slot = this.relays.get(name);
    if (slot) {
      slot.ref = ref;
      slot.up = true;
    } else {
      this.relays.set(name, { name, ref, up: true, owned: 0, replicas: 0, outbox: [], backlog: [], draining: false });
    }
    const up = this.relays.get(name)!;
    // Connections left without a replica get this relay.
    for (const c of this.conns.values()) {
      if (this.opts.replication && c.replica === null && c.owner !== up && !c.done) this.setReplica(c, up);
    }
  }

  async listen(): Promise<net.AddressInfo> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.listen.port, this.opts.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return server.address() as net.AddressInfo;
  }

  /** Connections per relay as owner and as replica. */
  placement(): Map<string, { owned: number; replicas: number; up: boolean }> {
    return new Map([...this.relays.values()].map((r) => [r.name, { owned: r.owned, replicas: r.replicas, up: r.up }]));
  }

  /** Every live connection's placement and progress (public facts only). */
  connections(): ConnectionInfo[] {
    return [...this.conns.values()].map((c) => ({
      id: c.id,
      owner: c.owner.name,
      replica: c.replica?.name ?? null,
      epoch: c.epoch,
      handshakeDone: c.handshakeDone,
      inputs: c.retained.next - 1,
      sentUpTo: c.sentUpTo,
      outputUpTo: c.outputUpTo,
      replicatedUpTo: c.replicatedUpTo,
      retainedBytes: c.retained.bytes,
      heldOutputs: c.held.length,
    }));
  }

  // ---- connections ----

  private upRelays(): RelaySlot[] {
    return [...this.relays.values()].filter((r) => r.up);
  }

  /**
   * The up relay with the least `load`, ties broken in turn: a restarted relay, which
   * owns nothing, gets new connections first, so load evens out again after takeovers.
   */
  private leastLoaded(load: (r: RelaySlot) => number, except: RelaySlot | null): RelaySlot | null {
    const up = this.upRelays().filter((r) => r !== except);
    let best: RelaySlot | null = null;
    const start = this.nextOwner++;
    for (let k = 0; k < up.length; k++) {
      const r = up[(start + k) % up.length]!;
      if (best === null || load(r) < load(best)) best = r;
    }
    return best;
  }

  private pickReplica(owner: RelaySlot): RelaySlot | null {
    return this.opts.replication ? this.leastLoaded((r) => r.replicas, owner) : null;
  }

  /** Moves a connection's ownership and replica, keeping the relays' counts. */
  private place(c: Conn, owner: RelaySlot, replica: RelaySlot | null): void {
    if (c.owner !== owner) {
      c.owner.owned--;
      owner.owned++;
      c.owner = owner;
    }
    if (c.replica !== replica) {
      if (c.replica) c.replica.replicas--;
      if (replica) replica.replicas++;
      c.replica = replica;
    }
  }

  private accept(client: net.Socket): void {
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    const up = this.upRelays();
    if (up.length === 0) {
      client.destroy();
      return;
    }
    const owner = this.leastLoaded((r) => r.owned, null)!;
    const replica = this.pickReplica(owner);
    owner.owned++;
    if (replica) replica.replicas++;
    const c: Conn = {
      id: this.opts.connectionId?.(this.stats.connectionsOpened) ?? newId('c_'),
      epoch: 1,
      owner,
      replica,
      client,
      backend: null,
      backendConnected: false,
      backendPending: [],
      framer: new RecordFramer(),
      retained: new RetainedQueue(),
      sentUpTo: 0,
      replicatedUpTo: 0,
      releasedUpTo: 0,
      outputUpTo: 0,
      clientWritten: 0,
      backendWritten: 0,
      held: [],
      handshakeDone: false,
      peerClosed: false,
      engineClosed: false,
      clientEnded: false,
      backendEndSeq: 0,
      pausedForRetained: false,
      clientFull: false,
      backendFull: false,
      strikes: 0,
      recoverUntil: 0,
      quarantineAfter: null,
      takeover: null,
      done: false,
    };
    this.conns.set(c.id, c);
    this.stats.connectionsOpened++;
    this.stats.connectionsActive++;
    this.tell(owner, { t: 'Open', conn: c.id, epoch: c.epoch, replica: c.replica?.ref ?? null });
    client.on('data', (chunk: Buffer) => {
      this.stats.bytesFromClients += chunk.length;
      const records = c.framer.push(chunk);
      if (records) this.input(c, 'client', records);
    });
    client.on('end', () => {
      // The client sends no more (after close_notify, or a truncation without it): end the
      // backend's input, and keep relaying its answer until it ends too (half-close).
      c.clientEnded = true;
      if (c.backendConnected) c.backend!.end();
      this.maybeFinish(c);
    });
    client.on('error', () => this.finish(c));
    client.on('close', () => this.finish(c));
    client.on('drain', () => {
      c.clientFull = false;
      this.flow(c);
    });
  }

  private input(c: Conn, kind: InputKind, bytes: Buffer | null): void {
    if (c.done) return;
    c.retained.push(kind, bytes);
    if (c.retained.bytes > this.opts.retainedLimitBytes && !c.pausedForRetained) {
      c.pausedForRetained = true;
      this.flow(c);
    }
    this.pump(c);
  }

  /**
   * Hands the owner the retained inputs it has not had yet, at most
   * `maxInFlight` ahead of its output: relay mailboxes stay short, so a takeover's
   * Promote is not queued behind seconds of other connections' traffic.
   */
  private pump(c: Conn): void {
    const last = Math.min(c.retained.next - 1, c.quarantineAfter ?? Infinity);
    while (!c.done && c.owner.up && c.sentUpTo < last && c.sentUpTo - c.outputUpTo < this.opts.maxInFlight) {
      const item = c.retained.at(c.sentUpTo + 1);
      if (!item) break;
      this.tell(c.owner, { t: 'Input', conn: c.id, epoch: c.epoch, seq: item.seq, kind: item.kind, bytes: item.bytes });
      c.sentUpTo = item.seq;
    }
  }

  /**
   * Sends to a relay in order; a full mailbox queues the message until it drains.
   * (Memory stays bounded: each connection's unacknowledged input is capped by
   * `retainedLimitBytes`, beyond which its sockets stop being read.)
   */
  private tell(slot: RelaySlot, msg: RelayMsg): void {
    if (!slot.up) return; // a takeover re-sends what matters
    slot.outbox.push(msg);
    if (slot.outbox.length === 1) setImmediate(() => this.flush(slot));
  }

  /** One cross-thread hop per relay per event-loop turn, whatever the number of connections. */
  private flush(slot: RelaySlot): void {
    const msgs = slot.outbox;
    slot.outbox = [];
    if (!slot.up || msgs.length === 0) return;
    const msg: RelayMsg = msgs.length === 1 ? msgs[0]! : { t: 'Batch', msgs };
    if (slot.backlog.length === 0 && this.trySend(slot, msg)) return;
    slot.backlog.push(msg);
    this.awaitDrain(slot);
  }

  private trySend(slot: RelaySlot, msg: RelayMsg): boolean {
    try {
      this.system.tell(slot.ref, msg);
      return true;
    } catch (e) {
      if (e instanceof ActorError && e.code === 'BATON_ERR_MAILBOX_FULL') return false;
      return true; // dead: the crash path takes over from here
    }
  }

  private awaitDrain(slot: RelaySlot): void {
    if (slot.draining) return;
    slot.draining = true;
    const ref = slot.ref;
    this.system.drained(ref).then(
      () => {
        slot.draining = false;
        if (!slot.up || slot.ref !== ref) return;
        while (slot.backlog.length && this.trySend(slot, slot.backlog[0]!)) slot.backlog.shift();
        if (slot.backlog.length) this.awaitDrain(slot);
      },
      () => {
        slot.draining = false;
      },
    );
  }

  private connectBackend(c: Conn): void {
    const backend = net.connect({ host: this.opts.backend.host, port: this.opts.backend.port, allowHalfOpen: true, noDelay: true });
    c.backend = backend;
    backend.on('connect', () => {
      c.backendConnected = true;
      for (const b of c.backendPending) this.writeBackend(c, b);
      c.backendPending = [];
      if (c.peerClosed || c.clientEnded) backend.end();
    });
    backend.on('data', (chunk: Buffer) => {
      this.stats.bytesFromBackends += chunk.length;
      this.input(c, 'backend', chunk);
    });
    backend.on('end', () => {
      this.input(c, 'backendEnd', null);
      c.backendEndSeq = c.retained.next - 1;
    });
    backend.on('error', () => {
      // Refused or reset: the client gets a fatal alert from its relay, never a hang.
      if (!c.engineClosed) this.input(c, 'backendFailed', null);
    });
    backend.on('drain', () => {
      c.backendFull = false;
      this.flow(c);
    });
  }

  private writeBackend(c: Conn, bytes: Buffer): void {
    if (!c.backendConnected) {
      c.backendPending.push(bytes);
      return;
    }
    this.stats.bytesToBackends += bytes.length;
    if (!c.backend!.write(bytes)) {
      c.backendFull = true;
      this.flow(c);
    }
  }

  // ---- messages from relays ----

  /** Everything relays tell the gateway arrives here. */
  receive(msg: GatewayMsg): void {
    if (msg.t === 'Batch') {
      for (const m of msg.msgs) this.receive(m);
      return;
    }
    const c = this.conns.get(msg.conn);
    // Fencing: a message of an older epoch comes from a relay that no longer owns the connection.
    if (!c || c.done || msg.epoch !== c.epoch) return;
    switch (msg.t) {
      case 'Promoted':
        if (c.takeover) {
          const sample = { kind: c.takeover.kind, ms: Date.now() - c.takeover.since };
          this.stats.takeoverSamples.push(sample);
          if (this.stats.takeoverSamples.length > MAX_SAMPLES) this.stats.takeoverSamples.shift();
          this.emit('takeover', { ...sample, conn: c.id });
          c.takeover = null;
        }
        // Held output of the dead owner stays valid up to the state the new owner restored;
        // past it the new owner recomputes it (a flight past it would even differ: new randoms).
        c.held = c.held.filter((o) => o.epoch === c.epoch || o.seq <= msg.upTo);
        this.releaseHeld(c);
        break;
      case 'Output':
        c.outputUpTo = Math.max(c.outputUpTo, msg.seq);
        // Without a replica nothing could replay the input: it is done with once answered.
        if (!c.replica) {
          c.releasedUpTo = Math.max(c.releasedUpTo, c.outputUpTo);
          this.release(c, c.releasedUpTo);
        }
        this.pump(c);
        if ((msg.gated && msg.seq > c.replicatedUpTo) || c.held.length) c.held.push(msg);
        else this.apply(c, msg);
        break;
      case 'Replicated':
        if (c.replica?.name !== msg.relay) return;
        if (msg.upTo > c.replicatedUpTo) c.replicatedUpTo = msg.upTo;
        if (c.replicatedUpTo > c.releasedUpTo) c.releasedUpTo = c.replicatedUpTo;
        this.release(c, c.releasedUpTo);
        this.releaseHeld(c);
        break;
    }
  }

  /** Frees retained input up to `upTo` and resumes reading once below half the limit. */
  private release(c: Conn, upTo: number): void {
    c.retained.release(upTo);
    if (c.pausedForRetained && c.retained.bytes < this.opts.retainedLimitBytes / 2) {
      c.pausedForRetained = false;
      this.flow(c);
    }
  }

  /**
   * Reads from a side only while its input can go somewhere: the other side takes
   * writes, and the retained input is under its limit. Memory stays flat with a
   * slow client or a slow backend.
   */
  private flow(c: Conn): void {
    if (c.pausedForRetained || c.backendFull) c.client.pause();
    else c.client.resume();
    if (c.backend) {
      if (c.pausedForRetained || c.clientFull) c.backend.pause();
      else c.backend.resume();
    }
  }

  private releaseHeld(c: Conn): void {
    while (c.held.length && !(c.held[0]!.gated && c.held[0]!.seq > c.replicatedUpTo)) this.apply(c, c.held.shift()!);
  }

  /** Writes an output, skipping what an earlier owner already produced. */
  private apply(c: Conn, out: Output): void {
    if (out.toClient) {
      const written = c.clientWritten;
      const end = this.take(out.toClient, out.clientOffset, written);
      if (end > written) {
        c.clientWritten = end;
        this.stats.bytesToClients += end - Math.max(written, out.clientOffset);
        if (!c.client.destroyed && !this.writePieces(c.client, out.toClient, out.clientOffset, written)) {
          c.clientFull = true;
          this.flow(c);
        }
      }
    }
    if (out.toBackend) {
      const written = c.backendWritten;
      const end = this.take(out.toBackend, out.backendOffset, written);
      if (end > written) {
        c.backendWritten = end;
        if (c.backendConnected) {
          this.stats.bytesToBackends += end - Math.max(written, out.backendOffset);
          if (!this.writePieces(c.backend!, out.toBackend, out.backendOffset, written)) {
            c.backendFull = true;
            this.flow(c);
          }
        } else {
          let at = out.backendOffset;
          for (const piece of out.toBackend) {
            const next = at + piece.length;
            if (next > written) this.writeBackend(c, skipTo(piece, at, written));
            at = next;
          }
        }
      }
    }
    for (const e of out.events) {
      switch (e.type) {
        case 'handshakeDone':
          if (!c.handshakeDone) {
            c.handshakeDone = true;
            this.stats.handshakes++;
            this.emit('handshake', { conn: c.id, relay: c.owner.name, resumed: e.resumed, cipherSuite: e.cipherSuite });
            this.connectBackend(c);
          }
          break;
        case 'peerClosed':
          if (!c.peerClosed) {
            c.peerClosed = true;
            if (c.backendConnected) c.backend!.end();
          }
          break;
        case 'closed':
          c.engineClosed = true;
          c.client.end();
          this.finish(c);
          break;
        case 'alert':
          break;
      }
    }
    this.maybeFinish(c);
  }

  /** The end offset of `pieces` starting at `offset`; counts a gap past `written` (must not happen). */
  private take(pieces: readonly Uint8Array[], offset: number, written: number): number {
    let end = offset;
    for (const p of pieces) end += p.length;
    if (offset > written) this.stats.outputGaps += offset - written;
    return end;
  }

  /** Writes the pieces past `written` in one writev; false when the socket wants a drain. */
  private writePieces(socket: net.Socket, pieces: readonly Uint8Array[], offset: number, written: number): boolean {
    const many = pieces.length > 1;
    if (many) socket.cork();
    let ok = true;
    let at = offset;
    for (const piece of pieces) {
      const next = at + piece.length;
      if (next > written) ok = socket.write(skipTo(piece, at, written));
      at = next;
    }
    if (many) socket.uncork();
    return ok;
  }

  /**
   * After the client's TCP end, once every input is answered: a handshake that never
   * completed is over; otherwise wait for the backend's end, whose close_notify then
   * ends the client socket too (the engine itself closes only with both alerts seen).
   */
  private maybeFinish(c: Conn): void {
    if (c.done || !c.clientEnded || c.outputUpTo < c.retained.next - 1) return;
    if (!c.handshakeDone) {
      this.finish(c);
      return;
    }
    if (c.backendEndSeq === 0) return;
    c.engineClosed = true;
    c.client.end();
    this.finish(c);
  }

  /** Ends a connection: sockets closed, relays told to forget it. Idempotent. */
  private finish(c: Conn): void {
    if (c.done) return;
    c.done = true;
    this.stats.connectionsActive--;
    c.owner.owned--;
    if (c.replica) c.replica.replicas--;
    this.emit('connectionClosed', { conn: c.id });
    if (!c.engineClosed) c.client.destroy();
    // A peer that never closes its side does not hold the socket forever.
    else setTimeout(() => c.client.destroy(), LINGER_MS).unref();
    c.backend?.destroy();
    this.conns.delete(c.id);
    this.tell(c.owner, { t: 'Forget', conn: c.id });
    if (c.replica) this.tell(c.replica, { t: 'Forget', conn: c.id });
  }

  // ---- takeover ----

  /** A relay died: promote replicas of what it owned, replace it as replica elsewhere. */
  relayCrashed(name: string, crash: Crash): void {
    const dead = this.relays.get(name);
    if (!dead) return;
    dead.up = false;
    dead.backlog = [];
    dead.outbox = [];
    const now = crash.detectedAt;
    for (const c of [...this.conns.values()]) {
      if (c.owner === dead) this.takeOver(c, crash, now);
      else if (c.replica === dead) this.setReplica(c, this.pickReplica(c.owner));
    }
  }

  /** A new replica holds nothing until it acknowledges the state the owner sends it now. */
  private setReplica(c: Conn, replica: RelaySlot | null): void {
    this.place(c, c.owner, replica);
    c.replicatedUpTo = 0;
    this.tell(c.owner, { t: 'SetReplica', conn: c.id, epoch: c.epoch, replica: replica?.ref ?? null });
  }

  private takeOver(c: Conn, crash: Crash, now: number): void {
    const next = c.replica;
    // The replica must hold a state from which the input still retained can be replayed.
    if (!next || !next.up || c.replicatedUpTo < c.releasedUpTo) {
      // Both copies of the state are gone: nothing can carry this connection on.
      this.stats.connectionsLost++;
      this.emit('connectionLost', { conn: c.id });
      this.finish(c);
      return;
    }
    // A connection with input in flight when its owner died is a suspect; if it was
    // still being replayed after the previous takeover, its input crashed two owners.
    if (c.outputUpTo < c.sentUpTo) c.strikes = c.outputUpTo < c.recoverUntil ? c.strikes + 1 : 1;
    // Poison is quarantined after replaying what was answered before it, so the alert is
    // sealed where the client's record stream stands.
    const quarantineAfter = c.strikes >= this.opts.poisonCrashes ? c.outputUpTo : null;
    c.quarantineAfter = quarantineAfter;
    c.epoch++;
    this.place(c, next, c.replica);
    this.place(c, next, this.pickReplica(next));
    c.recoverUntil = c.sentUpTo;
    c.sentUpTo = c.replicatedUpTo;
    c.replicatedUpTo = 0;
    c.takeover = { since: now, kind: crash.reason.kind };
    this.stats.takeovers++;
    if (quarantineAfter !== null) {
      this.stats.quarantined++;
      this.emit('quarantined', { conn: c.id });
    }
    this.tell(next, { t: 'Promote', conn: c.id, epoch: c.epoch, replica: c.replica?.ref ?? null, quarantineAfter });
    this.pump(c);
  }

  /** Stops listening and ends every connection. Idempotent. */
  async close(): Promise<void> {
    for (const c of [...this.conns.values()]) this.finish(c);
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
