/**
 * `baton cluster`'s connection deadlines and limits: `--handshake-timeout`,
 * `--idle-timeout`, `--backend-connect-timeout` (durations: `10s`, `500ms`, `5m`; a
 * bare number is seconds; 0 turns the deadline off), `--max-connections`, the caps
 * `--max-handshake-ccs`, `--max-handshake-warning-alerts`, `--max-unread-key-updates`
 * and the budget `--retained-budget` (a size: `256MiB`, `1GiB`, a bare number of
 * bytes), or the configuration file's `handshakeTimeoutMs`, `idleTimeoutMs`,
 * `backendConnectTimeoutMs`, `maxConnections`, `maxHandshakeChangeCipherSpecs`,
 * `maxHandshakeWarningAlerts`, `maxUnreadKeyUpdates` and `retainedBudgetBytes`. Flags
 * override the file, which overrides the defaults. All of them need a restart.
 */
import type { ClusterFileConfig } from '../cluster/config-file.js';
import { DEFAULT_MAX_UNREAD_KEY_UPDATES, DEFAULT_RETAINED_BUDGET_BYTES } from '../cluster/cluster.js';
import { DEFAULT_DEADLINES, type DeadlineSettings } from '../relay/deadlines.js';
import { DEFAULT_HANDSHAKE_NOISE_CAP } from '../tls/index.js';
import { CliError, parseWholeNumber } from './errors.js';

export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const MAX_MAX_CONNECTIONS = 100_000;
/** The longest deadline we take: a day. */
export const MAX_TIMEOUT_MS = 86_400_000;

/** The largest count a cap takes. */
export const MAX_CAP = 100_000;
/** The retained-input budget's bounds: 1 MiB to 64 GiB. */
export const MIN_RETAINED_BUDGET = 1 << 20;
export const MAX_RETAINED_BUDGET = 64 * 2 ** 30;

export interface ConnectionLimits extends DeadlineSettings {
  readonly maxConnections: number;
  /** Dummy change_cipher_spec records / warning alerts taken during a handshake; the next is unexpected_message. */
  readonly maxHandshakeChangeCipherSpecs: number;
  readonly maxHandshakeWarningAlerts: number;
  /** KeyUpdates answered to a client that does not read its output; the next closes it. */
  readonly maxUnreadKeyUpdates: number;
  /** Retained input of all connections above which connections holding more than their share are not read. */
  readonly retainedBudgetBytes: number;
}

export interface RawLimitFlags {
  readonly handshakeTimeout?: string;
  readonly idleTimeout?: string;
  readonly backendConnectTimeout?: string;
  readonly maxConnections?: string;
  readonly maxHandshakeCcs?: string;
  readonly maxHandshakeWarningAlerts?: string;
  readonly maxUnreadKeyUpdates?: string;
  readonly retainedBudget?: string;
}

/** `--x <duration>` options, for commander: [flags, description]. */
export const LIMIT_OPTIONS: readonly (readonly [string, string])[] = [
  ['--handshake-timeout <duration>', `close a client that has not completed its handshake in this time, e.g. 10s, 500ms; 0: never (default: ${DEFAULT_DEADLINES.handshakeTimeoutMs / 1000}s)`],
  ['--idle-timeout <duration>', `close an established connection (close_notify) after this long without a byte either way; 0: never (default: ${DEFAULT_DEADLINES.idleTimeoutMs / 1000}s)`],
  ['--backend-connect-timeout <duration>', `give up a backend connect after this long (the client gets a fatal alert); 0: never (default: ${DEFAULT_DEADLINES.backendConnectTimeoutMs / 1000}s)`],
  ['--max-connections <n>', `connections served at once; more wait, unread, until one ends (default: ${DEFAULT_MAX_CONNECTIONS})`],
  ['--max-handshake-ccs <n>', `change_cipher_spec records a client may send during a handshake; one more: unexpected_message (default: ${DEFAULT_HANDSHAKE_NOISE_CAP})`],
  ['--max-handshake-warning-alerts <n>', `warning alerts (user_canceled) a client may send during a handshake; one more: unexpected_message (default: ${DEFAULT_HANDSHAKE_NOISE_CAP})`],
  ['--max-unread-key-updates <n>', `KeyUpdates answered to a client that asks for them but does not read its output; one more closes it (default: ${DEFAULT_MAX_UNREAD_KEY_UPDATES})`],
  ['--retained-budget <size>', `input retained for replay, all connections together, above which connections holding more than their share are not read until it halves, e.g. 256MiB, 1GiB (default: ${DEFAULT_RETAINED_BUDGET_BYTES / 2 ** 20}MiB)`],
];

