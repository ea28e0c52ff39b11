/**
 * The bench's load generator, a child process (plain `tls.connect`, a few
 * connections, no per-byte verification) driven by JSON lines:
 *
 *   in:  {"cmd":"run","id":1,"port":N,"workload":"bulk-up","connections":4,"warmupMs":500,"measureMs":2000}
 *   out: {"ev":"start","id":1}   the measured window opens (after connecting and warming up)
 *        {"ev":"end","id":1}     it closes
 *        {"ev":"result","id":1,...LoadResult}
 *
 * The harness reads the terminator's CPU time when it sees start and end. The
 * backend's mode is the first byte of each connection (see backend.ts).
 */
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { MODE } from './backend.js';
import type { LoadResult, Workload } from './workloads.js';

const CHUNK = Buffer.alloc(64 << 10, 0x75);
const ECHO = Buffer.alloc(64, 0x65);
const PROBE = Buffer.from(`${MODE.echo}x`);

interface Counters {
  measuring: boolean;
  stopped: boolean;
  bytes: number;
  roundTrips: number;
  handshakes: number;
  resumed: number;
  latenciesUs: number[];
  errors: number;
  firstError: string | null;
  sockets: Set<tls.TLSSocket>;
}

const now = () => performance.now();

function open(port: number, c: Counters, session?: Buffer): tls.TLSSocket {
  const s = tls.connect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    // The chain is not what is measured: skip its validation to keep the client light.
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3',
    ...(session ? { session } : {}),
  });
  s.setNoDelay(true);
  c.sockets.add(s);
  s.on('close', () => c.sockets.delete(s));
  s.on('error', (e) => {
    if (!c.stopped) {
      c.errors++;
      c.firstError ??= e.message;
    }
    s.destroy();
  });
  return s;
}

const connected = (s: tls.TLSSocket) =>
  new Promise<void>((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed before the handshake')));
  });

/** Starts one workload's connections; resolves once they are all under way. */
async function startWorkload(w: Workload, port: number, n: number, c: Counters): Promise<() => Promise<void>> {
  const loops: Promise<void>[] = [];
  switch (w) {
    case 'bulk-up':
    case 'bulk-down': {
      const socks = Array.from({ length: n }, () => open(port, c));
      await Promise.all(socks.map(connected));
      for (const s of socks) {
        if (w === 'bulk-up') {
          s.write(MODE.sink);
          const pump = () => {
            while (!c.stopped && !s.destroyed) {
              if (c.measuring) c.bytes += CHUNK.length;
              if (!s.write(CHUNK)) break;
            }
          };
          s.on('drain', pump);
          pump();
        } else {
          s.on('data', (d: Buffer) => {
            if (c.measuring) c.bytes += d.length;
          });
          s.write(MODE.source);
        }
      }
      break;
    }
    case 'echo': {
      const socks = Array.from({ length: n }, () => open(port, c));
      await Promise.all(socks.map(connected));
      for (const s of socks) {
        let got = 0;
        let t0 = 0;
        const ask = () => {
          if (c.stopped || s.destroyed) return;
          t0 = now();
          s.write(ECHO);
        };
        s.on('data', (d: Buffer) => {
          got += d.length;
          while (got >= ECHO.length) {
            got -= ECHO.length;
            if (c.measuring) {
              c.roundTrips++;
              c.latenciesUs.push((now() - t0) * 1000);
            }
            ask();
          }
        });
        s.write(MODE.echo);
        ask();
      }
      break;
    }
    case 'handshake':
    case 'resume': {
      // Resumption: a first full handshake gives the ticket; each loop then keeps the newest one.
      let ticket: Buffer | undefined;
      if (w === 'resume') ticket = await oneConnection(port, c, undefined, (t) => (ticket = t));
      for (let i = 0; i < n; i++) {
        loops.push(
          (async () => {
            let mine = ticket;
            while (!c.stopped) {
              await oneConnection(port, c, w === 'resume' ? mine : undefined, (t) => (mine = t));
            }
          })(),
        );
      }
      break;
    }
  }
  return async () => {
    c.stopped = true;
    for (const s of c.sockets) s.destroy();
    await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 5000))]);
  };
}

