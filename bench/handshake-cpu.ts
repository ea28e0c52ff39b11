/**
 * Where a clustered handshake's CPU goes: CPU per connection of each thread of three
 * terminators, side by side in one run, each fed the same load (N connections, L in
 * flight, each a full handshake, one byte echoed through the backend, then closed):
 *
 * - `tcp`: a plain Node TCP proxy (accept, backend connect, pipe both ways), no TLS:
 *   the floor of any relay written on Node's sockets;
 * - `node-tls`: `tls.createServer` piped to the backend, what a Node user writes;
 * - `baton`: `baton cluster` with its defaults (or the relay count given).
 *
 * The load client and the echo backend run in child processes of this one, so the
 * terminator's CPU is its own; it is read per thread from /proc (Linux only) after a
 * warm-up. Node does not name its threads: the main thread is told apart (its id is the
 * process id); Baton's relay workers are the other large rows, V8's GC helpers the small ones.
 *
 *   npx tsx bench/handshake-cpu.ts [--connections 4000] [--loops 16] [--relays 3] [--warm-up connections/4] [--resume] [--rounds 1] [--only baton,node-tls,tcp]
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const CERT = `${ROOT}test/fixtures/certs/ecdsa-p256.pem`;
const KEY = `${ROOT}test/fixtures/certs/ecdsa-p256-key.pem`;
const SELF = fileURLToPath(import.meta.url);
const START_MS = 60_000;
const RUN_MS = 10 * 60_000;
/** Linux reports thread CPU in clock ticks; 100 per second on every kernel we run on. */
const HZ = 100;

type Kind = 'baton' | 'node-tls' | 'tcp';

/** Child roles: the backend, the two reference terminators and the load client. */
const role = process.env.HANDSHAKE_CPU_ROLE;
if (role === 'backend') {
  const s = net.createServer((c) => c.pipe(c).on('error', () => c.destroy())).listen(0, '127.0.0.1', () => process.send!((s.address() as net.AddressInfo).port));
} else if (role === 'tcp' || role === 'node-tls') {
  const backend = Number(process.env.BACKEND_PORT);
  const relay = (client: net.Socket) => {
    const up = net.connect({ host: '127.0.0.1', port: backend, noDelay: true });
    const done = () => (client.destroy(), up.destroy());
    for (const s of [client, up]) s.on('error', done).on('close', done);
    client.pipe(up);
    up.pipe(client);
  };
  const server =
    role === 'tcp'
      ? net.createServer({ noDelay: true }, relay)
      : tls.createServer({ cert: readFileSync(CERT), key: readFileSync(KEY), minVersion: 'TLSv1.3', ecdhCurve: 'X25519:P-256', noDelay: true }, relay);
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as net.AddressInfo).port));
} else if (role === 'load') {
  const port = Number(process.env.PORT);
  const total = Number(process.env.COUNT);
  const plain = process.env.PLAIN === '1';
  const resume = process.env.RESUME === '1';
  let started = 0;
  let errors = 0;
  let resumed = 0;
  /** One connection; `session` resumes (each loop keeps the newest ticket it got). */
  const one = (session: Buffer | undefined) =>
    new Promise<Buffer | undefined>((resolve) => {
      const opts = { host: '127.0.0.1', port };
      let latest = session;
      const s: net.Socket = plain ? net.connect(opts, () => s.write('x')) : tls.connect({ ...opts, rejectUnauthorized: false, session }, () => s.write('x'));
      if (!plain) s.on('session', (t: Buffer) => (latest = t));
      s.once('data', () => {
        if (!plain && (s as tls.TLSSocket).isSessionReused()) resumed++;
        s.end();
      });
      s.on('close', () => resolve(resume ? latest : undefined));
      s.on('error', () => errors++);
    });
  const loop = async () => {
    let session: Buffer | undefined;
    while (started < total) {
      started++;
      session = await one(session);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Number(process.env.LOOPS) }, loop));
  process.send!({ errors, resumed, ms: performance.now() - t0 });
} else {
  await main();
}

interface ThreadTicks {
  /** The kernel's thread name (comm); Node 20 names none of its threads, later Nodes do. */
  name: string;
  readonly user: number;
  readonly sys: number;
}

/** utime + stime of every live thread of `pid`, by thread id. */
function threads(pid: number): Map<string, ThreadTicks> {
  const out = new Map<string, ThreadTicks>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(tid, { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), user: Number(f[11]), sys: Number(f[12]) });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

function child(env: Record<string, string>, args: string[] = []): ChildProcess {
  return fork(SELF, args, { env: { ...process.env, ...env }, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
}

function message<T>(c: ChildProcess, what: string, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    c.once('message', (m) => (clearTimeout(t), resolve(m as T)));
    c.once('exit', (code) => (clearTimeout(t), reject(new Error(`${what}: exited with ${code}`))));
  });
}

