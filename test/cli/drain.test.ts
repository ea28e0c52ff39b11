/**
 * Graceful drain, end to end (`baton cluster`, real Node TLS clients, loopback): SIGTERM
 * or POST /drain stops new connections, live ones carry on and end on their own, and
 * those left at `--drain-timeout` get everything the backend sent, then a close_notify,
 * then the end of the stream. The close_notify is checked on the wire: each client's
 * socket is tapped, and the server's records are opened with the client's keylog.
 * Waits are on events and conditions, bounded.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { RecordOpener } from '../../src/tls/crypto/record-protection.js';
import { suiteById } from '../../src/tls/crypto/suites.js';
import { baton, batonOnce, killAll, waitForMatch, withTimeout, type Run } from '../helpers/cli.js';

const START_LINE = /^baton: \d+ relays? on 127\.0\.0\.1:(\d+) -> .*; admin http:\/\/127\.0\.0\.1:(\d+) /m;
const DRAINING = /"event":"cluster\.draining"/;
const DRAIN_TIMEOUT = /"event":"cluster\.drainTimeout"/;
/** TLS_AES_128_GCM_SHA256: one suite, so the test knows how to open the records. */
const SUITE = 0x1301;

/** A TLS client whose socket is tapped: the server's bytes as they came, and the client's keylog. */
interface TappedClient {
  readonly tls: tls.TLSSocket;
  readonly raw: net.Socket;
  readonly wire: Buffer[];
  readonly keylog: string[];
  readonly received: Buffer[];
  /** 'end' on the TLS socket (the server's close_notify or its FIN). */
  readonly ended: Promise<void>;
  /** Errors on the TLS socket before its 'end'. */
  readonly errorsBeforeEnd: Error[];
}

async function connectTapped(port: number): Promise<TappedClient> {
  const raw = net.connect(port, '127.0.0.1');
  raw.on('error', () => {});
  await withTimeout(new Promise((r) => raw.once('connect', r)), 10_000, 'a TCP connect');
  const wire: Buffer[] = [];
  // A Duplex, not the socket itself, so that Node reads through us and we see every byte.
  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      if (raw.destroyed) cb();
      else raw.write(chunk, () => cb());
    },
    final(cb) {
      raw.end();
      cb();
    },
  });
  raw.on('data', (d: Buffer) => {
    wire.push(d);
    duplex.push(d);
  });
  raw.on('end', () => duplex.push(null));
  raw.on('close', () => duplex.push(null));
  const keylog: string[] = [];
  const received: Buffer[] = [];
  const errorsBeforeEnd: Error[] = [];
  const s = tls.connect({ socket: duplex, servername: 'localhost', rejectUnauthorized: false, ciphers: 'TLS_AES_128_GCM_SHA256' });
  s.on('keylog', (line: Buffer) => keylog.push(line.toString('utf8')));
  s.on('data', (d: Buffer) => received.push(d));
  let isEnded = false;
  const ended = new Promise<void>((resolve) =>
    s.once('end', () => {
      isEnded = true;
      resolve();
    }),
  );
  s.on('error', (e) => {
    if (!isEnded) errorsBeforeEnd.push(e);
  });
  await withTimeout(new Promise((r, j) => (s.once('secureConnect', r), s.once('error', j))), 20_000, 'a TLS handshake');
  // Read while the socket is open: serverRecords() opens the records with this suite.
  expect(s.getCipher().standardName).toBe('TLS_AES_128_GCM_SHA256');
  return { tls: s, raw, wire, keylog, received, ended, errorsBeforeEnd };
}

const receivedBytes = (c: TappedClient) => c.received.reduce((n, b) => n + b.length, 0);

/** Writes `bytes` and waits for as many echoed bytes in total as written so far. */
async function exchange(c: TappedClient, bytes: Buffer, sentBefore: number): Promise<number> {
  const want = sentBefore + bytes.length;
  c.tls.write(bytes);
  await withTimeout(
    new Promise<void>((resolve) => {
      const check = () => {
        if (receivedBytes(c) >= want) {
          c.tls.off('data', check);
          resolve();
        }
      };
      c.tls.on('data', check);
      check();
    }),
    20_000,
    'an echo',
  );
  return want;
}

/**
 * The server's records after the handshake, opened with the client's keylog: those under
 * the handshake keys come first and do not open under the application key.
 */
function serverRecords(c: TappedClient): { type: number; content: Buffer }[] {
  const line = c.keylog.find((l) => l.startsWith('SERVER_TRAFFIC_SECRET_0 '));
  if (!line) throw new Error('no SERVER_TRAFFIC_SECRET_0 in the keylog');
  const opener = new RecordOpener(suiteById(SUITE)!, Buffer.from(line.trim().split(' ')[2]!, 'hex'), 0);
  const bytes = Buffer.concat(c.wire);
  const out: { type: number; content: Buffer }[] = [];
  let at = 0;
  while (at + 5 <= bytes.length) {
    const len = bytes.readUInt16BE(at + 3);
    if (at + 5 + len > bytes.length) throw new Error(`a truncated record at ${at} of ${bytes.length}`);
    const header = bytes.subarray(at, at + 5);
    const body = bytes.subarray(at + 5, at + 5 + len);
    at += 5 + len;
    if (header[0] !== 23) continue;
    try {
      const r = opener.open(header, body);
      out.push({ type: r.type, content: Buffer.from(r.content) });
    } catch (e) {
      if (out.length > 0) throw e;
    }
  }
  if (at !== bytes.length) throw new Error('trailing bytes after the last record');
  return out;
}

