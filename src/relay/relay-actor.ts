/**
 * The relay actor: runs on its own worker thread and owns the TLS engines of the
 * connections placed on it. It never touches a socket: numbered inputs arrive from
 * the gateway on the data channel, outputs go back on it stamped with stream offsets,
 * and after every batch each connection that moved commits its state into its slot of
 * the state store, shared memory that outlives this thread (DESIGN.md, "Replication
 * and takeover"). Configuration comes as actor messages.
 */
// The actor-side modules by name, not actors/index.js: that one also loads the
// main-thread runtime (the system, the piscina pool), which a relay worker never uses and
// would load again at every restart.
import { defineActor, type ActorContext } from '../actors/actor.js';
import { Arena, type ArenaBuffers } from '../actors/arena.js';
import type { ChannelEnd } from '../actors/data-channel.js';
import {
  loadCertifiedKey,
  RECORD_STATE_LENGTH,
  SESSION_ID_LEN,
  TlsServerEngine,
  type TlsDeps,
  type TlsServerConfig,
} from '../tls/index.js';
import { MAX_CIPHERTEXT, RECORD_HEADER_LEN } from '../tls/wire/constants.js';
import { systemClock } from '../util/clock.js';
import { seededRandom, systemRandom } from '../util/random.js';
import { OutputSink } from './output-sink.js';
import type { ConfigReply, RelayMsg } from './protocol.js';
import { relayTlsConfig, type RelaySettings } from './settings.js';
import { MAX_BASE_BYTES, StateStore, type SlotWriter, type StoreBuffers } from './state-store.js';
import { warmUpTakeover } from './warm-up.js';
import { FromRelay, H_AUX16, H_AUX32, H_AUX32B, H_CONN, H_EPOCH, H_LENGTH, H_OFFSET, H_SEQ, H_TYPE, HEADER_BYTES, Held, InputCode, ToRelay } from './wire.js';

export interface RelayArgs {
  /** This relay's name in the cluster (for logs). */
  readonly name: string;
  /** This incarnation's name in the arena's owner table (fresh at every start). */
  readonly arenaOwner: number;
  readonly settings: RelaySettings;
}

/** What a relay is started with besides its args: shared memory, which msgpackr cannot carry. */
export interface RelayShared {
  /** The state store, or null when replication is off (nothing is committed). */
  readonly store: StoreBuffers | null;
  /** Where input bytes lie and output bytes go. */
  readonly arena: ArenaBuffers;
}

interface Owned {
  readonly conn: number;
  readonly engine: TlsServerEngine;
  readonly epoch: number;
  /** The last input applied to the engine. */
  lastSeq: number;
  /** Quarantined: abort once inputs up to here are replayed. */
  readonly quarantineAfter: number | null;
  /** Where its state is committed (null: replication off). */
  readonly slot: SlotWriter | null;
  /** engine.revision when the slot's base was written (-1: no base yet). */
  baseRevision: number;
  /** Output of an input is held until a commit covers it (handshaking). */
  holdUpTo: number;
  /** In the dirty list of the current batch. */
  dirty: boolean;
  /** A server flight left in this batch (for the afterClientHelloReplicated fault point). */
  flight: boolean;
}

interface RelayState {
  readonly name: string;
  readonly settings: RelaySettings;
  /** The active configuration: new connections (and restored ones) use it. */
  config: TlsServerConfig;
  active: { readonly version: number; readonly digest: string };
  /** Validated versions waiting for activation. */
  readonly staged: Map<number, { readonly digest: string; readonly config: TlsServerConfig }>;
  /** The engine's injected randomness and clock for one connection. */
  readonly deps: (conn: number) => TlsDeps;
  readonly owned: Map<number, Owned>;
  readonly channel: ChannelEnd;
  readonly arena: Arena;
  readonly sink: OutputSink;
  readonly store: StateStore | null;
  /** Connections that took input in the current batch, to commit at its end. */
  readonly dirty: Owned[];
  /** Scratch for an engine's record state. */
  readonly record: Float64Array;
  /** An input entry left for lack of output room (processed first next time). */
  pending: number;
}

