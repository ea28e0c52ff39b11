/**
 * The node's one connection to NATS (the `@nats-io/transport-node` client): the join
 * URL checked before anything starts, a bounded first connect, then reconnects for as
 * long as the node lives. A disconnect is logged and never ends the process: the node
 * keeps serving on what it has, and everything that needs NATS fails with a coded
 * error until the connection is back.
 */
import { connect } from '@nats-io/transport-node';
import { nkeyAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import type { NatsNkey } from './nats-credentials.js';
import type { Logger } from '../util/log.js';
import type { NatsUrl } from './nats-url.js';

export { DEFAULT_NATS_PORT, parseNatsUrl, type NatsUrl } from './nats-url.js';

export type { NatsConnection };

export interface NatsConnectOptions {
  readonly url: NatsUrl;
  /** The client name the server shows (e.g. `baton-NODE`). */
  readonly name: string;
  readonly log: Logger;
  /** Bound on the first connect. Default 5000 ms. */
  readonly connectTimeoutMs?: number;
  /** Wait between reconnect attempts. Default 500 ms. */
  readonly reconnectWaitMs?: number;
  /** The node's own credentials (nats-credentials.ts); none: the server must not require any. */
  readonly nkey?: NatsNkey;
}

/** The first connect found no NATS (refused, timed out): thrown by {@link connectNats}; worth another try later. */
export class NatsConnectError extends Error {
  override readonly name = 'NatsConnectError';
  readonly code = 'BATON_ERR_NATS_UNREACHABLE';
}

/**
 * NATS answered and refused this node's credentials: thrown by {@link connectNats}.
 * Not a passing fault: trying again changes nothing until an operator fixes them.
 */
export class NatsRefusedError extends Error {
  override readonly name = 'NatsRefusedError';
  readonly code = 'BATON_ERR_NATS_REFUSED';
}

/**
 * Connects to NATS (first attempt bounded by `connectTimeoutMs`), then reconnects
 * forever on loss, logging each change of status. Close it with `drain()` or `close()`.
 * Rejects with {@link NatsConnectError} when NATS does not answer, {@link NatsRefusedError}
 * when it refuses the credentials.
 */
export async function connectNats(opts: NatsConnectOptions): Promise<NatsConnection> {
  const timeout = opts.connectTimeoutMs ?? 5_000;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: opts.url.url,
      name: opts.name,
      timeout,
      maxReconnectAttempts: -1,
      reconnectTimeWait: opts.reconnectWaitMs ?? 500,
      // Pings find a dead server whose TCP connection never closed (a killed machine).
      pingInterval: 5_000,
      maxPingOut: 2,
      ...(opts.nkey ? { authenticator: nkeyAuthenticator(opts.nkey.seed) } : {}),
    });
  } catch (e) {
    const message = (e as Error).message;
    if (/authoriz|authenticat/i.test(message)) {
      const who = opts.nkey ? `the NKey ${opts.nkey.publicKey} (seed in ${opts.nkey.file})` : 'no credentials (give the node its own with --nats-nkey FILE)';
      throw new NatsRefusedError(`NATS at ${opts.url.url} refused this node: it presented ${who}: ${message}`, { cause: e });
    }
    throw new NatsConnectError(`cannot reach NATS at ${opts.url.url}: ${message}`, { cause: e });
  }
  void watchStatus(nc, opts.url.url, opts.log);
  return nc;
}

/** Logs connection changes until the connection closes; never throws. */
async function watchStatus(nc: NatsConnection, url: string, log: Logger): Promise<void> {
  try {
    for await (const s of nc.status()) {
      switch (s.type) {
        case 'disconnect':
          log.warn('NATS connection lost; serving on, reconnecting', { nats: url });
          break;
        case 'reconnect':
          log.info('NATS connection back', { nats: url });
          break;
        case 'error':
          log.warn('NATS connection error', { nats: url, error: String((s as { error?: unknown }).error ?? '') });
          break;
        default:
          break;
      }
    }
  } catch (e) {
    log.warn('NATS status stream ended', { nats: url, error: (e as Error).message });
  }
  const err = await nc.closed();
  if (err) log.warn('NATS connection closed', { nats: url, error: err.message });
}