/** Connects, completes the handshake and one echoed byte, closes. Returns the latest ticket. */
function oneConnection(port: number, c: Counters, session: Buffer | undefined, onTicket: (t: Buffer) => void): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const t0 = now();
    let latest: Buffer | undefined;
    const s = open(port, c, session);
    s.on('session', (t: Buffer) => {
      latest = t;
      onTicket(t);
    });
    s.once('secureConnect', () => s.write(PROBE));
    s.once('data', () => {
      if (c.measuring) {
        c.handshakes++;
        if (s.isSessionReused()) c.resumed++;
        c.latenciesUs.push((now() - t0) * 1000);
      }
      s.end();
      resolve(latest);
    });
    s.once('close', () => resolve(latest));
  });
}

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface RunCommand {
  readonly id: number;
  readonly port: number;
  readonly workload: Workload;
  readonly connections: number;
  readonly warmupMs: number;
  readonly measureMs: number;
}

async function run(cmd: RunCommand, out: (o: object) => void): Promise<void> {
  const c: Counters = {
    measuring: false,
    stopped: false,
    bytes: 0,
    roundTrips: 0,
    handshakes: 0,
    resumed: 0,
    latenciesUs: [],
    errors: 0,
    firstError: null,
    sockets: new Set(),
  };
  let stop: (() => Promise<void>) | undefined;
  try {
    stop = await startWorkload(cmd.workload, cmd.port, cmd.connections, c);
    await sleep(cmd.warmupMs);
    const cpu0 = process.cpuUsage();
    const t0 = now();
    c.measuring = true;
    out({ ev: 'start', id: cmd.id });
    await sleep(cmd.measureMs);
    c.measuring = false;
    const seconds = (now() - t0) / 1000;
    out({ ev: 'end', id: cmd.id });
    const cpu = process.cpuUsage(cpu0);
    await stop();
    const lat = c.latenciesUs.sort((a, b) => a - b);
    const result: LoadResult = {
      workload: cmd.workload,
      seconds,
      bytes: c.bytes,
      roundTrips: c.roundTrips,
      handshakes: c.handshakes,
      resumed: c.resumed,
      p50Us: percentile(lat, 50),
      p99Us: percentile(lat, 99),
      errors: c.errors,
      firstError: c.firstError,
      loadCpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
    out({ ev: 'result', id: cmd.id, ...result });
  } catch (e) {
    c.stopped = true;
    for (const s of c.sockets) s.destroy();
    out({ ev: 'failed', id: cmd.id, error: e instanceof Error ? e.message : String(e) });
  }
}

/** Connections held open by an `idle` command until `release`. */
const idle = new Set<tls.TLSSocket>();

/**
 * Opens `connections` connections, each a full handshake and one echoed byte (at most
 * 16 at a time), and leaves them open and quiet: the terminator's memory per idle
 * connection is what the harness reads meanwhile.
 */
async function openIdle(cmd: { id: number; port: number; connections: number }, out: (o: object) => void): Promise<void> {
  const c: Counters = { measuring: false, stopped: false, bytes: 0, roundTrips: 0, handshakes: 0, resumed: 0, latenciesUs: [], errors: 0, firstError: null, sockets: idle };
  let next = 0;
  const one = async (): Promise<void> => {
    while (next < cmd.connections) {
      next++;
      const s = open(cmd.port, c);
      await connected(s);
      s.write(PROBE);
      await new Promise((r) => s.once('data', r));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(16, cmd.connections) }, one));
    out({ ev: 'idle', id: cmd.id, open: idle.size, errors: c.errors });
  } catch (e) {
    out({ ev: 'failed', id: cmd.id, error: e instanceof Error ? e.message : String(e) });
  }
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  out({ ev: 'ready' });
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line) as { cmd: string } & RunCommand;
    if (cmd.cmd === 'run') await run(cmd, out);
    else if (cmd.cmd === 'idle') await openIdle(cmd, out);
    else if (cmd.cmd === 'release') {
      for (const s of idle) s.destroy();
      idle.clear();
      out({ ev: 'released', id: cmd.id });
    }
  }
  process.exit(0);
}
