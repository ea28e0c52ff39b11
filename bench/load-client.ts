/**
 * Load generation for bench/cluster.bench.ts: TLS clients (Node's own `tls`) that
 * stream a seeded pattern through a relay to an echo backend and verify every
 * byte that comes back, recording when data arrives so a stall is visible.
 *
 * As a module it exports {@link StreamClient}. Run as a program it is the
 * out-of-process load generator of the bench, talking JSON lines (stdin in, stdout out):
 *
 *   node --import tsx bench/load-client.ts --mode bulk --clients 8 --chunk 16384 --window 1048576 --seconds 5 --warmup 1
 *   node --import tsx bench/load-client.ts --mode paced --clients 12 --chunk 512 --pace-ms 1
 *
 * Both start an echo backend, print `{"ev":"backend","port":N}` and read `{"port":N}`
 * (the gateway). Bulk then connects the clients, streams, prints `{"ev":"measuring"}`
 * after the warm-up and `{"ev":"done",...}` when the measured window closes, and exits.
 * Paced connects the clients one after another (so the gateway's connection table is
 * in client order), prints `{"ev":"connected"}`, writes `chunk` bytes per client every
 * `pace-ms`, and answers commands: `{"cmd":"gaps","since":t,"horizon":h}` (per client,
 * the largest arrival gap that ends after `since` and starts by `horizon`, wall ms),
 * `{"cmd":"reconnect"}` (a fresh set of clients), `{"cmd":"stop"}` (totals, then exit).
 * Loopback only; every wait is bounded.
 */
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { startEchoBackend } from '../src/cli/demo/echo-backend.js';
import { seededRandom } from '../src/util/random.js';

/**
 * The certificate the clients trust (PEM): the one the bench's cluster serves, made
 * by the bench (self-signed) and handed over in the environment.
 */
export const CA_ENV = 'BATON_BENCH_CA';

/** Wall-clock milliseconds with sub-millisecond resolution. */
export const wall = (): number => performance.timeOrigin + performance.now();

/** Length of the repeating data pattern (the stream is the pattern, from a per-client offset). */
const PATTERN = 1 << 20;
let patternCache: Buffer | null = null;
/** The pattern twice over, so any slice of up to PATTERN bytes at any phase is contiguous. */
function pattern(): Buffer {
  if (!patternCache) {
    const p = Buffer.from(seededRandom('baton-cluster-bench').bytes(PATTERN));
    patternCache = Buffer.concat([p, p]);
  }
  return patternCache;
}

/** Arrival times kept per client (a ring; paced clients see ~1 arrival per tick). */
const ARRIVALS = 1 << 15;

export interface StreamClientOptions {
  readonly host: string;
  readonly port: number;
  /** Distinguishes the clients' streams (a different pattern phase each), so cross-talk is caught. */
  readonly index: number;
  /** Bytes per write. */
  readonly chunk: number;
  /** Bytes in flight (sent, not yet verified) at most. */
  readonly window: number;
  /** The certificate (PEM) the client trusts for `localhost`. */
  readonly ca: string;
}

export class StreamClient {
  bytesSent = 0;
  bytesVerified = 0;
  handshakes = 0;
  readonly errors: string[] = [];
  private socket: tls.TLSSocket | null = null;
  private closed = false;
  private bulk = false;
  private readonly phase: number;
  private readonly arrivals = new Float64Array(ARRIVALS);
  private arrivalCount = 0;

  constructor(private readonly opts: StreamClientOptions) {
    if (opts.chunk > PATTERN) throw new RangeError('chunk larger than the pattern');
    this.phase = (opts.index * 7919) % PATTERN;
  }

