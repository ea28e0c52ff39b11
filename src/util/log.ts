/**
 * Structured logs: one JSON object per line (`{"level":"info","time":...,"msg":...,...fields}`),
 * levels debug < info < warn < error.
 *
 * Built on pino (10.x, Node >= 20) rather than a hand-written writer: it is the
 * well-kept JSON-lines logger for Node, its serialisation is safe with odd values
 * (cycles, bigint via our formatter, errors), and a synchronous destination keeps
 * lines in order with the process's other output and flushed before `process.exit`.
 *
 * Secrets never reach a line: every field whose name looks like key material
 * (key, secret, token, snapshot, password, private, authorization) is replaced by
 * `<redacted>` (names ending in File or Path are locations, kept), byte arrays print as their length only, and any string that holds a
 * PEM private key block is replaced whole. Messages are ours and never carry secrets.
 */
import { pino, type DestinationStream } from 'pino';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `bindings` to every line (redacted like any field). */
  child(bindings: LogFields): Logger;
  /** Whether a line at `level` would be written. */
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where lines go; default stdout, written synchronously. */
  readonly destination?: { write(line: string): unknown };
  /** Fields on every line, e.g. `{ component: 'admin' }`. */
  readonly base?: LogFields;
}

/** Field names that may hold key material or credentials (a `...File`/`...Path` names where one is kept, not it). */
const SECRET_NAME = /key|secret|token|snapshot|password|passphrase|private|authorization|cookie/i;
const PATH_NAME = /(File|Path)$/;
/** A PEM block of a private key (PKCS#8, SEC1, PKCS#1, encrypted). */
const PEM_PRIVATE = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
export const REDACTED = '<redacted>';
const MAX_DEPTH = 8;

/**
 * A copy of `value` safe to log: secret-named fields, PEM private keys and raw
 * bytes removed; bigints as decimal strings; depth and cycles bounded.
 */
export function redact(value: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (typeof value === 'string') return PEM_PRIVATE.test(value) ? REDACTED : value;
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  if (value instanceof ArrayBuffer) return `<${value.byteLength} bytes>`;
  if (value instanceof Error) {
    return { type: value.name, message: redact(value.message, depth + 1, seen), ...('code' in value ? { code: redact(value.code) } : {}) };
  }
  if (seen.has(value)) return '<cycle>';
  if (depth >= MAX_DEPTH) return '<deep>';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1, seen));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_NAME.test(k) && !PATH_NAME.test(k) ? REDACTED : redact(v, depth + 1, seen);
    return out;
  } finally {
    seen.delete(value);
  }
}

function wrap(p: pino.Logger<never>, level: LogLevel): Logger {
  const write = (l: LogLevel) => (msg: string, fields?: LogFields) => {
    if (fields) p[l](fields, msg);
    else p[l](msg);
  };
  return {
    level,
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    child: (bindings) => wrap(p.child(redact(bindings) as Record<string, unknown>), level),
    enabled: (l) => p.isLevelEnabled(l),
  };
}

/** A JSON-lines logger at `level`. */
export function createLogger(opts: LoggerOptions): Logger {
  const destination: DestinationStream =
    opts.destination !== undefined ? { write: (line: string) => void opts.destination!.write(line) } : pino.destination({ dest: 1, sync: true });
  const p = pino(
    {
      level: opts.level,
      base: opts.base ? (redact(opts.base) as Record<string, unknown>) : null,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        bindings: (bindings) => redact(bindings) as Record<string, unknown>,
        log: (obj) => redact(obj) as Record<string, unknown>,
      },
    },
    destination,
  );
  return wrap(p, opts.level);
}

/** A logger that writes nothing (tests, embedding). */
export const silentLogger: Logger = {
  level: 'error',
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
  enabled: () => false,
};