/** Application data the server sent, checking that a close_notify is the last record and nothing follows it. */
function dataThenCloseNotify(c: TappedClient): Buffer {
  const records = serverRecords(c);
  const last = records.at(-1);
  expect(last?.type, 'the last record is an alert').toBe(21);
  expect(last?.content[1], 'and it is close_notify').toBe(0);
  expect(records.filter((r) => r.type === 21)).toHaveLength(1);
  return Buffer.concat(records.filter((r) => r.type === 23).map((r) => r.content));
}

/** Resolves with the error code of a plain TCP connect (null: it connected). */
function connectOutcome(port: number): Promise<string | null> {
  return withTimeout(
    new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(null);
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    }),
    10_000,
    'a connect attempt',
  );
}

/** An echo backend that counts what it wrote on each connection, keyed by the first byte it echoed. */
async function startCountingBackend(): Promise<{ port: number; written: Map<number, number>; close: () => Promise<void> }> {
  const written = new Map<number, number>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => s.destroy());
    let first = -1;
    s.on('data', (d: Buffer) => {
      if (first < 0) first = d[0]!;
      // Writes are taken without backpressure: everything read is echoed and counted.
      s.write(d);
      written.set(first, (written.get(first) ?? 0) + d.length);
    });
    s.on('end', () => s.end());
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    written,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('baton cluster graceful drain (end to end)', () => {
  let backend: EchoBackend;
  let dir: string;
  const clients: TappedClient[] = [];

  beforeAll(async () => {
    backend = await startEchoBackend('127.0.0.1', 0);
    dir = await mkdtemp(path.join(os.tmpdir(), 'baton-drain-'));
  });

  afterEach(() => {
    for (const c of clients.splice(0)) {
      c.tls.destroy();
      c.raw.destroy();
    }
    killAll();
  });

  afterAll(async () => {
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function startCluster(backendPort: number, drainTimeout: string, name: string): Promise<{ run: Run; port: number; adminPort: number; tokenFile: string }> {
    const tokenFile = path.join(dir, `${name}.token`);
    const run = baton([
      'cluster', '--relays', '2', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backendPort}`,
      '--admin', '127.0.0.1:0', '--token-file', tokenFile, '--drain-timeout', drainTimeout,
    ]);
    const m = await waitForMatch(run, START_LINE, 30_000, 'the start line');
    return { run, port: Number(m[1]), adminPort: Number(m[2]), tokenFile };
  }

  it('on SIGTERM refuses new connections, lets streaming clients finish with every byte and a close_notify, and exits 0 before the timeout', async () => {
    const { run, port } = await startCluster(backend.port, '20', 'stream');
    const streams = await Promise.all([0, 1, 2].map(() => connectTapped(port)));
    clients.push(...streams);
    const sent = streams.map(() => [] as Buffer[]);
    const counts = streams.map(() => 0);
    const rounds = async (n: number) =>
      Promise.all(
        streams.map(async (c, i) => {
          for (let r = 0; r < n; r++) {
            const chunk = Buffer.alloc(4096 + 17 * r, `${i}:${r};`);
            sent[i]!.push(chunk);
            counts[i] = await exchange(c, chunk, counts[i]!);
          }
        }),
      );
    await rounds(5);

    const since = Date.now();
    run.child.kill('SIGTERM');
    await waitForMatch(run, DRAINING, 10_000, 'the draining line');
    expect(await connectOutcome(port)).toBe('ECONNREFUSED');
    // Live connections carry on through the drain.
    await rounds(5);
    for (const c of streams) c.tls.end();
    await withTimeout(Promise.all(streams.map((c) => c.ended)), 15_000, 'every client to end');

    streams.forEach((c, i) => {
      const want = Buffer.concat(sent[i]!);
      expect(Buffer.concat(c.received).equals(want)).toBe(true);
      expect(dataThenCloseNotify(c).equals(want)).toBe(true);
      expect(c.errorsBeforeEnd).toEqual([]);
    });
    expect(await withTimeout(run.exit, 15_000, 'exit after the drain')).toBe(0);
    expect(Date.now() - since).toBeLessThan(20_000);
    expect(run.stdout).toMatch(/"event":"cluster\.drained".*"timedOut":false/);
  });

  it('at --drain-timeout sends close_notify after every byte the backend sent, to an idle client and to one that was not reading, and exits 0', async () => {
    const counting = await startCountingBackend();
    try {
      const { run, port } = await startCluster(counting.port, '2', 'timeout');
      const idle = await connectTapped(port);
      const slow = await connectTapped(port);
      clients.push(idle, slow);
      await exchange(idle, Buffer.from('I am idle'), 0);
      await exchange(slow, Buffer.from('S'), 0);
      // The slow client stops reading: what the backend echoes piles up on the way to it.
      slow.raw.pause();
      const flood = Buffer.alloc(8 << 20, 'S');
      const sent = Buffer.concat([Buffer.from('S'), flood]);
      slow.tls.write(flood);
      await withTimeout(
        (async () => {
          while ((counting.written.get('S'.charCodeAt(0)) ?? 0) < 1 << 20) await new Promise((r) => setImmediate(r));
        })(),
        20_000,
        'the backend to echo a MiB to the slow client',
      );
      expect(receivedBytes(slow)).toBe(1);

      const since = Date.now();
      run.child.kill('SIGTERM');
      await waitForMatch(run, DRAIN_TIMEOUT, 15_000, 'the drain timeout');
      expect(Date.now() - since).toBeGreaterThanOrEqual(1_900);
      slow.raw.resume();
      await withTimeout(Promise.all([idle.ended, slow.ended]), 15_000, 'both clients to end');

      expect(dataThenCloseNotify(idle).toString()).toBe('I am idle');
      expect(idle.errorsBeforeEnd).toEqual([]);
      const echoed = dataThenCloseNotify(slow);
      expect(Buffer.concat(slow.received).equals(echoed)).toBe(true);
      expect(echoed.length).toBe(counting.written.get('S'.charCodeAt(0)));
      expect(echoed.equals(sent.subarray(0, echoed.length))).toBe(true);
      expect(slow.errorsBeforeEnd).toEqual([]);

      expect(await withTimeout(run.exit, 15_000, 'exit after the drain timeout')).toBe(0);
      expect(run.stdout).toMatch(/"event":"cluster\.drained".*"timedOut":true/);
    } finally {
      await counting.close();
    }
  });

  it('POST /drain drains as SIGTERM does; /status, baton status and baton_draining show it; the last connection ending exits at once', async () => {
    const { run, port, adminPort, tokenFile } = await startCluster(backend.port, '60', 'admin');
    const c = await connectTapped(port);
    clients.push(c);
    await exchange(c, Buffer.from('before'), 0);
    const token = (await readFile(tokenFile, 'utf8')).trim();
    const admin = (method: string, route: string) => fetch(`http://127.0.0.1:${adminPort}${route}`, { method, headers: { authorization: `Bearer ${token}` } });

    expect(await (await admin('GET', '/metrics')).text()).toMatch(/^baton_draining 0$/m);
    const before = Date.now();
    const r = await admin('POST', '/drain');
    expect(r.status).toBe(202);
    const body = (await r.json()) as { draining: { cause: string; since: string; deadline: string; connections: number } };
    expect(body.draining.cause).toBe('admin');
    expect(body.draining.connections).toBe(1);
    expect(Date.parse(body.draining.deadline) - Date.parse(body.draining.since)).toBe(60_000);
    expect(Date.parse(body.draining.since)).toBeGreaterThanOrEqual(before - 1_000);
    await waitForMatch(run, DRAINING, 10_000, 'the draining line');

    expect(await connectOutcome(port)).toBe('ECONNREFUSED');
    const status = (await (await admin('GET', '/status')).json()) as { draining: { connections: number } | null };
    expect(status.draining?.connections).toBe(1);
    expect(await (await admin('GET', '/metrics')).text()).toMatch(/^baton_draining 1$/m);
    const shown = await batonOnce(['status', '--admin', `127.0.0.1:${adminPort}`, '--token-file', tokenFile]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^draining since \S+ \(\d+s ago, POST \/drain\); 1 connection left; close_notify to the rest at \S+ \(in \d+s\)$/m);
    // Asking again changes nothing.
    expect((await admin('POST', '/drain')).status).toBe(202);

    await exchange(c, Buffer.from(' and during'), 'before'.length);
    const since = Date.now();
    c.tls.end();
    await withTimeout(c.ended, 10_000, 'the client to end');
    expect(dataThenCloseNotify(c).toString()).toBe('before and during');
    expect(await withTimeout(run.exit, 15_000, 'exit once no connection is left')).toBe(0);
    expect(Date.now() - since).toBeLessThan(15_000);
  });

  it('a second SIGTERM during the drain exits at once', async () => {
    const { run, port } = await startCluster(backend.port, '60', 'twice');
    const c = await connectTapped(port);
    clients.push(c);
    await exchange(c, Buffer.from('stay'), 0);
    run.child.kill('SIGTERM');
    await waitForMatch(run, DRAINING, 10_000, 'the draining line');
    const since = Date.now();
    run.child.kill('SIGTERM');
    expect(await withTimeout(run.exit, 10_000, 'exit after the second SIGTERM')).toBe(0);
    expect(Date.now() - since).toBeLessThan(10_000);
    expect(run.stdout).toMatch(/"event":"cluster\.closing".*"signal":"SIGTERM"/);
  });
});
