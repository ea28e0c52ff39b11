/**
 * The actor messages of a relay cluster: configuration commands to relays (asks,
 * two-phase; cluster/rollout.ts sends them) and their replies. Connection traffic
 * does not travel as messages: it crosses on each relay's data channel, in the
 * entries declared in wire.ts; a {@link ConnectionEvent} is what the gateway makes of
 * a Done entry's event bits there (wire.ts, doneEvents).
 */
import type { TlsLimit } from '../tls/index.js';
import type { ConfigVersion } from './settings.js';

/** A relay's answer to a configuration command. */
export type ConfigReply = { readonly ok: true; readonly version: number } | { readonly ok: false; readonly reason: string };

/**
 * Configuration rollout, two-phase (asks; the reply is {@link ConfigReply}): stage a
 * version after validating it (certificates parse and match their keys), then
 * activate it. Configure does both at once, for a relay that restarted mid-rollout.
 */
export type RelayMsg =
  | { readonly t: 'StageConfig'; readonly config: ConfigVersion }
  | { readonly t: 'ActivateConfig'; readonly version: number; readonly digest: string }
  | { readonly t: 'Configure'; readonly config: ConfigVersion };

/** What the gateway needs to know of the engine's events. */
export type ConnectionEvent =
  | { readonly type: 'handshakeDone'; readonly alpn: string | null; readonly serverName: string | null; readonly resumed: boolean; readonly cipherSuite: string }
  | { readonly type: 'peerClosed' }
  | { readonly type: 'closed'; readonly error: boolean }
  /** The engine closed the connection for one of its caps (a fatal alert follows). */
  | { readonly type: 'limitExceeded'; readonly limit: TlsLimit }
  /** The output holds a KeyUpdate answering the client's update_requested. */
  | { readonly type: 'keyUpdateAnswered' };
