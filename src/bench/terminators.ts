/**
 * The terminators under test, each in its own process so its CPU time (every
 * thread) can be read from /proc: Baton (`bin/baton.mjs cluster`), Node's `tls`
 * (node-tls-terminator.ts), and any external command from a template.
 */
import net from 'node:net';
import { BATON_BIN, BATON_ENV, JsonChild, PACKAGE_ROOT, programArgs } from './child.js';

export type TerminatorSpec =
  | { readonly kind: 'node-tls' }
  | {
      readonly kind: 'baton';
      readonly relays: number;
      readonly replication: boolean;
      /** Record protection asked for: the native addon, or node:crypto (BATON_NATIVE=0). */
      readonly protection: RecordProtection;
      /** Session tickets (`--tickets`); absent: stateless. */
      readonly tickets?: TicketMode;
    }
  | { readonly kind: 'external'; readonly name: string; readonly template: string };

export type RecordProtection = 'native' | 'node:crypto';
export type TicketMode = 'stateless' | 'stateful';

export function specLabel(s: TerminatorSpec): string {
  if (s.kind === 'node-tls') return 'node-tls';
  if (s.kind === 'external') return s.name;
  return `baton r${s.relays} repl-${s.replication ? 'on' : 'off'}${s.protection === 'native' ? '' : ' node:crypto'}${s.tickets === 'stateful' ? ' stateful' : ''}`;
}

export interface Files {
  readonly cert: string;
  readonly key: string;
  /** Certificate then key in one PEM file (HAProxy's `crt`). */
  readonly pem: string;
}

export interface Running {
  readonly spec: TerminatorSpec;
  readonly port: number;
  /** The process whose CPU time (with its descendants') is measured. */
  readonly pid: number;
  /** What Baton's start line said of its record protection (null for other terminators). */
  readonly protection: string | null;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 30_000;

/** A free loopback port (for a command that cannot listen on port 0 and tell us). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on the port. */
async function untilAccepting(port: number, child: JsonChild, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!child.running) throw new Error(`${child.name} exited before listening: ${child.log.slice(-5).join(' | ')}`);
    if (Date.now() > deadline) throw new Error(`${child.name}: nothing listens on port ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface StartOptions {
  readonly backendPort: number;
  readonly files: Files;
  /** Extra environment for the terminator. */
  readonly env?: NodeJS.ProcessEnv;
  /** Extra node flags for the Node terminators (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
  readonly nodeArgs?: readonly string[];
  readonly verbose?: boolean;
}

export async function startTerminator(spec: TerminatorSpec, o: StartOptions): Promise<Running> {
  const env = { ...process.env, ...o.env, ...(spec.kind === 'baton' && spec.protection === 'node:crypto' ? { BATON_NATIVE: '0' } : {}) };
  const backend = `127.0.0.1:${o.backendPort}`;
  let child: JsonChild;
  let port: number;
  let protection: string | null = null;
  const common = { cwd: PACKAGE_ROOT, env, echoStderr: o.verbose ?? false };
  if (spec.kind === 'baton') {
    const args = [
      ...(o.nodeArgs ?? []),
      BATON_BIN,
      'cluster',
      '--relays',
      String(spec.relays),
      '--listen',
      '127.0.0.1:0',
      '--backend',
      backend,
      '--cert',
      o.files.cert,
      '--key',
      o.files.key,
      '--replication',
      spec.replication ? 'on' : 'off',
      ...(spec.tickets === 'stateful' ? ['--tickets', 'stateful'] : []),
      // A free port, not the default one another cluster on this host may hold.
      '--admin',
      '127.0.0.1:0',
    ];
    child = new JsonChild(specLabel(spec), process.execPath, args, { ...common, env: { ...env, ...BATON_ENV } });
    const m = await child.nextText(/ on \[?([^\s\]]+)\]?:(\d+) -> backend /, START_TIMEOUT_MS);
    port = Number(m[2]);
    protection = /; record protection ([^;]+)/.exec(m.input ?? '')?.[1] ?? null;
  } else if (spec.kind === 'node-tls') {
    const args = [...(o.nodeArgs ?? []), ...programArgs('./node-tls-terminator'), '--cert', o.files.cert, '--key', o.files.key, '--backend', backend];
    child = new JsonChild('node-tls', process.execPath, args, common);
    const m = await child.nextText(/listening on [^\s]+:(\d+) /, START_TIMEOUT_MS);
    port = Number(m[1]);
  } else {
    port = await freePort();
    const command = spec.template
      .replaceAll('{port}', String(port))
      .replaceAll('{backend}', backend)
      .replaceAll('{backendPort}', String(o.backendPort))
      .replaceAll('{cert}', o.files.cert)
      .replaceAll('{key}', o.files.key)
      .replaceAll('{pem}', o.files.pem);
    // exec: the measured pid is the command itself, not a shell around it.
    child = new JsonChild(spec.name, '/bin/sh', ['-c', `exec ${command}`], common);
    await untilAccepting(port, child, START_TIMEOUT_MS);
  }
  const c = child;
  return { spec, port, pid: c.pid, protection, stop: () => c.stop({ graceMs: 15_000 }) };
}
