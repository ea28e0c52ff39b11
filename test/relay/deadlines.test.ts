/**
 * The gateway's deadlines and connection limit, in process over loopback: a client
 * trickling its ClientHello a byte every 200 ms is closed by a 1 s handshake deadline
 * while a normal client is served; an idle connection gets close_notify after a 1 s
 * idle deadline while a chatty one carries on; with at most 2 connections a third waits,
 * unserved, until one ends; a backend whose accept queue is full (a process that
 * listens, then blocks) makes the connect hang: a 1 s backend connect deadline gives
 * the client a fatal alert. The deadline rules themselves are checked on a fake clock.
 * Every wait is on an event or a condition, bounded generously (CPU hogs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_DEADLINES, IDLE_CLOSE_GRACE_MS, overdue, sweepPeriodMs, type TimedConn } from '../../src/relay/deadlines.js';
import { caPem } from '../helpers/interop.js';
import { startTestCluster, until, type TestCluster } from '../helpers/cluster.js';

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms).unref())]);

function connectTls(port: number): Promise<tls.TLSSocket> {
  return within(
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => resolve(s));
      s.once('error', reject);
    }),
    20_000,
    'a TLS handshake',
  );
}

/** Writes `text` and resolves with the echo. */
function echo(s: tls.TLSSocket, text: string): Promise<string> {
  return within(
    new Promise((resolve) => {
      let got = '';
      const on = (d: Buffer) => {
        got += d.toString('utf8');
        if (got.length >= text.length) {
          s.off('data', on);
          resolve(got);
        }
      };
      s.on('data', on);
      s.write(text);
    }),
    20_000,
    `the echo of ${text}`,
  );
}

/** The bytes of a real ClientHello, as Node's TLS client sends them. */
async function clientHello(): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const got = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (d: Buffer) => (resolve(d), s.destroy()))));
  const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false });
  client.on('error', () => {});
  const hello = await within(got, 10_000, 'a ClientHello');
  client.destroy();
  server.close();
  return hello;
}

/**
 * A backend whose connects never complete: a child process listens with an accept queue
 * of 1 and blocks (without spinning); once two connections fill the queue (Linux holds
 * backlog + 1), the kernel drops every further SYN. (A backlog of 0 is Node's default, 511.)
 */
async function blackhole(): Promise<{ port: number; child: ChildProcess; fillers: net.Socket[] }> {
  const code = `const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>{process.stdout.write(s.address().port+'\\n',()=>Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,120000))})`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await within(
    new Promise<number>((resolve) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(Number(out.trim()));
      });
    }),
    15_000,
    'the blackhole port',
  );
  const fillers = [0, 1].map(() => net.connect(port, '127.0.0.1').on('error', () => {}));
  await within(Promise.all(fillers.map((f) => new Promise((r) => f.once('connect', r)))), 15_000, 'the filler connections');
  return { port, child, fillers };
}

describe('deadline rules (fake clock)', () => {
  const s = { handshakeTimeoutMs: 1_000, idleTimeoutMs: 3_000, backendConnectTimeoutMs: 2_000 };
  const conn = (c: Partial<TimedConn>): TimedConn => ({ handshakeSince: 0, lastActive: 0, handshakeDone: false, backendConnectingSince: 0, idleClosingSince: 0, ...c });

  it('handshake: from accept until done', () => {
    expect(overdue(conn({}), 999, s)).toBeNull();
    expect(overdue(conn({}), 1_000, s)).toBe('handshake');
    expect(overdue(conn({ handshakeDone: true, lastActive: 900 }), 1_500, s)).toBeNull();
    expect(overdue(conn({}), 1e9, { ...s, handshakeTimeoutMs: 0 })).toBeNull();
    // From the latest takeover; no clock while no relay holds the connection.
    expect(overdue(conn({ handshakeSince: 5_000 }), 5_999, s)).toBeNull();
    expect(overdue(conn({ handshakeSince: 5_000 }), 6_000, s)).toBe('handshake');
    expect(overdue(conn({ handshakeSince: null }), 1e9, s)).toBeNull();
  });

  it('backend connect: from the connect until it completes, then idle', () => {
    const connecting = conn({ handshakeDone: true, lastActive: 100, backendConnectingSince: 100 });
    expect(overdue(connecting, 2_099, s)).toBeNull();
    expect(overdue(connecting, 2_100, s)).toBe('backendConnect');
    expect(overdue(connecting, 2_100, { ...s, backendConnectTimeoutMs: 0 })).toBeNull();
    // Connected (0): only idleness counts.
    expect(overdue({ ...connecting, backendConnectingSince: 0 }, 2_100, s)).toBeNull();
  });

  it('idle: since the last byte either way; then a grace for close_notify', () => {
    expect(overdue(conn({ handshakeDone: true, lastActive: 5_000 }), 7_999, s)).toBeNull();
    expect(overdue(conn({ handshakeDone: true, lastActive: 5_000 }), 8_000, s)).toBe('idle');
    expect(overdue(conn({ handshakeDone: true, lastActive: 5_000 }), 1e9, { ...s, idleTimeoutMs: 0 })).toBeNull();
    const closing = conn({ handshakeDone: true, lastActive: 5_000, idleClosingSince: 8_000 });
    expect(overdue(closing, 8_000 + IDLE_CLOSE_GRACE_MS - 1, s)).toBeNull();
    expect(overdue(closing, 8_000 + IDLE_CLOSE_GRACE_MS, s)).toBe('idleGrace');
  });

  it('one sweep for all: a quarter of the shortest deadline, 50 ms to 1 s', () => {
    expect(sweepPeriodMs(DEFAULT_DEADLINES)).toBe(1_000);
    expect(sweepPeriodMs(s)).toBe(250);
    expect(sweepPeriodMs({ ...s, handshakeTimeoutMs: 10 })).toBe(50);
    expect(sweepPeriodMs({ handshakeTimeoutMs: 0, idleTimeoutMs: 0, backendConnectTimeoutMs: 0 })).toBe(1_000);
  });
});

