/**
 * A local relay cluster (one node): an actor system, a one_for_one supervisor over N
 * relay actors (one per worker thread), and the gateway on the main thread, wired so
 * that every relay crash the runtime detects starts a takeover at once; and the
 * node's configuration: its active version, rolled out two-phase to every relay
 * (rollout.ts), and its ticket key rotation.
 *
 * It lives in src/cluster/, not src/relay/: it owns configuration versions and ticket
 * keys, which DESIGN.md places here, and it composes the relay layer's parts (gateway,
 * relay actor, state store) without adding relay mechanics of its own.
 */
import type net from 'node:net';
import { ActorSystem, Arena, createArena, type ActorRef, type FaultKind, type Supervisor, type SupervisorEvent } from '../actors/index.js';
import type { BackendsSpec } from '../relay/backend-pool.js';
import { DEFAULT_DEADLINES, type DeadlineSettings } from '../relay/deadlines.js';
import { DEFAULT_GATEWAY, Gateway } from '../relay/gateway.js';
import type { RelayMsg } from '../relay/protocol.js';
import type { ProxyProtocolMode } from '../relay/proxy-protocol.js';
import type { RelayArgs, RelayShared } from '../relay/relay-actor.js';
import type { ConfigVersion, RelayCertificate, RelaySettings, TlsSettings } from '../relay/settings.js';
import { createStore, StateStore } from '../relay/state-store.js';
import { aeadBackend, DEFAULT_TICKET_LIFETIME_SECONDS, type AeadBackend, type TicketKeys, type TicketMode } from '../tls/index.js';
import type { Clock } from '../util/clock.js';
import type { HostPort } from '../util/host-port.js';
import { siblingModule } from '../util/module-url.js';
import { MemoryRelease } from './memory-release.js';
import { configVersion } from './config-version.js';
import { activateOnRelays, applyVersion, rollOut, stageOnRelays, type RolloutHost, type RolloutResult, type StageResult } from './rollout.js';
import { freshTicketKeys, rotateTicketKeys } from './ticket-keys.js';
import type { KvStore } from './kv.js';
import { MemoryKvStore } from './memory-kv.js';
import { KvSessionStore } from './stateful-sessions.js';
export { DEFAULT_RETAINED_BUDGET_BYTES, DEFAULT_MAX_UNREAD_KEY_UPDATES } from '../relay/gateway.js';

export interface ClusterOptions {
  readonly relays: number;
  readonly listen: HostPort;
  readonly backend: HostPort;
  /** Several backends, balanced and health-checked (see GatewayOptions.backends); default `backend` alone. */
  readonly backends?: BackendsSpec;
  readonly certificates: readonly RelayCertificate[];
  /** Shared ticket keys; fresh random ones when absent. Secret. */
  readonly ticketKeys?: TicketKeys;
  readonly alpn?: readonly string[];
  readonly cipherSuites?: TlsSettings['cipherSuites'];
  readonly groups?: TlsSettings['groups'];
  /** Rotate the ticket keys this often (see {@link Cluster.rotateTicketsEvery}); default never. */
  readonly ticketRotationMs?: number;
  /**
   * 'stateful': single-use session tickets (an opaque id; the sealed state in a store,
   * taken once). Their store is this process's own (in memory) until
   * {@link Cluster.useSessionStore} hands the cluster's shared one. Default 'stateless'.
   */
  readonly ticketMode?: TicketMode;
  /** Where stateful sessions live at start; default a {@link MemoryKvStore} with the ticket lifetime as TTL. */
  readonly sessionKv?: KvStore;
  /** Records under one key before a relay starts a KeyUpdate (lower it to exercise KeyUpdate). */
  readonly keyUpdateAfterRecords?: number;
  /** Dummy change_cipher_spec records and warning alerts a client may send during a handshake; above: unexpected_message. Default 32 each. */
  readonly maxHandshakeChangeCipherSpecs?: number;
  readonly maxHandshakeWarningAlerts?: number;
  /**
   * KeyUpdates with update_requested answered to a client whose output is not drained;
   * the next one closes the connection (see GatewayOptions.maxUnreadKeyUpdates). Default 32.
   */
  readonly maxUnreadKeyUpdates?: number;
  /**
   * Retained input of all connections together above which the gateway stops reading
   * connections holding more than their share until commits bring it below half (see
   * GatewayOptions.retainedBudgetBytes).
   * Default {@link DEFAULT_RETAINED_BUDGET_BYTES}.
   */
  readonly retainedBudgetBytes?: number;
  /** Reproducible randomness and clock for tests (see RelaySettings.reproducible); also numbers connections. */
  readonly reproducible?: RelaySettings['reproducible'];
  /** Commit connection state for takeover (default true); false: a relay crash loses its connections. */
  readonly replication?: boolean;
  /** Heartbeat deadline after which a silent relay is declared hung. Default 1000 ms. */
  readonly watchdogMs?: number;
  /**
   * The longest a crashed relay waits, before it starts again, for its siblings to restore
   * its connections (a starting relay thread takes a core for about a second). Default 100 ms.
   */
  readonly restartHoldMs?: number;
  /** V8 old-generation limit per relay worker, in MiB. Default 512. */
  readonly relayHeapMb?: number;
  /**
   * Connections served at once, at most; more wait, unread, until one ends (see
   * GatewayOptions.maxConnections). Default 10000. The state store has twice as many
   * slots: a takeover takes a fresh slot while the dead owner's cools.
   */
  readonly maxConnections?: number;
  /** Handshake, idle and backend connect deadlines (deadlines.ts; 0: off). Default {@link DEFAULT_DEADLINES}. */
  readonly deadlines?: Partial<DeadlineSettings>;
  /** Where the gateway's deadlines read the time (tests); default the system clock. */
  readonly clock?: Clock;
  /** Bytes of each direction of a relay's data channel. Default 1 MiB. */
  readonly channelBytes?: number;
  /** Chunks of 128 KiB in the arena all socket and relay bytes pass through. Default 4096 (512 MiB, taken as used). */
  readonly arenaChunks?: number;
  /** Restart intensity of the relay supervisor. Default 1000 restarts in 60 s (chaos-friendly). */
  readonly intensity?: { readonly restarts: number; readonly periodMs: number };
  /** PROXY protocol header toward the backend (see GatewayOptions.proxyProtocol). Default 'off'. */
  readonly proxyProtocol?: ProxyProtocolMode;
  /** Listener for supervisor events (crashes, restarts, escalation), e.g. logs. */
  readonly onEvent?: (e: SupervisorEvent) => void;
}