  connect(timeoutMs = 20_000): Promise<void> {
    const socket = tls.connect({
      host: this.opts.host,
      port: this.opts.port,
      ca: this.opts.ca,
      servername: 'localhost',
      minVersion: 'TLSv1.3',
    });
    socket.setNoDelay(true);
    this.socket = socket;
    socket.on('secureConnect', () => this.handshakes++);
    socket.on('data', (d: Buffer) => this.verify(d));
    socket.on('drain', () => {
      if (this.bulk) this.fill();
    });
    socket.on('error', (e) => this.errors.push(`socket error: ${e.message}`));
    socket.on('close', () => {
      if (!this.closed) this.errors.push('connection closed by the peer');
      this.closed = true;
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('handshake timed out')), timeoutMs);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  /** Paced mode: one write of `chunk` bytes per call, if the window allows. */
  tick(): void {
    const s = this.socket;
    if (!s || this.closed || this.bytesSent - this.bytesVerified + this.opts.chunk > this.opts.window) return;
    this.write(s);
  }

  /** Bulk mode: keep the window full until {@link close}. */
  startBulk(): void {
    this.bulk = true;
    this.fill();
  }

  private fill(): void {
    const s = this.socket;
    while (this.bulk && s && !this.closed && this.bytesSent - this.bytesVerified + this.opts.chunk <= this.opts.window) {
      if (!this.write(s)) return;
    }
  }

  private write(s: tls.TLSSocket): boolean {
    const at = (this.phase + this.bytesSent) % PATTERN;
    const n = this.opts.chunk;
    this.bytesSent += n;
    return s.write(pattern().subarray(at, at + n));
  }

  private verify(d: Buffer): void {
    this.arrivals[this.arrivalCount++ % ARRIVALS] = wall();
    if (this.bytesVerified + d.length > this.bytesSent) {
      this.errors.push(`received ${this.bytesVerified + d.length - this.bytesSent} bytes more than was sent`);
      return;
    }
    const p = pattern();
    for (let off = 0; off < d.length; ) {
      const n = Math.min(PATTERN, d.length - off);
      const at = (this.phase + this.bytesVerified) % PATTERN;
      if (!p.subarray(at, at + n).equals(d.subarray(off, off + n))) {
        this.errors.push(`byte mismatch at stream offset ${this.bytesVerified}`);
        return;
      }
      off += n;
      this.bytesVerified += n;
    }
    if (this.bulk) this.fill();
  }

  /** Arrival times (wall ms) from `since` on, oldest first (as far as the ring reaches). */
  arrivalsSince(since: number): number[] {
    const out: number[] = [];
    const from = Math.max(0, this.arrivalCount - ARRIVALS);
    for (let k = from; k < this.arrivalCount; k++) {
      const t = this.arrivals[k % ARRIVALS]!;
      if (t >= since) out.push(t);
    }
    return out;
  }

  close(): void {
    this.bulk = false;
    this.closed = true;
    this.socket?.destroy();
  }
}

// ---- the child-process load generator ----

function flag(args: readonly string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`--${name} needs a non-negative number`);
  return v;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** For each client: the largest gap between arrivals that ends after `since` and starts by `horizon`. */
export function crashGaps(clients: readonly StreamClient[], since: number, horizon: number): ({ gap: number; end: number } | null)[] {
  return clients.map((c) => {
    const ts = c.arrivalsSince(since - 200);
    let best: { gap: number; end: number } | null = null;
    for (let k = 0; k + 1 < ts.length; k++) {
      if (ts[k + 1]! <= since || ts[k]! > horizon) continue;
      const g = ts[k + 1]! - ts[k]!;
      if (!best || g > best.gap) best = { gap: g, end: ts[k + 1]! };
    }
    return best;
  });
}

async function paced(args: readonly string[], port: number, lines: AsyncIterator<string>): Promise<void> {
  const n = Math.max(1, Math.floor(flag(args, 'clients', 12)));
  const chunk = Math.max(1, Math.floor(flag(args, 'chunk', 512)));
  const paceMs = Math.max(1, flag(args, 'pace-ms', 1));
  const window = Math.max(chunk, Math.floor(flag(args, 'window', 64 << 10)));
  const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  let clients: StreamClient[] = [];
  const retired: StreamClient[] = [];
  const connectAll = async () => {
    const cs: StreamClient[] = [];
    for (let index = 0; index < n; index++) {
      const c = new StreamClient({ host: '127.0.0.1', port, index, chunk, window, ca: trusted() });
      await c.connect();
      cs.push(c);
    }
    clients = cs;
  };
  await connectAll();
  const ticker = setInterval(() => {
    for (const c of clients) c.tick();
  }, paceMs);
  out({ ev: 'connected' });
  for (let k = 0; k < 100_000; k++) {
    const next = await lines.next();
    if (next.done) break;
    const cmd = JSON.parse(next.value) as { cmd: string; since?: number; horizon?: number };
    if (cmd.cmd === 'gaps') {
      out({ ev: 'gaps', gaps: crashGaps(clients, cmd.since ?? 0, cmd.horizon ?? 0) });
    } else if (cmd.cmd === 'reconnect') {
      for (const c of clients) c.close();
      retired.push(...clients);
      clients = [];
      await sleep(200);
      await connectAll();
      out({ ev: 'connected' });
    } else if (cmd.cmd === 'stop') {
      break;
    }
  }
  clearInterval(ticker);
  const all = [...retired, ...clients];
  const cpu = process.cpuUsage();
  out({
    ev: 'stopped',
    clients: all.length,
    handshakes: all.reduce((a, c) => a + c.handshakes, 0),
    bytesVerified: all.reduce((a, c) => a + c.bytesVerified, 0),
    errors: all.flatMap((c, i) => c.errors.map((e) => `client ${i}: ${e}`)).slice(0, 20),
    erroredClients: all.filter((c) => c.errors.length > 0).length,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  });
  for (const c of clients) c.close();
}

/** The certificate from {@link CA_ENV}, which the program needs. */
function trusted(): string {
  const pem = process.env[CA_ENV];
  if (!pem) throw new Error(`${CA_ENV} must hold the PEM certificate the gateway serves`);
  return pem;
}

async function main(args: readonly string[]): Promise<void> {
  const mode = args.includes('paced') ? 'paced' : 'bulk';
  const clients = Math.max(1, Math.floor(flag(args, 'clients', 8)));
  const chunk = Math.max(1, Math.floor(flag(args, 'chunk', 16_384)));
  const window = Math.max(chunk, Math.floor(flag(args, 'window', 1 << 20)));
  const seconds = Math.min(600, flag(args, 'seconds', 5));
  const warmup = Math.min(60, flag(args, 'warmup', 1));
  const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);

