/**
 * Several backends behind one cluster: round-robin spreads connections evenly,
 * least-connections sends a new one to the idle backend, and a backend killed
 * mid-run costs no client an error (its refused connects are retried elsewhere), gets
 * no connection once its checks fail `fall` times, and gets them again after `rise`.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { BackendsSpec } from '../../src/relay/backend-pool.js';
import { ClusterMetrics } from '../../src/cluster/metrics.js';
import { Cluster } from '../../src/cluster/cluster.js';
import { P256_CERT, until } from '../helpers/cluster.js';
import { caPem } from '../helpers/interop.js';

/** A backend that answers every read with its name, so the client knows who served it. */
interface NamedBackend {
  readonly name: string;
  port: number;
  served: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

function namedBackend(name: string): NamedBackend {
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  const b: NamedBackend = {
    name,
    port: 0,
    served: 0,
    start: () =>
      new Promise<void>((resolve, reject) => {
        const s = net.createServer((socket) => {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
          socket.on('error', () => socket.destroy());
          socket.on('data', () => {
            b.served++;
            socket.write(name);
          });
        });
        server = s;
        s.once('error', reject);
        s.listen(b.port, '127.0.0.1', () => {
          b.port = (s.address() as net.AddressInfo).port;
          resolve();
        });
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (!server) return resolve();
        server.close(() => resolve());
        server = null;
      }),
  };
  return b;
}

const backends = [namedBackend('a'), namedBackend('b'), namedBackend('c')];
let cluster: Cluster | undefined;
const clients = new Set<tls.TLSSocket>();

afterEach(async () => {
  for (const c of clients) c.destroy();
  clients.clear();
  await cluster?.close();
  cluster = undefined;
});

afterAll(async () => {
  await Promise.all(backends.map((b) => b.stop()));
});

async function start(spec: Omit<BackendsSpec, 'pools'>): Promise<Cluster> {
  for (const b of backends) if (b.port === 0) await b.start();
  cluster = await Cluster.start({
    relays: 2,
    listen: { host: '127.0.0.1', port: 0 },
    backend: { host: '127.0.0.1', port: backends[0]!.port },
    backends: { pools: { default: backends.map((b) => ({ host: '127.0.0.1', port: b.port })) }, ...spec },
    certificates: [P256_CERT],
  });
  return cluster;
}

/** Opens a TLS connection through the cluster, sends a byte, and resolves with the name of the backend that answered (the socket stays open). */
async function served(c: Cluster): Promise<{ name: string; socket: tls.TLSSocket }> {
  const socket = tls.connect({ host: '127.0.0.1', port: c.address.port, ca: caPem, servername: 'localhost' });
  clients.add(socket);
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before the backend answered')));
    socket.once('secureConnect', () => socket.write('x'));
    socket.once('data', (d: Buffer) => resolve({ name: d.toString(), socket }));
  });
}

/** Opens, learns who served, and closes (waiting for the close). */
async function visitOnce(c: Cluster): Promise<string> {
  const { name, socket } = await served(c);
  socket.removeAllListeners('close');
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    socket.end();
  });
  clients.delete(socket);
  return name;
}

const fast = { intervalMs: 100, rise: 2, fall: 2, connectTimeoutMs: 500 };