/** A size flag: `1048576`, `512KiB`, `256MiB`, `1GiB` (KB/MB/GB and k/m/g mean the same powers of 1024); whole bytes. */
export function parseSize(flag: string, value: string, min: number, max: number): number {
  const m = /^(\d+(?:\.\d+)?)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)$/i.exec(value.trim());
  const unit = (m?.[2] ?? '').toLowerCase().replace(/i?b$/, '');
  const bytes = m ? Math.round(Number(m[1]) * (unit === 'k' ? 2 ** 10 : unit === 'm' ? 2 ** 20 : unit === 'g' ? 2 ** 30 : 1)) : NaN;
  if (!Number.isSafeInteger(bytes)) throw new CliError(`${flag} must be a size such as 256MiB, 1GiB or a number of bytes, got "${value}"`);
  if (bytes < min || bytes > max) throw new CliError(`${flag} must be from ${min / 2 ** 20}MiB to ${max / 2 ** 30}GiB, got "${value}"`);
  return bytes;
}

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
  /** The flag's value if typed (through `parse`), else the file's, else the default. */
  const pick = (typed: string | undefined, parse: (v: string) => number, fromFile: number | undefined, fallback: number) =>
    typed !== undefined ? parse(typed) : (fromFile ?? fallback);
  const duration = (flag: string) => (v: string) => parseDuration(flag, v);
  const whole = (flag: string, min: number, max: number) => (v: string) => parseWholeNumber(flag, v, min, max);
  return {
    handshakeTimeoutMs: pick(raw.handshakeTimeout, duration('--handshake-timeout'), file?.handshakeTimeoutMs, DEFAULT_DEADLINES.handshakeTimeoutMs),
    idleTimeoutMs: pick(raw.idleTimeout, duration('--idle-timeout'), file?.idleTimeoutMs, DEFAULT_DEADLINES.idleTimeoutMs),
    backendConnectTimeoutMs: pick(raw.backendConnectTimeout, duration('--backend-connect-timeout'), file?.backendConnectTimeoutMs, DEFAULT_DEADLINES.backendConnectTimeoutMs),
    maxConnections: pick(raw.maxConnections, whole('--max-connections', 1, MAX_MAX_CONNECTIONS), file?.maxConnections, DEFAULT_MAX_CONNECTIONS),
    // A compatible client sends one change_cipher_spec: at least one is taken.
    maxHandshakeChangeCipherSpecs: pick(raw.maxHandshakeCcs, whole('--max-handshake-ccs', 1, MAX_CAP), file?.maxHandshakeChangeCipherSpecs, DEFAULT_HANDSHAKE_NOISE_CAP),
    maxHandshakeWarningAlerts: pick(raw.maxHandshakeWarningAlerts, whole('--max-handshake-warning-alerts', 0, MAX_CAP), file?.maxHandshakeWarningAlerts, DEFAULT_HANDSHAKE_NOISE_CAP),
    maxUnreadKeyUpdates: pick(raw.maxUnreadKeyUpdates, whole('--max-unread-key-updates', 0, MAX_CAP), file?.maxUnreadKeyUpdates, DEFAULT_MAX_UNREAD_KEY_UPDATES),
    retainedBudgetBytes: pick(
      raw.retainedBudget,
      (v) => parseSize('--retained-budget', v, MIN_RETAINED_BUDGET, MAX_RETAINED_BUDGET),
      file?.retainedBudgetBytes,
      DEFAULT_RETAINED_BUDGET_BYTES,
    ),
  };
}

/** The limits as restart-only settings, named as file fields (a reload cannot change them). */
export function limitFields(l: ConnectionLimits): Record<string, string> {
  return {
    handshakeTimeoutMs: String(l.handshakeTimeoutMs),
    idleTimeoutMs: String(l.idleTimeoutMs),
    backendConnectTimeoutMs: String(l.backendConnectTimeoutMs),
    maxConnections: String(l.maxConnections),
    maxHandshakeChangeCipherSpecs: String(l.maxHandshakeChangeCipherSpecs),
    maxHandshakeWarningAlerts: String(l.maxHandshakeWarningAlerts),
    maxUnreadKeyUpdates: String(l.maxUnreadKeyUpdates),
    retainedBudgetBytes: String(l.retainedBudgetBytes),
  };
}
