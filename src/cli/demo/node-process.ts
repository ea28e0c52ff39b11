/**
 * One Baton node of `baton demo --nodes` as a child process: `baton cluster --join
 * NATS --node NAME` on loopback, as an operator runs it, ready once it prints its
 * start line (bounded), from which its TLS port and certificate fingerprint are read.
 * `kill()` is the death of a whole node (SIGKILL: its sockets die with it); `stop()`
 * ends it (SIGTERM, then SIGKILL after a bound). Both are idempotent. It runs in its
 * own process group, so only the demo decides when it ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The `baton` command itself (bin/ is three folders up from src/cli/demo/ and from dist/cli/demo/ alike). */
const BIN = fileURLToPath(new URL('../../../bin/baton.mjs', import.meta.url));

/** `baton: ... on 127.0.0.1:PORT -> ...; certificate sha256 FP (...) ...; node NAME of cluster ...` */
const START_LINE = /^baton: \d+ relays? on 127\.0\.0\.1:(\d+) -> .*?; certificate sha256 (\S+) .*; node (\S+) of cluster /m;

/** Output kept for an error message: the last this many characters. */
const OUTPUT_TAIL = 4_000;

export interface NodeProcessOptions {
  readonly name: string;
  readonly cluster: string;
  readonly natsUrl: string;
  readonly backendPort: number;
  readonly relays: number;
  readonly watchdogMs: number;
  /** Bound on the start line. */
  readonly readyTimeoutMs: number;
  /** Gives up the start (the child killed), e.g. on Ctrl-C. */
  readonly signal?: AbortSignal;
}

export class NodeProcess {
  /** The node's TLS port on 127.0.0.1. */
  port = 0;
  /** sha256 fingerprint of the certificate it serves (the cluster's active version). */
  fingerprint256 = '';
  private output = '';
  private readonly exited: Promise<void>;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const keep = (d: Buffer) => (this.output = (this.output + d.toString()).slice(-OUTPUT_TAIL));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last few thousand characters it printed. */
  tail(): string {
    return this.output;
  }

  /** Spawns the node and resolves once it serves; rejects (the child killed) on an early exit or after the bound. */
  static async start(opts: NodeProcessOptions): Promise<NodeProcess> {
    const args = [
      BIN, 'cluster', '--relays', String(opts.relays), '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${opts.backendPort}`,
      '--watchdog-ms', String(opts.watchdogMs), '--admin', 'off', '--drain-timeout', '0', '--log-level', 'warn',
      '--join', opts.natsUrl, '--node', opts.name, '--cluster-name', opts.cluster,
    ];
    // The environment goes along: BATON_FROM_SOURCE picks the same code as this process runs.
    // Its own process group: a terminal's Ctrl-C reaches the demo alone, which stops the nodes
    // in order (a node that got it too would close its clients' connections under them).
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const node = new NodeProcess(opts.name, child);
    let timer: NodeJS.Timeout | undefined;
    let onData: (() => void) | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        onData = () => {
          const m = START_LINE.exec(node.output);
          if (!m) return;
          node.port = Number(m[1]);
          node.fingerprint256 = m[2]!;
          resolve();
        };
        child.stdout!.on('data', onData);
        child.once('error', (e) => reject(new Error(`cannot run baton cluster for ${opts.name}: ${e.message}`)));
        void node.exited.then(() => reject(new Error(`node ${opts.name} exited (code ${child.exitCode ?? child.signalCode}) before serving:\n${node.output}`)));
        timer = setTimeout(() => reject(new Error(`node ${opts.name} not serving after ${opts.readyTimeoutMs} ms:\n${node.output}`)), opts.readyTimeoutMs);
        onAbort = () => reject(new Error(`start of node ${opts.name} given up`));
        if (opts.signal?.aborted) onAbort();
        opts.signal?.addEventListener('abort', onAbort, { once: true });
      });
    } catch (e) {
      await node.kill();
      throw e;
    } finally {
      clearTimeout(timer);
      if (onData) child.stdout!.off('data', onData);
      if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
    }
    return node;
  }

  /** SIGKILL: the whole node dies at once, as a machine does. Resolves once it is gone. */
  async kill(): Promise<void> {
    // A child that never spawned has no exit to wait for.
    if (this.child.pid === undefined) return;
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGKILL without waiting: for a process that is exiting now and cannot wait. */
  killNow(): void {
    if (this.child.pid !== undefined && this.alive) this.child.kill('SIGKILL');
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Resolves once it is gone. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.child.pid === undefined) return;
    if (!this.alive) return this.exited;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}
