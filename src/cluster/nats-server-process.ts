/**
 * A real `nats-server -js` run as our own child process (the Debian package
 * `nats-server`): on a free loopback port with a temporary JetStream store folder,
 * ready once it logs "Server is ready" (bounded), stopped with SIGTERM then SIGKILL
 * after a bound, its folder removed. `baton demo --nodes` runs its NATS with it, and
 * so do the suites that need NATS (test/helpers/nats-server.ts; .ci/run installs the
 * package when missing, and a missing binary fails a suite, never skips it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface NatsServer {
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  /** The server's process id (undefined if it never started). */
  readonly pid: number | undefined;
  /** The JetStream store folder (kept across {@link NatsServer.stop} with `keepStore`, for a restart). */
  readonly storeDir: string;
  /** Everything the server printed so far. */
  readonly output: () => string;
  /** SIGTERM, then SIGKILL after `graceMs`; removes the store folder unless `keepStore`. Idempotent. */
  stop(opts?: { keepStore?: boolean; graceMs?: number }): Promise<void>;
  /** SIGKILL at once (a crashed server); the store folder stays for a restart. */
  kill(): Promise<void>;
  /** SIGKILL without waiting: for a process that is exiting now and cannot wait. */
  killNow(): void;
}

export interface NatsServerOptions {
  /** Default: a free loopback port. Pass the old one to restart a stopped server in place. */
  readonly port?: number;
  /** Default: a new temporary folder. Pass the old one to restart with the same streams. */
  readonly storeDir?: string;
  /** Bound on readiness. Default 15 s. */
  readonly readyTimeoutMs?: number;
  /** A server configuration file (`-c`), e.g. an `authorization` block; the flags above override it. */
  readonly configFile?: string;
  /**
   * Its own process group, so that a terminal's Ctrl-C reaches only its parent, which
   * stops it in its turn (the demo). Default false: it shares its parent's group.
   */
  readonly ownProcessGroup?: boolean;
}

/** Where the Debian package and a hand install put it. */
const CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

/** The nats-server binary to run: {@link findNatsServer}'s, else the name as given, for spawn's error to name. */
export function natsServerBinary(): string {
  return findNatsServer() ?? (process.env.NATS_SERVER || 'nats-server');
}

/**
 * Where the nats-server binary is, or null when nowhere: $NATS_SERVER when set (and
 * then only there), else the Debian package's path, else the PATH.
 */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env): string | null {
  const chosen = env.NATS_SERVER;
  if (chosen !== undefined && chosen !== '') return existsSync(chosen) ? chosen : null;
  for (const c of CANDIDATES) if (existsSync(c)) return c;
  const path = env.PATH ?? '';
  for (const dir of path.split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  }
  return null;
}

/** A loopback port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/**
 * Starts `nats-server -js` on loopback and resolves once it is ready; rejects (the
 * process killed, a folder it made removed) when it cannot run or is not ready in time.
 */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const port = opts.port ?? (await freePort());
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'baton-nats-'));
  const config = opts.configFile !== undefined ? ['-c', opts.configFile] : [];
  const child: ChildProcess = spawn(natsServerBinary(), [...config, '-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.ownProcessGroup === true,
  });
  let output = '';
  // A binary that never started emits 'error' and no 'exit'.
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  let timer: NodeJS.Timeout | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes('Server is ready')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (e) =>
      reject(new Error(`cannot run nats-server (${natsServerBinary()}): ${e.message}; install the Debian package nats-server`)),
    );
    void exited.then(() => reject(new Error(`nats-server exited (code ${child.exitCode}) before it was ready:\n${output}`)));
    timer = setTimeout(() => reject(new Error(`nats-server not ready after ${readyTimeoutMs} ms:\n${output}`)), readyTimeoutMs);
  }).finally(() => clearTimeout(timer));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  let stopping: Promise<void> | undefined;
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    storeDir,
    output: () => output,
    stop(o = {}) {
      stopping ??= (async () => {
        if (!gone()) {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), o.graceMs ?? 5_000);
          await exited;
          clearTimeout(t);
        }
        if (!o.keepStore) rmSync(storeDir, { recursive: true, force: true });
      })();
      return stopping;
    },
    async kill() {
      if (!gone()) child.kill('SIGKILL');
      await exited;
    },
    killNow() {
      if (!gone()) child.kill('SIGKILL');
    },
  };
  try {
    await ready;
  } catch (e) {
    await server.kill();
    if (opts.storeDir === undefined) rmSync(storeDir, { recursive: true, force: true });
    throw e;
  }
  return server;
}