  const backend = await startEchoBackend('127.0.0.1', 0);
  out({ ev: 'backend', port: backend.port });
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const first = await Promise.race([lines.next(), sleep(60_000).then(() => null)]);
  if (!first || first.done) throw new Error('no gateway port on stdin within 60 s');
  const { port } = JSON.parse(first.value) as { port: number };
  if (mode === 'paced') {
    await paced(args, port, lines);
    await backend.close();
    return;
  }

  const cs = Array.from({ length: clients }, (_, index) => new StreamClient({ host: '127.0.0.1', port, index, chunk, window, ca: trusted() }));
  await Promise.all(cs.map((c) => c.connect()));
  for (const c of cs) c.startBulk();
  await sleep(warmup * 1000);

  const verified = () => cs.reduce((a, c) => a + c.bytesVerified, 0);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const v0 = verified();
  out({ ev: 'measuring' });
  await sleep(seconds * 1000);
  const v1 = verified();
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  out({
    ev: 'done',
    clients,
    chunk,
    window,
    seconds: elapsed,
    bytesVerified: v1 - v0,
    bytesPerSecond: (v1 - v0) / elapsed,
    perClientVerified: cs.map((c) => c.bytesVerified),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    errors: cs.flatMap((c, i) => c.errors.map((e) => `client ${i}: ${e}`)).slice(0, 20),
    handshakes: cs.reduce((a, c) => a + c.handshakes, 0),
  });
  for (const c of cs) c.close();
  await backend.close();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`load-client: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