// relay-actor.ts from src/ (tests, tsx), relay-actor.js from dist/ (the installed package).
const RELAY_MODULE = siblingModule(import.meta.url, '../relay/relay-actor');
export const DEFAULT_MAX_CONNECTIONS = 10_000;
const DEFAULT_CHANNEL_BYTES = 1 << 20;
const DEFAULT_ARENA_CHUNKS = 4096;
const ARENA_CHUNK_BYTES = 128 << 10;
/** Stateful sessions expire with their tickets (the relays issue them with the engine's default lifetime). */
export const SESSION_TTL_MS = DEFAULT_TICKET_LIFETIME_SECONDS * 1000;

export class Cluster {
  private closed = false;
  private rollouts: Promise<void> = Promise.resolve();
  private rotation: NodeJS.Timeout | null = null;
  private sessions: KvSessionStore | null = null;
  /** Gives the memory of handshake bursts back to the OS (the process's arenas, every thread's). */
  private readonly memoryRelease: MemoryRelease;

  private constructor(
    readonly system: ActorSystem,
    readonly gateway: Gateway,
    readonly supervisor: Supervisor,
    readonly address: net.AddressInfo,
    private readonly refs: Map<string, ActorRef<RelayMsg>>,
    private readonly config: { active: ConfigVersion },
  ) {
    const stats = gateway.stats;
    this.memoryRelease = new MemoryRelease({
      opened: () => stats.connectionsOpened,
      moved: () => stats.bytesFromClients + stats.bytesFromBackends,
    });
  }

  /**
   * How relays protect records: the native addon, or node:crypto (with the reason),
   * as this process finds it (relays load the same addon under the same environment).
   */
  get recordProtection(): AeadBackend {
    return aeadBackend();
  }

  /** The configuration version every relay runs (new connections use it). */
  get activeConfig(): { readonly version: number; readonly digest: string } {
    return { version: this.config.active.version, digest: this.config.active.digest };
  }

  /** The active TLS settings (secret: keys), to derive the next version from. */
  get activeTls(): TlsSettings {
    return this.config.active.tls;
  }

  /**
   * Rolls out new TLS settings as the next configuration version, two-phase (see
   * rollout.ts). Rollouts run one after another. Existing connections keep their
   * negotiated state; new handshakes use the new version once it is active.
   */
  reconfigure(tls: TlsSettings): Promise<RolloutResult> {
    return this.serialised((host) => rollOut(host, tls));
  }

  /**
   * Phase one of a rollout across nodes: stages `version` (numbered by the cluster of
   * nodes) on every relay, which validate it; nothing changes for new connections.
   */
  stageVersion(version: ConfigVersion): Promise<StageResult> {
    return this.serialised((host) => stageOnRelays(host, version));
  }

