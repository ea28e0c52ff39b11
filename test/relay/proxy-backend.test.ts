/**
 * PROXY protocol v2 toward the backend, through a real cluster: a raw TCP backend
 * written here parses the header and checks it against what Node's tls client knows
 * of its own connection, then echoes; and a relay crashed mid-stream must leave the
 * backend with exactly one header and every byte.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeProxyHeader, proxyHeaderLength, type ProxyHeader } from '../../src/relay/proxy-protocol.js';
import { Cluster } from '../../src/cluster/cluster.js';
import { P256_CERT, until } from '../helpers/cluster.js';
import { caPem } from '../helpers/interop.js';

/** One connection as the backend saw it: the headers it parsed and the plaintext after the first. */
interface BackendConn {
  headers: ProxyHeader[];
  data: Buffer;
  error: string | null;
}

/** A backend that takes one PROXY v2 header, then echoes; it counts any further header it finds at the stream's start as a second one. */
async function startProxyBackend(): Promise<{ server: net.Server; port: number; conns: BackendConn[] }> {
  const conns: BackendConn[] = [];
  const server = net.createServer((socket) => {
    const conn: BackendConn = { headers: [], data: Buffer.alloc(0), error: null };
    conns.push(conn);
    let pending = Buffer.alloc(0);
    let inHeader = true;
    socket.on('data', (chunk: Buffer) => {
      if (!inHeader) {
        conn.data = Buffer.concat([conn.data, chunk]);
        socket.write(chunk);
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      try {
        const length = proxyHeaderLength(pending);
        if (length === null || pending.length < length) return;
        conn.headers.push(decodeProxyHeader(pending).header);
        const rest = pending.subarray(length);
        inHeader = false;
        // A second header right behind the first would be a duplicate write.
        if (rest.length >= 12 && rest.subarray(0, 12).equals(Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'))) conn.headers.push(decodeProxyHeader(rest).header);
        conn.data = Buffer.from(rest);
        if (rest.length > 0) socket.write(rest);
      } catch (e) {
        conn.error = (e as Error).message;
        socket.destroy();
      }
    });
    socket.on('end', () => socket.end());
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as net.AddressInfo).port, conns };
}

function connect(port: number, alpn: string[]): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', ALPNProtocols: alpn });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

describe('PROXY protocol v2 to the backend', () => {
  let backend: Awaited<ReturnType<typeof startProxyBackend>>;
  let cluster: Cluster;
  const clients: tls.TLSSocket[] = [];

  beforeAll(async () => {
    backend = await startProxyBackend();
    cluster = await Cluster.start({
      relays: 2,
      listen: { host: '127.0.0.1', port: 0 },
      backend: { host: '127.0.0.1', port: backend.port },
      certificates: [P256_CERT],
      alpn: ['h2', 'http/1.1'],
      watchdogMs: 1000,
      proxyProtocol: 'v2',
    });
  });

  afterAll(async () => {
    for (const c of clients) c.destroy();
    await cluster?.close();
    backend?.server.close();
  });

  it('tells the backend the client address and port, the SNI, the ALPN and the cipher, then relays', async () => {
    const before = backend.conns.length;
    const s = await connect(cluster.address.port, ['http/1.1']);
    clients.push(s);
    await until('the backend connection', () => backend.conns.length > before && backend.conns[before]!.headers.length > 0, 10_000);
    const seen = backend.conns[before]!;
    expect(seen.error).toBeNull();
    expect(seen.headers).toHaveLength(1);
    expect(seen.headers[0]).toMatchObject({
      command: 'proxy',
      family: 'tcp4',
      source: { address: s.localAddress, port: s.localPort },
      destination: { address: '127.0.0.1', port: cluster.address.port },
      alpn: 'http/1.1',
      authority: 'localhost',
      ssl: { client: 1, verify: 0, version: 'TLSv1.3', cipher: s.getCipher().standardName },
    });
    s.write('hello backend');
    let echoed = '';
    s.on('data', (d: Buffer) => (echoed += d.toString()));
    await until('the echo', () => echoed === 'hello backend', 10_000);
    expect(seen.data.toString()).toBe('hello backend');
    s.end();
  });

  it('sends no ALPN TLV when none was agreed', async () => {
    const before = backend.conns.length;
    const s = await connect(cluster.address.port, []);
    clients.push(s);
    await until('the backend connection', () => backend.conns.length > before && backend.conns[before]!.headers.length > 0, 10_000);
    expect(backend.conns[before]!.headers[0]!.alpn).toBeNull();
    expect(backend.conns[before]!.headers[0]!.tlvs.map((t) => t.type)).toEqual([0x02, 0x20]);
    s.end();
  });

  it('an IPv6 client goes as TCP6', async () => {
    const v6 = await Cluster.start({
      relays: 1,
      listen: { host: '::1', port: 0 },
      backend: { host: '127.0.0.1', port: backend.port },
      certificates: [P256_CERT],
      proxyProtocol: 'v2',
    });
    try {
      const before = backend.conns.length;
      const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const c = tls.connect({ host: '::1', port: v6.address.port, ca: caPem, servername: 'localhost' });
        c.once('secureConnect', () => resolve(c));
        c.once('error', reject);
      });
      clients.push(s);
      await until('the backend connection', () => backend.conns.length > before && backend.conns[before]!.headers.length > 0, 10_000);
      expect(backend.conns[before]!.headers[0]).toMatchObject({
        family: 'tcp6',
        source: { address: '0:0:0:0:0:0:0:1', port: s.localPort },
        destination: { address: '0:0:0:0:0:0:0:1', port: v6.address.port },
      });
      s.end();
    } finally {
      await v6.close();
    }
  });

  it('a relay crash mid-stream leaves the backend with one header and every byte', async () => {
    await until('all relays up', () => cluster.relayNames.every((n) => cluster.threadIdOf(n) !== undefined), 20_000);
    const before = backend.conns.length;
    const s = await connect(cluster.address.port, ['h2']);
    clients.push(s);
    let echoed = 0;
    s.on('data', (d: Buffer) => (echoed += d.length));
    const line = (i: number) => `line ${i} ${'x'.repeat(200)}\n`;
    let sent = '';
    const send = (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        sent += line(i);
        s.write(line(i));
      }
    };
    send(0, 2000);
    await until('some bytes at the backend', () => (backend.conns[before]?.data.length ?? 0) > 0, 10_000, 1);
    const conn = cluster.gateway.connections().at(-1)!;
    const owner = conn.owner!;
    const thread = cluster.threadIdOf(owner);
    const takeovers = cluster.gateway.stats.takeovers;
    // Crash the owner while the rest of the stream is still in flight.
    send(2000, 4000);
    cluster.inject(owner, 'terminate');
    await until('a new owner', () => {
      const c = cluster.gateway.connections().find((x) => x.id === conn.id);
      return c !== undefined && c.owner !== null && c.owner !== owner;
    }, 20_000, 1);
    send(4000, 6000);
    await until(() => `the echo of all ${sent.length} bytes (${echoed})`, () => echoed === sent.length, 40_000);
    await until('the crashed relay back on a new thread', () => cluster.threadIdOf(owner) !== undefined && cluster.threadIdOf(owner) !== thread, 20_000);
    expect(cluster.gateway.stats.takeovers).toBeGreaterThan(takeovers);
    const seen = backend.conns[before]!;
    expect(backend.conns.length).toBe(before + 1);
    expect(seen.error).toBeNull();
    expect(seen.headers).toHaveLength(1);
    expect(seen.headers[0]!.alpn).toBe('h2');
    expect(seen.data.toString()).toBe(sent);
    s.end();
  }, 90_000);
});
