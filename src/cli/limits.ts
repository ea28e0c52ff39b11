/**
 * `baton cluster`'s connection deadlines and limit: `--handshake-timeout`,
 * `--idle-timeout`, `--backend-connect-timeout` (durations: `10s`, `500ms`, `5m`; a
 * bare number is seconds; 0 turns the deadline off) and `--max-connections`, or the
 * configuration file's `handshakeTimeoutMs`, `idleTimeoutMs`, `backendConnectTimeoutMs`
 * and `maxConnections`. Flags override the file, which overrides the defaults.
 */
import type { ClusterFileConfig } from '../cluster/config-file.js';
import { DEFAULT_DEADLINES, type DeadlineSettings } from '../relay/deadlines.js';
import { CliError, parseWholeNumber } from './errors.js';

export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const MAX_MAX_CONNECTIONS = 100_000;
/** The longest deadline we take: a day. */
export const MAX_TIMEOUT_MS = 86_400_000;

export interface ConnectionLimits extends DeadlineSettings {
  readonly maxConnections: number;
}

export interface RawLimitFlags {
  readonly handshakeTimeout?: string;
  readonly idleTimeout?: string;
  readonly backendConnectTimeout?: string;
  readonly maxConnections?: string;
}

/** `--x <duration>` options, for commander: [flags, description]. */
export const LIMIT_OPTIONS: readonly (readonly [string, string])[] = [
  ['--handshake-timeout <duration>', `close a client that has not completed its handshake in this time, e.g. 10s, 500ms; 0: never (default: ${DEFAULT_DEADLINES.handshakeTimeoutMs / 1000}s)`],
  ['--idle-timeout <duration>', `close an established connection (close_notify) after this long without a byte either way; 0: never (default: ${DEFAULT_DEADLINES.idleTimeoutMs / 1000}s)`],
  ['--backend-connect-timeout <duration>', `give up a backend connect after this long (the client gets a fatal alert); 0: never (default: ${DEFAULT_DEADLINES.backendConnectTimeoutMs / 1000}s)`],
  ['--max-connections <n>', `connections served at once; more wait, unread, until one ends (default: ${DEFAULT_MAX_CONNECTIONS})`],
];

/** A duration flag: `500ms`, `10s`, `5m`, or a bare number of seconds; whole milliseconds from 0 to a day. */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  const ms = m ? Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000) : NaN;
  if (!Number.isFinite(ms) || !Number.isInteger(ms)) {
    throw new CliError(`${flag} must be a duration such as 10s, 500ms or 5m (0: off), got "${value}"`);
  }
  if (ms > MAX_TIMEOUT_MS) throw new CliError(`${flag} must be at most 24 hours, got "${value}"`);
  return ms;
}

/** The limits from the flags typed, over the file's, over the defaults. */
export function parseLimits(raw: RawLimitFlags, file?: ClusterFileConfig): ConnectionLimits {
  const pick = (flag: string, v: string | undefined, fromFile: number | undefined, fallback: number) =>
    v !== undefined ? parseDuration(flag, v) : (fromFile ?? fallback);
  return {
    handshakeTimeoutMs: pick('--handshake-timeout', raw.handshakeTimeout, file?.handshakeTimeoutMs, DEFAULT_DEADLINES.handshakeTimeoutMs),
    idleTimeoutMs: pick('--idle-timeout', raw.idleTimeout, file?.idleTimeoutMs, DEFAULT_DEADLINES.idleTimeoutMs),
    backendConnectTimeoutMs: pick('--backend-connect-timeout', raw.backendConnectTimeout, file?.backendConnectTimeoutMs, DEFAULT_DEADLINES.backendConnectTimeoutMs),
    maxConnections:
      raw.maxConnections !== undefined
        ? parseWholeNumber('--max-connections', raw.maxConnections, 1, MAX_MAX_CONNECTIONS)
        : (file?.maxConnections ?? DEFAULT_MAX_CONNECTIONS),
  };
}

/** The limits as restart-only settings, named as file fields (a reload cannot change them). */
export function limitFields(l: ConnectionLimits): Record<string, string> {
  return {
    handshakeTimeoutMs: String(l.handshakeTimeoutMs),
    idleTimeoutMs: String(l.idleTimeoutMs),
    backendConnectTimeoutMs: String(l.backendConnectTimeoutMs),
    maxConnections: String(l.maxConnections),
  };
}