  /** Phase two of a rollout across nodes: activates a version {@link stageVersion} staged. */
  activateVersion(version: ConfigVersion): Promise<void> {
    return this.serialised((host) => activateOnRelays(host, version));
  }

  /** Both phases at once: a node coming up on its cluster's active version. */
  applyVersion(version: ConfigVersion): Promise<RolloutResult> {
    return this.serialised((host) => applyVersion(host, version));
  }

  /** Runs one step of a rollout after the ones before it. */
  private serialised<T>(step: (host: RolloutHost) => Promise<T>): Promise<T> {
    const config = this.config;
    // A version that makes tickets stateful (a reload) needs somewhere to keep them.
    const keepSessions = (v: ConfigVersion) => {
      if (v.tls.ticketMode === 'stateful' && this.sessions === null) this.useSessionStore(new MemoryKvStore({ ttlMs: SESSION_TTL_MS }));
    };
    const host: RolloutHost = {
      system: this.system,
      relayNames: this.relayNames,
      ref: (name) => this.ref(name),
      isUp: (name) => this.threadIdOf(name) !== undefined,
      get active() {
        return config.active;
      },
      set active(v) {
        config.active = v;
        keepSessions(v);
      },
    };
    const run = this.rollouts.then(() => step(host));
    this.rollouts = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Rotates the ticket keys every `periodMs`: a fresh key is staged everywhere before
   * any relay seals tickets with it, and the previous one is still accepted for one
   * more period, then retired.
   */
  rotateTicketsEvery(periodMs: number): void {
    if (this.rotation) clearInterval(this.rotation);
    this.rotation = setInterval(() => {
      void this.reconfigure({ ...this.activeTls, ticketKeys: rotateTicketKeys(this.activeTls.ticketKeys) });
    }, periodMs);
    this.rotation.unref();
  }

  /** Stops {@link rotateTicketsEvery} (a node that joins hands its rotation to the cluster of nodes). */
  stopTicketRotation(): void {
    if (this.rotation) clearInterval(this.rotation);
    this.rotation = null;
  }

  static async start(opts: ClusterOptions): Promise<Cluster> {
    if (!Number.isInteger(opts.relays) || opts.relays < 1) throw new RangeError('relays must be a whole number of at least 1');
    const system = new ActorSystem();
    try {
      const maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
      const store = opts.replication === false ? null : createStore(2 * maxConnections);
      const arena = createArena(opts.arenaChunks ?? DEFAULT_ARENA_CHUNKS, ARENA_CHUNK_BYTES);
      const gateway = new Gateway({
        ...DEFAULT_GATEWAY,
        listen: opts.listen,
        backend: opts.backend,
        ...(opts.backends ? { backends: opts.backends } : {}),
        store: store ? new StateStore(store) : null,
        arena: new Arena(arena),
        ...(opts.reproducible ? { connectionId: (n: number) => `c${n}` } : {}),
        maxConnections,
        ...(opts.maxUnreadKeyUpdates !== undefined ? { maxUnreadKeyUpdates: opts.maxUnreadKeyUpdates } : {}),
        ...(opts.retainedBudgetBytes !== undefined ? { retainedBudgetBytes: opts.retainedBudgetBytes } : {}),
        deadlines: { ...DEFAULT_DEADLINES, ...opts.deadlines },
        ...(opts.clock ? { clock: opts.clock } : {}),
        ...(opts.proxyProtocol ? { proxyProtocol: opts.proxyProtocol } : {}),
      });
      const tls: TlsSettings = {
        certificates: opts.certificates,
        ticketKeys: opts.ticketKeys ?? freshTicketKeys(),
        ...(opts.ticketMode === 'stateful' ? { ticketMode: 'stateful' as const } : {}),
        ...(opts.alpn ? { alpn: opts.alpn } : {}),
        ...(opts.cipherSuites ? { cipherSuites: opts.cipherSuites } : {}),
        ...(opts.groups ? { groups: opts.groups } : {}),
        ...(opts.keyUpdateAfterRecords ? { keyUpdateAfterRecords: opts.keyUpdateAfterRecords } : {}),
        ...(opts.maxHandshakeChangeCipherSpecs !== undefined ? { maxHandshakeChangeCipherSpecs: opts.maxHandshakeChangeCipherSpecs } : {}),
        ...(opts.maxHandshakeWarningAlerts !== undefined ? { maxHandshakeWarningAlerts: opts.maxHandshakeWarningAlerts } : {}),
      };
      const initial = configVersion(1, tls);
      const config = { active: initial };
      // A relay (re)starts on the active version, so it never serves an old one.
      const settings = (): RelaySettings => ({
        config: config.active,
        ...(opts.reproducible ? { reproducible: opts.reproducible } : {}),
      });
      const shared: RelayShared = { store, arena };
      // Every relay incarnation takes arena chunks under a name of its own (the main thread is 1).
      let nextArenaOwner = 2;
      const arenaOwners = new Map<string, number>();
      const relayArgs = (name: string): RelayArgs => {
        const arenaOwner = nextArenaOwner++;
        arenaOwners.set(name, arenaOwner);
        return { name, arenaOwner, settings: settings() };
      };
      const names = Array.from({ length: opts.relays }, (_, i) => `relay-${i}`);
      const refs = new Map<string, ActorRef<RelayMsg>>();
      const supervisor = await system.supervise({
        id: 'relays',
        strategy: 'one_for_one',
        intensity: opts.intensity?.restarts ?? 1000,
        periodMs: opts.intensity?.periodMs ?? 60_000,
        backoff: { initialMs: 10, maxMs: 500, factor: 2 },
        // A relay thread's start takes a core for about a second here (loading, warm-up):
        // the siblings restoring the dead one's connections have it first.
        beforeRestart: () => gateway.restored(opts.restartHoldMs ?? 100),
        children: names.map((name) => ({
          id: name,
          restart: 'permanent' as const,
          start: {
            kind: 'worker' as const,
            options: {
              module: RELAY_MODULE,
              args: () => relayArgs(name),
              shared,
              channel: { bytes: opts.channelBytes ?? DEFAULT_CHANNEL_BYTES },
              capacity: 1 << 10,
              watchdog: { deadlineMs: opts.watchdogMs ?? 1000 },
              resourceLimits: { maxOldGenerationSizeMb: opts.relayHeapMb ?? 512 },
            },
          },
        })),
        listener: (e) => {
          if (e.type === 'Crashed') gateway.relayCrashed(e.child, e.crash);
          else if (e.type === 'Restarted') {
            refs.set(e.child, e.ref as ActorRef<RelayMsg>);
            gateway.relayUp(e.child, e.ref as ActorRef<RelayMsg>, system.channelOf(e.ref)!, arenaOwners.get(e.child)!);
          }
          opts.onEvent?.(e);
        },
      });
      for (const child of supervisor.whichChildren()) {
        refs.set(child.id, child.ref as ActorRef<RelayMsg>);
        gateway.relayUp(child.id, child.ref as ActorRef<RelayMsg>, system.channelOf(child.ref)!, arenaOwners.get(child.id)!);
      }
      const address = await gateway.listen();
      const cluster = new Cluster(system, gateway, supervisor, address, refs, config);
      if (opts.ticketMode === 'stateful') cluster.useSessionStore(opts.sessionKv ?? new MemoryKvStore({ ttlMs: SESSION_TTL_MS }));
      if (opts.ticketRotationMs) cluster.rotateTicketsEvery(opts.ticketRotationMs);
      return cluster;
    } catch (e) {
      await system.close();
      throw e;
    }
  }

  /**
   * Keeps stateful sessions in `kv` from now on (a joined node: the cluster's shared
   * bucket, whose TTL is {@link SESSION_TTL_MS}), so a ticket from any node resumes once
   * on any node. Sessions in the previous store are not moved: they resume nowhere.
   */
  useSessionStore(kv: KvStore): KvSessionStore {
    const store = new KvSessionStore(kv);
    this.gateway.useSessionStore(store);
    this.sessions = store;
    return store;
  }

  /** Relay names, in placement order. */
  get relayNames(): string[] {
    return [...this.refs.keys()];
  }

  /** The worker thread a relay runs on now (undefined while it is down). */
  threadIdOf(name: string): number | undefined {
    return this.system.threadIdOf(this.ref(name));
  }

  /** Crashes a relay now with `kind` (throw, exit, terminate, oom, hang). */
  inject(name: string, kind: FaultKind): void {
    this.system.inject(this.ref(name), kind);
  }

  /** Arms a fault point in a relay: it crashes with `kind` when the point is next reached. */
  arm(name: string, point: string, kind: FaultKind, opts?: { skip?: number; times?: number }): Promise<void> {
    return this.system.armFaultPoint(this.ref(name), point, kind, opts);
  }

  private ref(name: string): ActorRef<RelayMsg> {
    const r = this.refs.get(name);
    if (!r) throw new RangeError(`no relay named ${name}`);
    return r;
  }

  /** Stops the gateway and every relay. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.rotation) clearInterval(this.rotation);
    this.memoryRelease.stop();
    await this.gateway.close();
    await this.system.close();
  }
}