describe('several backends', () => {
  it('round-robin spreads connections evenly', async () => {
    const c = await start({ policy: 'round-robin', routes: [], health: fast });
    const names: string[] = [];
    for (let i = 0; i < 9; i++) names.push(await visitOnce(c));
    expect(names.filter((n) => n === 'a').length).toBe(3);
    expect(names.filter((n) => n === 'b').length).toBe(3);
    expect(names.filter((n) => n === 'c').length).toBe(3);
  }, 60_000);

  it('least-connections sends new connections to the idle backend', async () => {
    const c = await start({ policy: 'least-connections', routes: [], health: fast });
    const held = [await served(c), await served(c)];
    const busy = new Set(held.map((h) => h.name));
    expect(busy.size).toBe(2);
    const idle = backends.map((b) => b.name).find((n) => !busy.has(n))!;
    const pool = () => c.gateway.backends.status();
    for (let i = 0; i < 3; i++) {
      expect(await visitOnce(c)).toBe(idle);
      // Its connection is released when it closes, before the next one picks.
      await until('the idle backend released', () => pool().every((b) => b.active === (busy.has(nameOf(b.name)) ? 1 : 0)));
    }
  }, 60_000);

  it('routes by ALPN protocol and SNI name to a named pool', async () => {
    for (const b of backends) if (b.port === 0) await b.start();
    const at = (b: NamedBackend) => ({ host: '127.0.0.1', port: b.port });
    cluster = await Cluster.start({
      relays: 2,
      listen: { host: '127.0.0.1', port: 0 },
      backend: at(backends[0]!),
      backends: {
        pools: { default: [at(backends[0]!)], h2: [at(backends[1]!)], named: [at(backends[2]!)] },
        policy: 'round-robin',
        routes: [
          { serverName: 'localhost', alpn: 'http/1.1', pool: 'named' },
          { alpn: 'h2', pool: 'h2' },
        ],
        health: { ...fast, intervalMs: 0 },
      },
      alpn: ['h2', 'http/1.1'],
      certificates: [P256_CERT],
    });
    const c = cluster;
    const via = async (alpn: string[] | undefined): Promise<string> => {
      const socket = tls.connect({ host: '127.0.0.1', port: c.address.port, ca: caPem, servername: 'localhost', ...(alpn ? { ALPNProtocols: alpn } : {}) });
      clients.add(socket);
      const name = await new Promise<string>((resolve, reject) => {
        socket.once('error', reject);
        socket.once('secureConnect', () => socket.write('x'));
        socket.once('data', (d: Buffer) => resolve(d.toString()));
      });
      socket.destroy();
      return name;
    };
    expect(await via(['h2'])).toBe('b');
    expect(await via(['http/1.1'])).toBe('c');
    expect(await via(undefined)).toBe('a');
  }, 60_000);

  it('a refused connect is retried on another backend: the client sees no error', async () => {
    // No checks: only the retry keeps clients away from the dead backend.
    const c = await start({ policy: 'round-robin', routes: [], health: { ...fast, intervalMs: 0 } });
    const b = backends[2]!;
    const status = () => c.gateway.backends.status().find((s) => s.name === `127.0.0.1:${b.port}`)!;
    await b.stop();
    const names: string[] = [];
    for (let i = 0; i < 6; i++) names.push(await visitOnce(c));
    expect(names).not.toContain('c');
    expect(status().connectFailures).toBe(2);
    expect(status().up).toBe(true);
    await b.start();
  }, 60_000);

  it('a backend killed mid-run: no client error, no connection after fall, connections again after rise', async () => {
    const c = await start({ policy: 'round-robin', routes: [], health: fast });
    const b = backends[1]!;
    const status = () => c.gateway.backends.status().find((s) => s.name === `127.0.0.1:${b.port}`)!;
    await b.stop();
    // Before its checks fail, its refused connects are retried on another backend.
    const during: string[] = [];
    for (let i = 0; i < 6; i++) during.push(await visitOnce(c));
    expect(during).not.toContain('b');
    await until('backend b down', () => !status().up);
    const failuresAtDown = status().connectFailures;
    const after: string[] = [];
    for (let i = 0; i < 6; i++) after.push(await visitOnce(c));
    expect(after).not.toContain('b');
    expect(status().connectFailures).toBe(failuresAtDown);
    expect(status().checksFailed).toBeGreaterThanOrEqual(fast.fall);
    const metrics = new ClusterMetrics();
    metrics.attach(c);
    const text = await metrics.text();
    metrics.detach();
    expect(text).toContain(`baton_backend_up{backend="127.0.0.1:${b.port}"} 0`);
    expect(text).toContain(`baton_backend_up{backend="127.0.0.1:${backends[0]!.port}"} 1`);
    expect(text).toMatch(new RegExp(`baton_backend_health_checks_failed_total\\{backend="127\\.0\\.0\\.1:${b.port}"\\} [1-9]`));
    expect(text).toContain(`baton_backend_connect_failures_total{backend="127.0.0.1:${b.port}"} ${failuresAtDown}`);
    expect(text).toMatch(/baton_backend_connections_total\{backend="127\.0\.0\.1:\d+"\} [1-9]/);
    await b.start();
    await until('backend b up again', () => status().up);
    const back: string[] = [];
    for (let i = 0; i < 6; i++) back.push(await visitOnce(c));
    expect(back.filter((n) => n === 'b').length).toBe(2);
  }, 60_000);
});

/** The backend name ('a', 'b', 'c') listening at `127.0.0.1:port`. */
function nameOf(address: string): string {
  return backends.find((b) => address === `127.0.0.1:${b.port}`)?.name ?? '';
}
