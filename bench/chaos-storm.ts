/**
 * An independent chaos client: it drives Baton only as a user would, to check the
 * promise that a relay crash never reaches a client, under a storm of crashes.
 *
 *   npx tsx bench/chaos-storm.ts [--clients 20] [--mib 8] [--relays 3] [--interval 0.7]
 *     [--kinds throw,exit,terminate,oom,hang] [--seed N] [--timeout 600] [--no-openssl]
 *     [--json FILE] [--corrupt-at BYTE] [--rounds N] [--log-level info|debug]
 *
 * `--rounds N`: each client streams its MiB N times, over a new connection each time
 * (the storm lasts as long as the clients stream).
 *
 * `--corrupt-at BYTE` checks the checker: the echo backend flips that byte of every
 * connection, so every client must fail at exactly that byte.
 *
 * It touches nothing of src/: it spawns `node bin/baton.mjs cluster` (readiness and the
 * admin token file from its start line), crashes relays through the admin HTTP API
 * (`POST /crash {"relay":"random","kind":K}`), reads `GET /status` and `GET /metrics`,
 * and streams through the cluster with Node's `tls` client and the `openssl s_client`
 * command to an echo backend (a plain `net` server, in a child process of this script).
 *
 * Each Node client streams its MiB of a deterministic pseudo-random stream (AES-CTR
 * keystream of a per-client key derived from --seed) with backpressure, and checks every
 * echoed byte against a second copy of the same stream, incrementally. The openssl
 * client reads the same kind of stream from a temp file; its stdout file is compared
 * at the end. Every client and the whole run have deadlines; the cluster gets SIGTERM,
 * then SIGKILL after a bound; `pgrep` checks that nothing is left. Exit code 1 if any
 * client failed, any byte was lost, or any process was left behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHash, type Cipher } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, mkdtempSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HOST = '127.0.0.1';
const CHUNK = 16 * 1024;
const MIB = 1024 * 1024;
const ALL_KINDS = ['throw', 'exit', 'terminate', 'oom', 'hang'] as const;
const root = fileURLToPath(new URL('..', import.meta.url));
const self = fileURLToPath(import.meta.url);

// ---- the echo backend, when this script runs as its own child ----
const echoRole = process.argv.includes('--echo-backend');
if (echoRole) {
  // --corrupt-at N (a check of this checker): flip byte N of every connection's echo.
  const at = process.argv.indexOf('--corrupt-at');
  const corruptAt = at > 0 ? Number(process.argv[at + 1]) : -1;
  const server = net.createServer((s) => {
    s.on('error', () => s.destroy());
    if (corruptAt < 0) return void s.pipe(s);
    let seen = 0;
    s.on('data', (d: Buffer) => {
      if (corruptAt >= seen && corruptAt < seen + d.length) d[corruptAt - seen] ^= 0x55;
      seen += d.length;
      if (!s.write(d)) s.pause();
    });
    s.on('drain', () => s.resume());
    s.on('end', () => s.end());
  });
  server.listen(0, HOST, () => process.stdout.write(`echo ${(server.address() as net.AddressInfo).port}\n`));
  // The parent's end is ours: exit when it goes (stdin closes) so no orphan is left.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.resume();
}

interface Options {
  clients: number;
  mib: number;
  relays: number;
  interval: number;
  kinds: string[];
  seed: number;
  timeoutS: number;
  openssl: boolean;
  json: string | undefined;
  /** A self-check: the echo backend flips this byte of every connection (the run must fail). */
  corruptAt: number | undefined;
  /** Each client streams its MiB this many times, a new connection each time, so the storm lasts longer. */
  rounds: number;
  /** The cluster's --log-level (debug logs every connection's close and why). */
  logLevel: string;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '20' },
      mib: { type: 'string', default: '8' },
      relays: { type: 'string', default: '3' },
      interval: { type: 'string', default: '0.7' },
      kinds: { type: 'string', default: ALL_KINDS.join(',') },
      seed: { type: 'string', default: String(Date.now() % 1_000_000) },
      timeout: { type: 'string', default: '600' },
      'no-openssl': { type: 'boolean', default: false },
      json: { type: 'string' },
      'corrupt-at': { type: 'string' },
      rounds: { type: 'string', default: '1' },
      'log-level': { type: 'string', default: 'info' },
    },
  });
  const num = (name: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name}: ${JSON.stringify(v)} is not a number in [${min}, ${max}]`);
    return n;
  };
  const kinds = values.kinds.split(',').map((k) => k.trim()).filter((k) => k.length > 0);
  for (const k of kinds) if (!(ALL_KINDS as readonly string[]).includes(k)) throw new Error(`--kinds: unknown kind ${JSON.stringify(k)} (known: ${ALL_KINDS.join(', ')})`);
  if (kinds.length === 0) throw new Error('--kinds: name at least one kind');
  return {
    clients: Math.floor(num('clients', values.clients, 0, 1000)),
    mib: num('mib', values.mib, 0.001, 1024),
    relays: Math.floor(num('relays', values.relays, 1, 64)),
    interval: num('interval', values.interval, 0.01, 3600),
    kinds,
    seed: Math.floor(num('seed', values.seed, 0, 2 ** 32 - 1)),
    timeoutS: num('timeout', values.timeout, 5, 24 * 3600),
    openssl: !values['no-openssl'],
    json: values.json,
    logLevel: values['log-level'],
    rounds: Math.floor(num('rounds', values.rounds, 1, 100_000)),
    corruptAt: values['corrupt-at'] === undefined ? undefined : Math.floor(num('corrupt-at', values['corrupt-at'], 0, 2 ** 40)),
  };
}

// ---- deterministic data ----

/** A deterministic byte stream: the AES-128-CTR keystream of a key derived from (seed, name). */
class Stream {
  private readonly cipher: Cipher;
  private readonly zeros = Buffer.alloc(CHUNK);
  constructor(seed: number, name: string) {
    const k = createHash('sha256').update(`chaos-storm/${seed}/${name}`).digest();
    this.cipher = createCipheriv('aes-128-ctr', k.subarray(0, 16), k.subarray(16, 32));
  }
  next(n: number): Buffer {
    return this.cipher.update(n <= CHUNK ? this.zeros.subarray(0, n) : Buffer.alloc(n));
  }
}

/** A small seeded PRNG (mulberry32) for the crash schedule. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- results ----

interface ClientResult {
  name: string;
  ok: boolean;
  bytes: number;
  sent: number;
  verified: number;
  error?: string;
  stuck?: boolean;
  ms: number;
  /** When it failed (ISO 8601), to find it in the cluster log. */
  failedAt?: string;
}

// ---- the Node tls client ----

function nodeClient(name: string, port: number, ca: string, total: number, seed: number, deadline: number): Promise<ClientResult> {
  const t0 = performance.now();
  const out = new Stream(seed, name);
  const expect = new Stream(seed, name);
  let sent = 0;
  let verified = 0;
  let pending: Buffer = Buffer.alloc(0); // expected bytes generated but not yet matched
  return new Promise((resolve) => {
    let done = false;
    const socket = tls.connect({ host: HOST, port, ca, servername: 'localhost', minVersion: 'TLSv1.3' });
    const finish = (error?: string, stuck = false): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const r: ClientResult = { name, ok: error === undefined, bytes: total, sent, verified, ms: performance.now() - t0 };
      if (error !== undefined) {
        r.error = error;
        r.failedAt = new Date().toISOString();
      }
      if (stuck) r.stuck = true;
      if (error === undefined) socket.end();
      else socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(`deadline: stuck at ${verified} of ${total} bytes verified (${sent} sent)`, true), Math.max(0, deadline - Date.now()));
    const pump = (): void => {
      while (!done && sent < total) {
        const n = Math.min(CHUNK, total - sent);
        const chunk = out.next(n);
        sent += n;
        if (!socket.write(chunk)) return; // 'drain' calls again
      }
    };
    socket.once('secureConnect', pump);
    socket.on('drain', pump);
    socket.on('data', (d: Buffer) => {
      if (done) return;
      let off = 0;
      while (off < d.length) {
        if (pending.length === 0) {
          if (verified >= total) return finish(`${d.length - off} bytes more than were sent came back`);
          pending = expect.next(Math.min(CHUNK, total - verified));
        }
        const n = Math.min(pending.length, d.length - off);
        if (!d.subarray(off, off + n).equals(pending.subarray(0, n))) {
          let i = 0;
          while (d[off + i] === pending[i]) i++;
          verified += i;
          return finish(`byte ${verified} differs from what was sent`);
        }
        verified += n;
        off += n;
        pending = pending.subarray(n);
      }
      if (verified === total) finish();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => finish(`${e.code ?? 'error'}: ${e.message}`));
    socket.on('close', () => finish(`closed after ${verified} of ${total} bytes verified`));
  });
}

/** `rounds` streams in turn, each over a new connection; the first failure ends the client. */
async function inRounds(name: string, rounds: number, total: number, one: (round: string) => Promise<ClientResult>): Promise<ClientResult> {
  const t0 = performance.now();
  let sent = 0;
  let verified = 0;
  for (let r = 0; r < rounds; r++) {
    const x = await one(rounds === 1 ? name : `${name}/round-${r}`);
    sent += x.sent;
    verified += x.verified;
    if (!x.ok) return { ...x, name, bytes: total * rounds, sent, verified, ms: performance.now() - t0, ...(rounds > 1 ? { error: `round ${r}: ${x.error}` } : {}) };
  }
  return { name, ok: true, bytes: total * rounds, sent, verified, ms: performance.now() - t0 };
}

// ---- the openssl s_client ----

async function opensslClient(name: string, dir: string, port: number, caFile: string, total: number, seed: number, deadline: number, children: ChildProcess[]): Promise<ClientResult> {
  const input = join(dir, 'openssl-in.bin');
  const output = join(dir, 'openssl-out.bin');
  const s = new Stream(seed, name);
  const w = createWriteStream(input);
  for (let n = 0; n < total; n += CHUNK) {
    if (!w.write(s.next(Math.min(CHUNK, total - n)))) await new Promise<void>((r) => w.once('drain', () => r()));
  }
  await new Promise<void>((r, j) => w.end((e?: Error | null) => (e ? j(e) : r())));
  const t0 = performance.now();
  const inFd = openSync(input, 'r');
  const outFd = openSync(output, 'w');
  const errFile = join(dir, 'openssl-err.txt');
  const errFd = openSync(errFile, 'w');
  // -quiet implies -ign_eof: s_client keeps reading the connection after stdin's end;
  // it is stopped here once the echo is complete (or the deadline passes).
  const child = spawn('openssl', ['s_client', '-connect', `${HOST}:${port}`, '-tls1_3', '-quiet', '-servername', 'localhost', '-CAfile', caFile, '-verify_return_error'], {
    stdio: [inFd, outFd, errFd],
  });
  children.push(child);
  closeSync(inFd);
  closeSync(outFd);
  closeSync(errFd);
  let exited: number | string | null = null;
  child.on('exit', (code, signal) => (exited = code ?? signal));
  const size = (): number => statSync(output).size;
  let result: string | undefined;
  let failedAt: string | undefined;
  let stuck = false;
  child.on('exit', () => (failedAt ??= new Date().toISOString()));
  for (;;) {
    const n = size();
    if (n >= total) break;
    if (exited !== null) {
      result = `openssl exited (${exited}) after ${n} of ${total} bytes echoed: ${readFileSync(errFile, 'utf8').trim().split('\n').slice(-3).join(' | ')}`;
      break;
    }
    if (Date.now() > deadline) {
      result = `deadline: stuck at ${n} of ${total} bytes echoed`;
      stuck = true;
      break;
    }
    await sleep(100);
  }
  if (exited === null) {
    child.kill('SIGTERM');
    await waitExit(child, 3000);
  }
  const verified = await commonPrefix(input, output);
  const n = size();
  if (result === undefined && (verified !== total || n !== total)) result = n > total ? `${n - total} bytes more than were sent came back` : `byte ${verified} differs from what was sent`;
  const r: ClientResult = { name, ok: result === undefined, bytes: total, sent: total, verified, ms: performance.now() - t0 };
  if (result !== undefined) {
    r.error = result;
    r.failedAt = failedAt ?? new Date().toISOString();
  }
  if (stuck) r.stuck = true;
  return r;
}

/** Length of the common prefix of two files, read in chunks. */
async function commonPrefix(a: string, b: string): Promise<number> {
  const read = async function* (p: string): AsyncGenerator<Buffer> {
    for await (const c of createReadStream(p, { highWaterMark: 1 << 20 })) yield c as Buffer;
  };
  const ia = read(a);
  const ib = read(b);
  let ba: Buffer = Buffer.alloc(0);
  let bb: Buffer = Buffer.alloc(0);
  let same = 0;
  for (;;) {
    if (ba.length === 0) {
      const x = await ia.next();
      if (x.done) return same;
      ba = x.value;
    }
    if (bb.length === 0) {
      const x = await ib.next();
      if (x.done) return same;
      bb = x.value;
    }
    const n = Math.min(ba.length, bb.length);
    if (!ba.subarray(0, n).equals(bb.subarray(0, n))) {
      let i = 0;
      while (ba[i] === bb[i]) i++;
      return same + i;
    }
    same += n;
    ba = ba.subarray(n);
    bb = bb.subarray(n);
  }
}

// ---- processes and HTTP ----

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves with the first line of `child`'s stdout matching `re` (its match), within `ms`. */
function waitLine(child: ChildProcess, re: RegExp, ms: number, what: string): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => done(new Error(`${what}: no line matching ${re} within ${ms} ms; got: ${buf.slice(-500)}`)), ms);
    const onData = (d: Buffer): void => {
      buf += d.toString('utf8');
      for (const line of buf.split('\n')) {
        const m = line.match(re);
        if (m) return done(null, m);
      }
    };
    const onExit = (code: number | null): void => done(new Error(`${what} exited (${code}) before it was ready: ${buf.slice(-1000)}`));
    const done = (e: Error | null, m?: RegExpMatchArray): void => {
      clearTimeout(t);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (e) reject(e);
      else resolve(m!);
    };
    child.stdout!.on('data', onData);
    child.on('exit', onExit);
  });
}

interface HttpAnswer {
  status: number;
  body: string;
}

function request(port: number, token: string, method: string, path: string, body?: unknown, ms = 5000): Promise<HttpAnswer> {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      { host: HOST, port, method, path, timeout: ms, headers: { authorization: `Bearer ${token}`, ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) } },
      (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (b += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
        res.on('error', (e) => resolve({ status: 0, body: `response error: ${e.message}` }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${ms} ms`)));
    req.on('error', (e) => resolve({ status: 0, body: `request error: ${e.message}` }));
    req.end(data);
  });
}