function engineDeps(settings: RelaySettings): (conn: number) => TlsDeps {
  const r = settings.reproducible;
  if (!r) {
    const deps = { random: systemRandom, clock: systemClock };
    return () => deps;
  }
  return (conn) => ({ random: seededRandom(`${r.seed}/${conn}`), clock: { now: () => r.clockMs } });
}

/** Entries handled per batch before the relay yields to its event loop (timers, control messages). */
const BATCH_ENTRIES = 64;
/** Ring bytes of one entry without payload. */
const ENTRY = HEADER_BYTES + 8;
/** Room for the entries the end of a batch writes, per connection. */
const NOTICE_ROOM = 2 * ENTRY;
/** Handshake output (the server flight, tickets) of one input, at most. */
const HANDSHAKE_ROOM = 64 << 10;
/** Ring entries a handshaking input may add: its flight's pieces, and its tickets' SessionIssued entries (a header and about 200 bytes each). */
const HANDSHAKE_ENTRIES = 48;
/** The largest piece the engine writes at once: a whole protected record. */
const MAX_PIECE = RECORD_HEADER_LEN + MAX_CIPHERTEXT;

/**
 * The most output one input can make: bytes into the arena, and entries announcing
 * them (every record may become a piece of its own; handshake messages may come out).
 */
function outputBound(o: Owned, kind: number, length: number): { readonly bytes: number; readonly entries: number } {
  const extraBytes = o.engine.phase === 'established' ? 4 << 10 : HANDSHAKE_ROOM;
  const extraEntries = o.engine.phase === 'established' ? 8 : HANDSHAKE_ENTRIES;
  if (kind === InputCode.client) return { bytes: length + extraBytes, entries: Math.ceil(length / (RECORD_HEADER_LEN + 17)) + extraEntries };
  if (kind === InputCode.backend) {
    const records = Math.ceil(length / (o.engine.negotiated?.maxRecordPlaintext ?? MAX_CIPHERTEXT)) + 1;
    return { bytes: length + records * (RECORD_HEADER_LEN + 17 + 8) + extraBytes, entries: records + extraEntries };
  }
  return { bytes: extraBytes, entries: extraEntries };
}

/** Starts the output of one input of `o`, at the engine's stream offsets. */
function beginOutput(s: RelayState, o: Owned, seq: number, flags: number): void {
  s.sink.begin(o.conn, o.epoch, seq, flags, o.engine.clientOffset, o.engine.applicationOffset);
}

/** Ends `o` with a fatal alert sealed after its last input. */
function abortAndEnd(s: RelayState, o: Owned, message: string): void {
  beginOutput(s, o, o.lastSeq, 0);
  o.engine.abortInto(message, s.sink);
  s.sink.done();
  end(s, o);
}

/** Runs one input through its connection's engine, output straight into the ring. */
function onInput(s: RelayState, ctx: ActorContext, o: Owned, seq: number, kind: number, bytes: Uint8Array): void {
  const engine = o.engine;
  const sink = s.sink;
  if (kind === InputCode.session) {
    offerSession(s, o, seq, bytes);
    return;
  }
  const phase = engine.phase;
  o.slot?.inHand(seq);
  if (phase === 'handshaking' && engine.negotiated) ctx.faultPoint('relay.beforeClientFinished');
  else if (phase === 'established') ctx.faultPoint('relay.midStream');
  const negotiatedBefore = engine.negotiated !== null;
  // Handshake clustering: what a handshaking connection produces leaves only once the
  // state that produced it is committed (its Committed entry releases it).
  const held = s.store !== null && phase === 'handshaking';
  beginOutput(s, o, seq, held ? Held : 0);
  switch (kind) {
    case InputCode.client:
      engine.receiveInto(bytes, sink);
      break;
    case InputCode.backend:
      engine.sendInto(bytes, sink);
      break;
    case InputCode.backendEnd:
      engine.closeInto(sink);
      break;
    default:
      engine.abortInto('backend connection failed', sink);
      break;
  }
  sink.done();
  o.slot?.inHand(0);
  o.lastSeq = seq;
  // Something waits for the commit only if this input made output.
  if (held && sink.produced) o.holdUpTo = seq;
  if (!negotiatedBefore && engine.negotiated !== null) o.flight = true;
  if (sink.keyUpdated) ctx.faultPoint('relay.duringKeyUpdate');
  if (quarantineDue(s, o)) return;
  if (engine.phase === 'closed') {
    end(s, o);
    return;
  }
  markDirty(s, o);
}

