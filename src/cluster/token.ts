/**
 * The admin API's bearer token: 32 random bytes (base64url) made when the cluster
 * starts, written to a file only its user can read (mode 0600 in a 0700 folder),
 * and removed again on a clean shutdown. `baton crash` and `baton status` read it
 * from the same default place, so on one host they find a running cluster with no
 * flags, as `redis-cli` finds a local Redis.
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, readFile, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Admin address used when `--admin` is not given (loopback only). */
export const DEFAULT_ADMIN = { host: '127.0.0.1', port: 9901 } as const;

/** A failure to make, write or read the token file; the message names the path and why. */
export class TokenFileError extends Error {
  override readonly name = 'TokenFileError';
  readonly code = 'BATON_ERR_TOKEN_FILE';
  constructor(
    message: string,
    /** The OS error code (ENOENT, EACCES...), when there was one. */
    readonly osCode?: string,
  ) {
    super(message);
  }
}

/** A fresh random token: 256 bits, base64url. */
export function newAdminToken(): string {
  return randomBytes(32).toString('base64url');
}

/** The folder default token files live in: `$XDG_RUNTIME_DIR/baton-<uid>` or `<tmpdir>/baton-<uid>`. */
export function defaultTokenDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_RUNTIME_DIR && env.XDG_RUNTIME_DIR.length > 0 ? env.XDG_RUNTIME_DIR : os.tmpdir();
  return path.join(base, `baton-${uid()}`);
}

/**
 * Where the token of the cluster whose admin API listens on `port` is kept by
 * default: one file per port, so clusters on different ports do not overwrite
 * each other's token.
 */
export function defaultTokenFile(port: number, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(defaultTokenDir(env), port === DEFAULT_ADMIN.port ? 'admin.token' : `admin-${port}.token`);
}

function uid(): number | string {
  return typeof process.getuid === 'function' ? process.getuid() : os.userInfo().username;
}

function reason(e: unknown): { text: string; code?: string } {
  const err = e as NodeJS.ErrnoException;
  const text = typeof err?.message === 'string' ? err.message.split(',')[0]! : String(e);
  return err?.code ? { text, code: err.code } : { text };
}

/**
 * Makes sure the default folder is ours and private. A folder in a shared /tmp
 * that someone else made (or made readable to others) could leak or plant tokens.
 */
async function ensurePrivateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new TokenFileError(`cannot create the token folder "${dir}": ${reason(e).text}`, reason(e).code);
  }
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new TokenFileError(`the token folder "${dir}" is not a directory`);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new TokenFileError(`the token folder "${dir}" belongs to another user (uid ${st.uid}); pass --token-file`);
  }
  if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
}

/**
 * Writes `token` to `file` with mode 0600, replacing any stale file (a cluster
 * that was killed leaves one behind). Returns a function that removes the file
 * again if it still holds this token.
 */
export async function writeTokenFile(file: string, token: string, opts: { privateDir?: boolean } = {}): Promise<() => Promise<void>> {
  if (opts.privateDir) await ensurePrivateDir(path.dirname(file));
  try {
    // Unlink then create exclusively: an existing file keeps its old mode on open('w').
    await unlink(file).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    const handle = await open(file, 'wx', 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(`${token}\n`, 'utf8');
    } finally {
      await handle.close();
    }
  } catch (e) {
    throw new TokenFileError(`cannot write the admin token file "${file}": ${reason(e).text}`, reason(e).code);
  }
  let removed = false;
  return async () => {
    if (removed) return;
    removed = true;
    try {
      if ((await readFile(file, 'utf8')).trim() === token) await unlink(file);
    } catch {
      // Already gone, or replaced by another cluster: nothing of ours to remove.
    }
  };
}

/** Reads a token file; the error names the file and the OS reason. */
export async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new TokenFileError(`cannot read the admin token file "${file}": ${reason(e).text}`, reason(e).code);
  }
  const token = text.trim();
  if (token.length === 0) throw new TokenFileError(`the admin token file "${file}" is empty`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new TokenFileError(`the admin token file "${file}" does not hold a token (expected one line of printable text)`);
  return token;
}