describe('deadlines and the connection limit (loopback)', () => {
  let t: TestCluster | null = null;
  const sockets: net.Socket[] = [];

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await t?.close();
    t = null;
  });

  it('closes a client trickling its ClientHello after the handshake deadline; a normal client is served', async () => {
    t = await startTestCluster({ relays: 1, deadlines: { handshakeTimeoutMs: 1_000 } });
    const port = t.cluster.address.port;
    const hello = await clientHello();
    const slow = net.connect(port, '127.0.0.1');
    sockets.push(slow);
    await within(new Promise((r) => slow.once('connect', r)), 10_000, 'the slow connect');
    const since = Date.now();
    let sent = 0;
    const drip = setInterval(() => {
      if (sent < hello.length && !slow.destroyed) slow.write(hello.subarray(sent, ++sent));
    }, 200);
    slow.on('error', () => {});
    try {
      const normal = await connectTls(port);
      sockets.push(normal);
      expect(await echo(normal, 'hello')).toBe('hello');
      await within(new Promise((r) => slow.once('close', r)), 15_000, 'the slow client closed');
      expect(Date.now() - since).toBeGreaterThanOrEqual(900);
      expect(sent).toBeLessThan(hello.length);
      expect(t.cluster.gateway.stats.handshakeTimeouts).toBe(1);
      // The normal client is untouched.
      expect(await echo(normal, 'still here')).toBe('still here');
    } finally {
      clearInterval(drip);
    }
  }, 60_000);

  it('closes an idle connection with close_notify; a chatty one carries on', async () => {
    t = await startTestCluster({ relays: 1, deadlines: { idleTimeoutMs: 1_000 } });
    const port = t.cluster.address.port;
    const idle = await connectTls(port);
    const chatty = await connectTls(port);
    sockets.push(idle, chatty);
    expect(await echo(idle, 'once')).toBe('once');
    const since = Date.now();
    // close_notify makes Node's TLS client emit 'end'.
    const ended = within(new Promise((r) => idle.once('end', r)), 15_000, 'close_notify on the idle connection');
    let talking = true;
    const talk = (async () => {
      let i = 0;
      while (talking) expect(await echo(chatty, `ping ${i++}`)).toBe(`ping ${i - 1}`);
    })();
    await ended;
    expect(Date.now() - since).toBeGreaterThanOrEqual(900);
    talking = false;
    await talk;
    expect(t.cluster.gateway.stats.idleTimeouts).toBe(1);
    await until('the idle connection to end in the gateway', () => t!.cluster.gateway.stats.connectionsActive === 1, 15_000);
    expect(await echo(chatty, 'after')).toBe('after');
  }, 60_000);

  it('gives up a backend connect that hangs after the deadline: the client gets a fatal alert', async () => {
    const hole = await blackhole();
    try {
      t = await startTestCluster({ relays: 1, backend: { host: '127.0.0.1', port: hole.port }, deadlines: { backendConnectTimeoutMs: 1_000 } });
      const client = await connectTls(t.cluster.address.port);
      sockets.push(client);
      const since = Date.now();
      const failed = within(
        new Promise<Error | null>((resolve) => {
          client.once('error', (e) => resolve(e));
          client.once('close', () => resolve(null));
        }),
        20_000,
        'the client to be failed',
      );
      client.write('anyone there?');
      const e = await failed;
      expect(Date.now() - since).toBeGreaterThanOrEqual(900);
      expect(e?.message ?? '').toMatch(/internal error/i);
      expect(t.cluster.gateway.stats.backendConnectTimeouts).toBe(1);
    } finally {
      for (const f of hole.fillers) f.destroy();
      hole.child.kill('SIGKILL');
    }
  }, 60_000);

  it('with at most 2 connections, a third waits unserved until one ends', async () => {
    t = await startTestCluster({ relays: 1, maxConnections: 2 });
    const port = t.cluster.address.port;
    const a = await connectTls(port);
    const b = await connectTls(port);
    sockets.push(a, b);
    expect(await echo(a, 'a')).toBe('a');
    expect(await echo(b, 'b')).toBe('b');
    let served = false;
    const third = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => (served = true));
    sockets.push(third);
    const secure = within(new Promise((r) => third.once('secureConnect', r)), 20_000, 'the third handshake');
    await until('the third connection to wait', () => t!.cluster.gateway.stats.connectionsWaiting === 1, 15_000);
    // Waiting: its ClientHello sits unread.
    expect(await echo(b, 'b again')).toBe('b again');
    expect(served).toBe(false);
    expect(t.cluster.gateway.stats.connectionsActive).toBe(2);
    a.destroy();
    await secure;
    expect(await echo(third, 'c')).toBe('c');
    expect(t.cluster.gateway.stats.connectionsQueued).toBe(1);
    expect(t.cluster.gateway.stats.connectionsWaiting).toBe(0);
  }, 60_000);
});