/**
 * A stateful session the gateway fetched for the next ClientHello. Copied out of the
 * arena (the input's chunk is freed once a commit covers it). Nothing changes in the
 * engine's state, so nothing is committed for it: the retained input covers it until
 * the ClientHello's commit does, and a takeover before that replays it.
 */
function offerSession(s: RelayState, o: Owned, seq: number, bytes: Uint8Array): void {
  if (bytes.length > SESSION_ID_LEN) o.engine.offerSession(bytes.slice(0, SESSION_ID_LEN), bytes.slice(SESSION_ID_LEN));
  beginOutput(s, o, seq, 0);
  s.sink.done();
  o.lastSeq = seq;
}

/**
 * Drops an ended connection. What it still holds back may leave now: nothing will
 * replay a connection that is over, so its output needs no commit.
 */
function end(s: RelayState, o: Owned): void {
  s.owned.delete(o.conn);
  if (o.holdUpTo > 0) s.sink.notice(FromRelay.Committed, o.conn, o.epoch, o.lastSeq);
}

function markDirty(s: RelayState, o: Owned): void {
  if (o.slot === null || o.dirty) return;
  o.dirty = true;
  s.dirty.push(o);
}

/**
 * A quarantined connection, once replayed up to its last answered input, ends
 * with a fatal alert sealed at the right sequence number. True when it ended.
 */
function quarantineDue(s: RelayState, o: Owned): boolean {
  if (o.quarantineAfter === null || o.lastSeq < o.quarantineAfter) return false;
  abortAndEnd(s, o, 'connection quarantined');
  return true;
}

/** Commits one connection's state after this batch: a delta, or a new base when more than counters moved. */
function commit(s: RelayState, ctx: ActorContext, o: Owned): void {
  o.dirty = false;
  if (o.slot === null || s.owned.get(o.conn) !== o) return;
  const rev = o.engine.revision;
  const needsBase = rev !== o.baseRevision || !o.slot.hasBase;
  // A record or handshake message still arriving in pieces, too large for a slot: the
  // state cannot be committed until it is whole (the retained input covers it). Not
  // encoded only to find that out, once per piece, which would make its reassembly
  // quadratic in its length.
  if (needsBase && o.engine.bufferedBytes > MAX_BASE_BYTES && o.holdUpTo === 0) return;
  const snapshot = needsBase ? o.engine.encodedSnapshot() : null;
  o.engine.recordState(s.record);
  ctx.faultPoint('relay.duringReplication');
  if (!o.slot.commit(o.lastSeq, snapshot, s.record)) {
    // A state too large for its slot (a huge handshake message still arriving) stays
    // uncommitted; the retained input covers it. Held output cannot wait for that.
    if (o.holdUpTo > 0) abortAndEnd(s, o, 'handshake state too large to replicate');
    return;
  }
  if (snapshot !== null) o.baseRevision = rev;
  o.holdUpTo = 0;
  s.sink.notice(FromRelay.Committed, o.conn, o.epoch, o.lastSeq);
}

