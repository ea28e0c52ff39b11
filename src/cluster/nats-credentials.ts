/**
 * A node's own credentials for NATS: an NKey user seed in a file (`--nats-nkey FILE`,
 * or `nats.nkeyFile`), the way NATS means each client to prove who it is. The server
 * lists each node's public key (`authorization { users = [ { nkey: U... } ] }`); the
 * node answers the server's challenge with a signature, so the seed never crosses the
 * wire. The seed is a secret: it is read here, checked, and handed to the client; no
 * message, log line or error ever carries it, only the file's path.
 */
import { readFileSync, statSync } from 'node:fs';
import { nkeys } from '@nats-io/nats-core';

/** A seed file that cannot be used; the message names the file and why, never its content. */
export class NatsCredentialsError extends Error {
  override readonly name = 'NatsCredentialsError';
  readonly code = 'BATON_ERR_NATS_CREDENTIALS';
}

/** A node's NKey: the seed for the client, the public key for messages and status. */
export interface NatsNkey {
  readonly seed: Uint8Array;
  /** The public key (`U...`): what the server's configuration lists; safe to show. */
  readonly publicKey: string;
  /** Where the seed was read from. */
  readonly file: string;
}

/**
 * Reads and checks the NKey user seed in `file` (one line `SU...`, as `nk -gen user`
 * writes it). Refuses a file that others may read (as ssh does with keys): the seed
 * is the node's identity in the cluster.
 */
export function readNkeySeedFile(file: string, flag = '--nats-nkey'): NatsNkey {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new NatsCredentialsError(`${flag} ${file}: not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new NatsCredentialsError(
        `${flag} ${file}: the seed is readable by others (mode ${(st.mode & 0o777).toString(8)}); make it private: chmod 600 ${file}`,
      );
    }
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof NatsCredentialsError) throw e;
    const err = e as NodeJS.ErrnoException;
    throw new NatsCredentialsError(`${flag} ${file}: cannot read it (${err.code ?? err.message})`);
  }
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#') && !l.startsWith('-'));
  const seedText = lines.find((l) => l.startsWith('S'));
  if (seedText === undefined || !seedText.startsWith('SU')) {
    throw new NatsCredentialsError(`${flag} ${file}: no NKey user seed in it (a line starting with SU, as \`nk -gen user\` writes)`);
  }
  const seed = new TextEncoder().encode(seedText);
  let publicKey: string;
  try {
    publicKey = nkeys.fromSeed(seed).getPublicKey();
  } catch {
    throw new NatsCredentialsError(`${flag} ${file}: the SU line is not a valid NKey user seed`);
  }
  return { seed, publicKey, file };
}
