/**
 * Every message between the gateway (main thread) and the relay actors, and
 * between an owner relay and its replica, declared in one place.
 * Snapshots travel only owner -> replica; the gateway routes them as opaque
 * bytes and never decodes them.
 */
import type { ActorRef } from '../actors/index.js';
import type { InputKind } from './retained.js';
import type { ConfigVersion } from './settings.js';

/** A relay's answer to a configuration command. */
export type ConfigReply = { readonly ok: true; readonly version: number } | { readonly ok: false; readonly reason: string };

/** Commands to a relay. */
export type RelayMsg =
  /** Several messages in one cross-thread hop, handled in order. */
  | { readonly t: 'Batch'; readonly msgs: readonly RelayMsg[] }
  /** Become the owner of a new connection. */
  | { readonly t: 'Open'; readonly conn: string; readonly epoch: number; readonly replica: ActorRef<RelayMsg> | null }
  /** One input for an owned connection, numbered by the gateway. */
  | {
      readonly t: 'Input';
      readonly conn: string;
      readonly epoch: number;
      readonly seq: number;
      readonly kind: InputKind;
      readonly bytes: Uint8Array | null;
    }
  /** Take over a connection from the replicated state held here (takeover). */
  | {
      readonly t: 'Promote';
      readonly conn: string;
      readonly epoch: number;
      readonly replica: ActorRef<RelayMsg> | null;
      /**
       * Poison: replay inputs up to this one (they were answered before), then close
       * the connection with a fatal alert instead of going on to the input that kills.
       * Null: carry on normally.
       */
      readonly quarantineAfter: number | null;
    }
  /** The owned connection has a new replica: send it the whole state now. */
  | { readonly t: 'SetReplica'; readonly conn: string; readonly epoch: number; readonly replica: ActorRef<RelayMsg> | null }
  /**
   * Configuration rollout, two-phase (asks; the reply is {@link ConfigReply}): stage a
   * version after validating it (certificates parse and match their keys), then
   * activate it. Configure does both at once, for a relay that restarted.
   */
  | { readonly t: 'StageConfig'; readonly config: ConfigVersion }
  | { readonly t: 'ActivateConfig'; readonly version: number; readonly digest: string }
  | { readonly t: 'Configure'; readonly config: ConfigVersion }
  /** Forget a connection, as owner or replica. */
  | { readonly t: 'Forget'; readonly conn: string }
  /** Owner -> replica: the encoded engine state after input `upTo` (secret). */
  | {
      readonly t: 'Replicate';
      readonly conn: string;
      readonly epoch: number;
      readonly upTo: number;
      readonly snapshot: Uint8Array;
    };

/** What the gateway needs to know of the engine's events. */
export type ConnectionEvent =
  | { readonly type: 'handshakeDone'; readonly alpn: string | null; readonly serverName: string | null; readonly resumed: boolean; readonly cipherSuite: string }
  | { readonly type: 'peerClosed' }
  | { readonly type: 'alert'; readonly sent: boolean; readonly alert: string }
  | { readonly type: 'closed'; readonly error: boolean };

/** Messages to the gateway. */
export type GatewayMsg =
  /** Several messages in one cross-thread hop, handled in order. */
  | { readonly t: 'Batch'; readonly msgs: readonly GatewayMsg[] }
  /**
   * The owner's output for input `seq`, posted for every input (even when empty),
   * so the gateway knows what was processed.
   * Offsets are the engine's counters before this output, so the gateway can skip
   * bytes it already wrote when a new owner replays.
   */
  | {
      readonly t: 'Output';
      readonly conn: string;
      readonly epoch: number;
      readonly seq: number;
      readonly clientOffset: number;
      /** Bytes for the client, as consecutive pieces (no record boundaries implied); null when none. */
      readonly toClient: readonly Uint8Array[] | null;
      readonly backendOffset: number;
      /** Plaintext for the backend, as consecutive pieces; null when none. */
      readonly toBackend: readonly Uint8Array[] | null;
      readonly events: readonly ConnectionEvent[];
      /** Hold until the replica acknowledges a state covering `seq` (handshake clustering). */
      readonly gated: boolean;
    }
  /** New owner -> gateway: the replicated state is restored; replayed inputs follow. */
  | { readonly t: 'Promoted'; readonly conn: string; readonly epoch: number; readonly upTo: number }
  /** Replica -> gateway: a state covering inputs up to `upTo` is held. */
  | { readonly t: 'Replicated'; readonly conn: string; readonly epoch: number; readonly upTo: number; readonly relay: string };