function onPromote(s: RelayState, o: { conn: number; epoch: number; slot: number; token: number; quarantineAfter: number | null }): void {
  s.owned.delete(o.conn);
  const store = s.store;
  const loaded = store?.load(o.slot, o.token) ?? null;
  let engine: TlsServerEngine;
  try {
    engine = loaded
      ? TlsServerEngine.restoreEncoded(loaded.snapshot, loaded.record, s.config, s.deps(o.conn))
      : TlsServerEngine.create(s.config, s.deps(o.conn));
  } catch {
    // A committed state that does not restore (never expected: commits are checksummed)
    // ends the connection; the gateway resets it.
    s.sink.notice(FromRelay.Forgotten, o.conn, o.epoch, 0);
    return;
  }
  const owned = own(s, o.conn, o.epoch, engine, o.slot, o.token, {
    lastSeq: loaded?.upTo ?? 0,
    baseRevision: engine.revision,
    quarantineAfter: o.quarantineAfter,
  });
  s.sink.notice(FromRelay.Promoted, o.conn, o.epoch, owned.lastSeq);
  quarantineDue(s, owned);
  // The gateway counts the takeover done from here: say so now, not at the end of the batch.
  s.channel.writer.publish(true);
}

function onOpen(s: RelayState, conn: number, epoch: number, slot: number, token: number): void {
  own(s, conn, epoch, TlsServerEngine.create(s.config, s.deps(conn)), slot, token, { lastSeq: 0, baseRevision: -1, quarantineAfter: null });
}

/** Takes connection `conn` on, committing into `slot` (when replication is on). */
function own(
  s: RelayState,
  conn: number,
  epoch: number,
  engine: TlsServerEngine,
  slot: number,
  token: number,
  from: Pick<Owned, 'lastSeq' | 'baseRevision' | 'quarantineAfter'>,
): Owned {
  const o: Owned = {
    conn,
    engine,
    epoch,
    lastSeq: from.lastSeq,
    quarantineAfter: from.quarantineAfter,
    slot: s.store ? s.store.writer(slot, token) : null,
    baseRevision: from.baseRevision,
    holdUpTo: 0,
    dirty: false,
    flight: false,
  };
  s.owned.set(conn, o);
  return o;
}

/** Why a batch stopped before the gateway's entries ran out. */
type Stall = 'room' | 'chunk' | null;

/**
 * Handles one entry from the gateway. Returns why an input could not run now (its
 * output might not fit the ring, or the arena has no chunk for it): the entry is left
 * for later.
 */
function onEntry(s: RelayState, ctx: ActorContext, at: number): Stall {
  const { reader, writer } = s.channel;
  const v = reader.view;
  const conn = v.getUint32(at + H_CONN, true);
  const epoch = v.getUint32(at + H_EPOCH, true);
  switch (v.getUint8(at + H_TYPE)) {
    case ToRelay.Input: {
      const o = s.owned.get(conn);
      const seq = v.getUint32(at + H_SEQ, true);
      // Fencing: inputs of an older epoch, or already covered by a restored state, are dropped.
      if (!o || o.epoch !== epoch || seq <= o.lastSeq) return null;
      const kind = v.getUint16(at + H_AUX16, true);
      const n = v.getUint32(at + H_LENGTH, true);
      const bound = outputBound(o, kind, n);
      if (writer.reserve(bound.entries * ENTRY + NOTICE_ROOM * (s.dirty.length + 1)) < 0) return 'room';
      if (!s.sink.ensure(bound.bytes, MAX_PIECE)) return 'chunk';
      const from = s.arena.offset(v.getUint32(at + H_AUX32, true)) + v.getUint32(at + H_AUX32B, true);
      onInput(s, ctx, o, seq, kind, s.arena.bytes.subarray(from, from + n));
      return null;
    }
    case ToRelay.Open:
      onOpen(s, conn, epoch, v.getUint32(at + H_AUX32, true), v.getUint32(at + H_AUX32B, true));
      return null;
    case ToRelay.Promote: {
      if (writer.reserve(NOTICE_ROOM + 32 * ENTRY) < 0) return 'room';
      if (!s.sink.ensure(HANDSHAKE_ROOM, MAX_PIECE)) return 'chunk';
      const q = v.getFloat64(at + H_OFFSET, true);
      onPromote(s, { conn, epoch, slot: v.getUint32(at + H_AUX32, true), token: v.getUint32(at + H_AUX32B, true), quarantineAfter: q < 0 ? null : q });
      return null;
    }
    case ToRelay.Forget:
      if (writer.reserve(NOTICE_ROOM) < 0) return 'room';
      s.owned.delete(conn);
      s.sink.notice(FromRelay.Forgotten, conn, epoch, 0);
      return null;
    default:
      return null;
  }
}