function metric(text: string, name: string): number | null {
  const m = text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm'));
  return m ? Number(m[1]) : null;
}

/** A labelled series, as `label=value` pairs (`handshake 0, idle 0`), or null when absent. */
function series(text: string, name: string): Record<string, number> | null {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(new RegExp(`^${name}\\{[^=]+="([^"]*)"\\} ([0-9.eE+-]+)$`, 'gm'))) out[m[1]!] = Number(m[2]);
  return Object.keys(out).length > 0 ? out : null;
}

/** Processes whose command line holds `needle`, other than pgrep itself. */
function pgrep(needle: string): string[] {
  const r = spawnSync('pgrep', ['-af', needle], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter((l) => l.trim().length > 0 && !l.includes('pgrep'));
}

// ---- the run ----

async function main(): Promise<void> {
  let opts: Options;
  try {
    opts = options();
  } catch (e) {
    process.stderr.write(`chaos-storm: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const start = Date.now();
  const runDeadline = start + opts.timeoutS * 1000;
  const dir = mkdtempSync(join(tmpdir(), 'chaos-storm-'));
  const logFile = join(dir, 'cluster.log');
  const tokenFile = join(dir, 'admin.token');
  const certDir = join(root, 'test/fixtures/certs');
  const caFile = join(certDir, 'ca.pem');
  const ca = readFileSync(caFile, 'utf8');
  const children: ChildProcess[] = [];
  const total = Math.round(opts.mib * MIB);
  console.log(
    `chaos-storm: ${opts.clients} node clients${opts.openssl ? ' + openssl s_client' : ''}, ${opts.mib} MiB each${opts.rounds > 1 ? ` x ${opts.rounds} rounds` : ''}, ${opts.relays} relays, ` +
      `a crash every ~${opts.interval} s of ${opts.kinds.join('/')}, seed ${opts.seed}, deadline ${opts.timeoutS} s; files in ${dir}`,
  );

  // The echo backend: this script again, as a child.
  const echo = spawn(process.execPath, [...process.execArgv, self, '--echo-backend', ...(opts.corruptAt === undefined ? [] : ['--corrupt-at', String(opts.corruptAt)])], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(echo);
  const backendPort = Number((await waitLine(echo, /^echo (\d+)$/, 30_000, 'echo backend'))[1]);

  const listenPort = await freePort();
  const adminPort = await freePort();
  const clusterArgs = [
    join(root, 'bin/baton.mjs'), 'cluster',
    '--relays', String(opts.relays),
    '--listen', `${HOST}:${listenPort}`,
    '--backend', `${HOST}:${backendPort}`,
    '--cert', join(certDir, 'ecdsa-p256.pem'),
    '--key', join(certDir, 'ecdsa-p256-key.pem'),
    '--admin', `${HOST}:${adminPort}`,
    '--token-file', tokenFile,
    '--log-level', opts.logLevel,
  ];
  const cluster = spawn(process.execPath, clusterArgs, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BATON_FROM_SOURCE: '1' } });
  children.push(cluster);
  const log = createWriteStream(logFile);
  cluster.stdout!.on('data', (d: Buffer) => log.write(d));
  cluster.stderr!.on('data', (d: Buffer) => log.write(d));
  let clusterExit: string | null = null;
  cluster.on('exit', (code, signal) => (clusterExit = `${code ?? signal}`));

  let interrupted = false;
  const onSignal = (): void => {
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let exitCode = 0;
  const crashes: Record<string, number> = {};
  const crashFailures: { kind: string; status: number; body: string }[] = [];
  let results: ClientResult[] = [];
  let status: Record<string, unknown> | null = null;
  let metricsText = '';
  let setupError: string | null = null;
  try {
    const ready = await waitLine(cluster, /^baton: .*admin http:\/\/(\S+) \(token file (.+)\)$/, 60_000, 'baton cluster');
    const token = readFileSync(ready[2]!, 'utf8').trim();
    console.log(`cluster ready in ${((Date.now() - start) / 1000).toFixed(1)} s: listen ${HOST}:${listenPort}, admin ${ready[1]}, backend ${HOST}:${backendPort}`);

    // The clients, then the storm while they stream.
    const clientDeadline = runDeadline - 20_000; // room left for the summary and the teardown
    const running: Promise<ClientResult>[] = [];
    for (let i = 0; i < opts.clients; i++) {
      running.push(inRounds(`client-${i}`, opts.rounds, total, (n) => nodeClient(n, listenPort, ca, total, opts.seed, clientDeadline)));
    }
    const openssl = (n: string) => opensslClient(n, dir, listenPort, caFile, total, opts.seed, clientDeadline, children);
    if (opts.openssl) running.push(inRounds('openssl', opts.rounds, total, openssl).catch((e: Error) => ({ name: 'openssl', ok: false, bytes: total * opts.rounds, sent: 0, verified: 0, error: `openssl client: ${e.message}`, ms: 0 })));
    let streaming = true;
    const all = Promise.all(running).finally(() => (streaming = false));

    const rnd = prng(opts.seed);
    const storm = (async () => {
      await sleep(opts.interval * 1000 * (0.5 + rnd()));
      while (streaming && !interrupted && clusterExit === null) {
        const kind = opts.kinds[Math.floor(rnd() * opts.kinds.length)]!;
        const a = await request(adminPort, token, 'POST', '/crash', { relay: 'random', kind });
        if (a.status === 200) crashes[kind] = (crashes[kind] ?? 0) + 1;
        else crashFailures.push({ kind, status: a.status, body: a.body.slice(0, 300) });
        await sleep(opts.interval * 1000 * (0.5 + rnd())); // jittered: 0.5x to 1.5x the interval
      }
    })();

    // Progress, every 10 s.
    const progress = setInterval(() => {
      const n = Object.values(crashes).reduce((a, b) => a + b, 0);
      console.log(`  ${((Date.now() - start) / 1000).toFixed(0)} s: ${n} crashes, ${crashFailures.length} refused`);
    }, 10_000);
    const interruptWatch = setInterval(() => {
      if (interrupted || clusterExit !== null) streaming = false;
    }, 200);
    results = await Promise.race([all, new Promise<ClientResult[]>((r) => {
      const t = setInterval(() => {
        if (interrupted || clusterExit !== null) {
          clearInterval(t);
          r([]);
        }
      }, 200);
      void all.finally(() => clearInterval(t));
    })]);
    streaming = false;
    clearInterval(progress);
    clearInterval(interruptWatch);
    await storm;
    if (results.length === 0) {
      setupError = interrupted ? 'interrupted' : `the cluster exited (${clusterExit}) during the run`;
    }
    // Let the last crash settle before reading the counters (bounded).
    await sleep(1500);
    const st = await request(adminPort, token, 'GET', '/status');
    if (st.status === 200) status = JSON.parse(st.body) as Record<string, unknown>;
    const mt = await request(adminPort, token, 'GET', '/metrics');
    if (mt.status === 200) metricsText = mt.body;
    writeFileSync(join(dir, 'metrics.txt'), metricsText);
    writeFileSync(join(dir, 'status.json'), st.body);
  } catch (e) {
    setupError = (e as Error).message;
  }

  // ---- teardown: the cluster with SIGTERM, SIGKILL after a bound; then every child ----
  for (const c of children) if (c !== cluster && c !== echo) c.kill('SIGTERM');
  let clusterKilled = false;
  if (cluster.exitCode === null && cluster.signalCode === null) {
    cluster.kill('SIGTERM');
    if (!(await waitExit(cluster, 15_000))) {
      cluster.kill('SIGKILL');
      clusterKilled = true;
      await waitExit(cluster, 5000);
    }
  }
  echo.stdin!.end();
  echo.kill('SIGTERM');
  for (const c of children) if (!(await waitExit(c, 5000))) c.kill('SIGKILL');
  await new Promise<void>((r) => log.end(r));
  const orphans = [...pgrep(`--listen ${HOST}:${listenPort}`), ...pgrep(`${self} --echo-backend`), ...pgrep(`-connect ${HOST}:${listenPort}`)];

  // ---- the summary ----
  const logLines = readFileSync(logFile, 'utf8').split('\n');
  const events: Record<string, number> = {};
  const firstBad: string[] = [];
  for (const line of logLines) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as { level?: string; event?: string; msg?: string; message?: string };
      const ev = j.event ?? '?';
      events[ev] = (events[ev] ?? 0) + 1;
      if (/lost|quarantin|gap/i.test(`${ev} ${j.msg ?? j.message ?? ''}`) && firstBad.length < 10) firstBad.push(line.slice(0, 300));
    } catch {
      /* not a JSON line */
    }
  }
  const ok = results.filter((r) => r.ok);
  const failed = results.filter((r) => !r.ok);
  const verified = results.reduce((a, r) => a + r.verified, 0);
  const expected = results.reduce((a, r) => a + r.bytes, 0);
  const crashCount = Object.values(crashes).reduce((a, b) => a + b, 0);
  const s = status as { lost?: number; quarantined?: number; takeovers?: { count: number; p50Ms: number; p99Ms: number }; relays?: { name: string; restarts: number; crashes: number; up: boolean }[] } | null;
  const counters = {
    connectionsLost: s?.lost ?? metric(metricsText, 'baton_connections_lost_total'),
    quarantined: s?.quarantined ?? metric(metricsText, 'baton_quarantined_connections_total'),
    outputGaps: metric(metricsText, 'baton_output_gaps_total'),
    gapResets: metric(metricsText, 'baton_gap_resets_total'),
    refused: metric(metricsText, 'baton_connections_refused_total'),
    queued: metric(metricsText, 'baton_connections_queued_total'),
    deadlineCloses: series(metricsText, 'baton_deadline_closes_total'),
    limitCloses: series(metricsText, 'baton_limit_closes_total'),
    takeovers: s?.takeovers ?? null,
    relays: s?.relays?.map((r) => ({ name: r.name, up: r.up, crashes: r.crashes, restarts: r.restarts })) ?? null,
  };
  const elapsed = (Date.now() - start) / 1000;
  console.log('');
  console.log(`chaos-storm summary (seed ${opts.seed}, ${elapsed.toFixed(1)} s):`);
  if (setupError) console.log(`  run error: ${setupError}`);
  console.log(`  clients: ${ok.length} ok, ${failed.length} failed of ${results.length}; bytes verified ${verified} of ${expected} (${(verified / MIB).toFixed(1)} MiB)`);
  for (const r of failed) console.log(`    ${r.name}: ${r.error}${r.stuck ? ' [stuck]' : ''} (verified ${r.verified}, sent ${r.sent}; at ${r.failedAt ?? '?'})`);
  console.log(`  crashes: ${crashCount} (${Object.entries(crashes).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}); POST /crash refused: ${crashFailures.length}`);
  const refusals: Record<string, number> = {};
  for (const f of crashFailures) refusals[`${f.status} ${f.body}`] = (refusals[`${f.status} ${f.body}`] ?? 0) + 1;
  for (const [k, v] of Object.entries(refusals)) console.log(`    ${v}x ${k}`);
  console.log(
    `  cluster: connections lost ${counters.connectionsLost}, quarantined ${counters.quarantined}, output gaps ${counters.outputGaps}, gap resets ${counters.gapResets}, refused at accept ${counters.refused}, waited at accept ${counters.queued}; ` +
      `takeovers ${counters.takeovers ? `${counters.takeovers.count} (p50 ${counters.takeovers.p50Ms} ms, p99 ${counters.takeovers.p99Ms} ms)` : '?'}`,
  );
  const fmt = (r: Record<string, number> | null) => (r ? Object.entries(r).map(([k, v]) => `${k} ${v}`).join(', ') : '?');
  console.log(`  closed by a deadline: ${fmt(counters.deadlineCloses)}; by a cap: ${fmt(counters.limitCloses)}`);
  if (counters.relays) console.log(`  relays: ${counters.relays.map((r) => `${r.name} ${r.up ? 'up' : 'DOWN'} crashes ${r.crashes} restarts ${r.restarts}`).join('; ')}`);
  for (const l of firstBad) console.log(`  log: ${l}`);
  console.log(`  teardown: cluster ${clusterKilled ? 'needed SIGKILL' : `exited (${clusterExit ?? cluster.exitCode ?? cluster.signalCode})`}; leftover processes: ${orphans.length === 0 ? 'none' : orphans.join(' | ')}`);
  console.log(`  cluster log: ${logFile}`);

  const bad =
    setupError !== null ||
    failed.length > 0 ||
    verified !== expected ||
    results.length !== opts.clients + (opts.openssl ? 1 : 0) ||
    (counters.connectionsLost ?? 1) !== 0 ||
    (counters.outputGaps ?? 1) !== 0 ||
    (counters.gapResets ?? 1) !== 0 ||
    (counters.quarantined ?? 1) !== 0 ||
    (counters.refused ?? 1) !== 0 ||
    Object.values(counters.deadlineCloses ?? { missing: 1 }).some((n) => n !== 0) ||
    Object.values(counters.limitCloses ?? { missing: 1 }).some((n) => n !== 0) ||
    orphans.length > 0;
  if (bad) exitCode = 1;
  if (opts.json) {
    writeFileSync(opts.json, JSON.stringify({ opts, elapsed, setupError, results, crashes, crashFailures, counters, events, orphans, logFile, ok: !bad }, null, 2));
  }
  console.log(`  result: ${bad ? 'FAILED' : 'ok: every byte verified, no client error, nothing lost'}`);
  process.exit(exitCode);
}

// Last, so every class and function above is initialised.
if (!echoRole) await main();