async function startTerminator(kind: Kind, backendPort: number, relays: string | undefined): Promise<{ proc: ChildProcess; port: number }> {
  if (kind !== 'baton') {
    const proc = child({ HANDSHAKE_CPU_ROLE: kind, BACKEND_PORT: String(backendPort) });
    return { proc, port: await message<number>(proc, kind, START_MS) };
  }
  const args = [`${ROOT}bin/baton.mjs`, 'cluster', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backendPort}`, '--cert', CERT, '--key', KEY, '--admin', 'off'];
  if (relays) args.push('--relays', relays);
  // HANDSHAKE_CPU_NODE_ARGS: node flags for the cluster (e.g. --perf-basic-prof for `perf record`).
  const nodeArgs = (process.env.HANDSHAKE_CPU_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  // The output up to the start line; not kept after it (trace flags make a lot).
  let text = '';
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`baton cluster did not start in ${START_MS} ms:\n${text}`)), START_MS);
    const onData = (d: Buffer) => {
      text += d.toString();
      const m = / on \[?[^\s\]]+\]?:(\d+) -> backend /.exec(text);
      if (m) (clearTimeout(t), proc.stdout!.off('data', onData), resolve(Number(m[1])));
    };
    proc.stdout!.on('data', onData);
    proc.once('exit', (code) => (clearTimeout(t), reject(new Error(`baton cluster exited with ${code}:\n${text}`))));
  });
  // HANDSHAKE_CPU_STDOUT=FILE: keep the cluster's output (e.g. --trace-deopt lines) in FILE.
  if (process.env.HANDSHAKE_CPU_STDOUT) {
    // What came before the start line matched is in `text`: the file starts with it.
    const file = createWriteStream(process.env.HANDSHAKE_CPU_STDOUT);
    file.write(text);
    proc.stdout!.pipe(file);
  } else proc.stdout!.resume();
  return { proc, port };
}

async function measure(kind: Kind, backendPort: number, count: number, warmUp: number, loops: number, relays: string | undefined, resume: boolean): Promise<void> {
  const { proc, port } = await startTerminator(kind, backendPort, relays);
  const load = (n: number) => message<{ errors: number; resumed: number; ms: number }>(child({ HANDSHAKE_CPU_ROLE: 'load', PORT: String(port), COUNT: String(n), LOOPS: String(loops), PLAIN: kind === 'tcp' ? '1' : '0', RESUME: resume ? '1' : '0' }), 'load', RUN_MS);
  try {
    await load(warmUp);
    const before = threads(proc.pid!);
    // HANDSHAKE_CPU_PERF=FILE: `perf record` the terminator over the measured run (CPU samples, not wall time).
    const perf = process.env.HANDSHAKE_CPU_PERF ? spawn('perf', ['record', '-q', '-F', '1999', '-g', '-p', String(proc.pid), '-o', process.env.HANDSHAKE_CPU_PERF], { stdio: 'inherit' }) : null;
    const run = await load(count);
    const after = threads(proc.pid!);
    if (perf) await new Promise((resolve) => perf.once('exit', resolve).kill('SIGINT'));
    const perConn = (ticks: number) => (ticks * 1e6) / HZ / count;
    const rows: { main: boolean; name: string; user: number; sys: number }[] = [];
    for (const [tid, t] of after) {
      const b = before.get(tid) ?? { name: t.name, user: 0, sys: 0 };
      const row = { main: tid === String(proc.pid), name: t.name, user: perConn(t.user - b.user), sys: perConn(t.sys - b.sys) };
      if (row.user + row.sys > 0) rows.push(row);
    }
    // Threads that ended during the run are not in `after`: none do in a steady run.
    rows.sort((a, b) => Number(b.main) - Number(a.main) || b.user + b.sys - (a.user + a.sys));
    const total = rows.reduce((sum, r) => sum + r.user + r.sys, 0);
    const label = kind === 'baton' ? `baton (${relays ?? 'default'} relays)` : kind;
    console.log(`\n${label}: ${count} connections in ${(run.ms / 1000).toFixed(1)} s, ${run.errors} errors, ${run.resumed} resumed, ${Math.round(total)} µs CPU per connection`);
    const us = (n: number) => Math.round(n).toString().padStart(6);
    for (const r of rows) console.log(`  ${(r.main ? 'main thread' : r.name).padEnd(16)} ${us(r.user + r.sys)} µs  (user ${us(r.user)}, sys ${us(r.sys)})`);
  } finally {
    proc.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string', default: '4000' },
      'warm-up': { type: 'string' },
      resume: { type: 'boolean', default: false },
      loops: { type: 'string', default: '16' },
      relays: { type: 'string' },
      rounds: { type: 'string', default: '1' },
      only: { type: 'string', default: 'tcp,node-tls,baton' },
    },
  });
  const kinds = values.only!.split(',') as Kind[];
  // V8 keeps optimizing Baton's JavaScript for thousands of handshakes (the engine runs in JS,
  // node-tls's in C++): a longer warm-up measures the steady state rather than the tier-up.
  const warmUp = values['warm-up'] === undefined ? Math.max(200, Math.floor(Number(values.connections) / 4)) : Number(values['warm-up']);
  for (const k of kinds) if (!['tcp', 'node-tls', 'baton'].includes(k)) throw new Error(`--only: unknown terminator ${k} (tcp, node-tls, baton)`);
  const backend = child({ HANDSHAKE_CPU_ROLE: 'backend' });
  const backendPort = await message<number>(backend, 'backend', START_MS);
  console.log(`CPU per connection (${values.resume ? "resumed " : ""}handshake, 1 byte echoed, close) of each terminator thread; ${values.connections} connections after ${warmUp} to warm up, ${values.loops} in flight; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  try {
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const k of kinds) await measure(k, backendPort, Number(values.connections), warmUp, Number(values.loops), values.relays, values.resume!);
    }
  } finally {
    backend.kill();
  }
}