type BatchEnd = 'empty' | 'more' | 'room' | 'chunk' | 'fenced';

/**
 * One batch: handle what the gateway sent (bounded), make the output visible, then
 * commit every connection that moved and announce the commits. Output always becomes
 * visible before the commit that covers it, so the state store never runs ahead of
 * what the gateway can have received.
 */
function batch(s: RelayState, ctx: ActorContext): BatchEnd {
  const { reader, writer } = s.channel;
  // A batch is the relay's one turn at shared memory (rings, arena, state store): fenced,
  // this incarnation is over and its crash is being handled; it touches nothing more.
  if (!writer.beginTurn()) return 'fenced';
  let end: BatchEnd = 'empty';
  let handled = 0;
  for (;;) {
    let at = s.pending;
    if (at < 0) {
      at = reader.next();
      if (at < 0) break;
    }
    const stall = onEntry(s, ctx, at);
    if (stall !== null) {
      s.pending = at;
      end = stall;
      break;
    }
    s.pending = -1;
    if (++handled >= BATCH_ENTRIES) {
      end = 'more';
      break;
    }
  }
  writer.publish(false);
  let flight = false;
  for (const o of s.dirty) {
    flight ||= o.flight;
    o.flight = false;
    commit(s, ctx, o);
  }
  s.dirty.length = 0;
  if (flight) ctx.faultPoint('relay.afterClientHelloReplicated');
  writer.publish(true);
  if (s.pending < 0) reader.release();
  writer.endTurn();
  return end;
}

/** The relay's data loop: batches, yielding to the event loop between them. */
function run(s: RelayState, ctx: ActorContext): void {
  // A throw here is the relay's crash: rethrown outside any promise, so it is uncaught.
  const crash = (e: unknown) =>
    setImmediate(() => {
      throw e;
    });
  const next = (): void => {
    const end = batch(s, ctx);
    if (end === 'more') setImmediate(next);
    else if (end === 'room') s.channel.writer.waitForRoom().then(next, crash);
    else if (end === 'chunk') s.arena.waitForChunk().then(next, crash);
    else if (end === 'empty') s.channel.reader.wait().then(next, crash);
  };
  setImmediate(next);
}

export default defineActor<RelayMsg, RelayState, RelayArgs>({
  name: 'relay',
  init(args, ctx) {
    const channel = ctx.channel;
    if (!channel) throw new TypeError('a relay needs a data channel');
    const shared = ctx.shared as RelayShared | undefined;
    if (!shared?.arena) throw new TypeError('a relay needs the shared arena');
    const arena = new Arena(shared.arena);
    const s: RelayState = {
      name: args.name,
      settings: args.settings,
      config: relayTlsConfig(args.settings.config.tls, loadCertifiedKey),
      active: { version: args.settings.config.version, digest: args.settings.config.digest },
      staged: new Map(),
      deps: engineDeps(args.settings),
      owned: new Map(),
      channel,
      arena,
      sink: new OutputSink(channel.writer, arena, args.arenaOwner),
      store: shared.store ? new StateStore(shared.store) : null,
      dirty: [],
      record: new Float64Array(RECORD_STATE_LENGTH),
      pending: -1,
    };
    // A takeover must not run cold code.
    warmUpTakeover(s.config, s.deps(0));
    // Every write to shared memory happens in a batch: a crash is handled once the gateway
    // has fenced the batches, not only once this thread has torn down.
    channel.writer.useTurns();
    run(s, ctx);
    return s;
  },
  receive(msg, s, ctx) {
    // Answer an ask; a plain tell needs no answer.
    ctx.replier()?.reply(configure(s, msg));
  },
  stop(s) {
    s.owned.clear();
  },
});

/**
 * Two-phase configuration: a staged version is validated here (every certificate
 * parses and matches its key) before any relay may use it; activation swaps it in
 * for new connections, while existing ones keep what they negotiated.
 */
function configure(s: RelayState, msg: RelayMsg): ConfigReply {
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
