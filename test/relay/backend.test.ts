/**
 * The relay's backend side: a refused backend gives the client a fatal alert, not
 * a hang; half-close works both ways; and a slow reader on either side pauses the
 * other, so retained input and buffers stay bounded.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../src/cluster/cluster.js';
import { caPem, fixture } from '../helpers/interop.js';
import { sleep, until } from '../helpers/wait.js';

const MiB = 1 << 20;

/**
 * Resolves once `value()` has not changed for `quietMs` while `blocked()` holds (a
 * writer waiting for a drain that does not come); throws after `boundMs`. A machine
 * too busy to move bytes for `quietMs` only makes the stall look earlier: every
 * assertion after it is a bound on bytes, never on time.
 */
async function stalled(what: string, value: () => number, blocked: () => boolean, quietMs = 1_000, boundMs = 30_000): Promise<void> {
  const end = Date.now() + boundMs;
  let last = value();
  let since = Date.now();
  for (;;) {
    await sleep(25);
    const v = value();
    if (v !== last || !blocked()) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} to stall`);
  }
}

let cluster: Cluster | undefined;
let server: net.Server | undefined;
const backendSockets = new Set<net.Socket>();

afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
  // A paused backend socket never reads the FIN; close it from this side.
  for (const s of backendSockets) s.destroy();
  backendSockets.clear();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function backendServer(onSocket: (s: net.Socket) => void): Promise<number> {
  server = net.createServer({ allowHalfOpen: true }, (s) => {
    backendSockets.add(s);
    s.on('error', () => s.destroy());
    onSocket(s);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return (server.address() as net.AddressInfo).port;
}

async function start(backendPort: number): Promise<Cluster> {
  cluster = await Cluster.start({
    relays: 2,
    listen: { host: '127.0.0.1', port: 0 },
    backend: { host: '127.0.0.1', port: backendPort },
    certificates: [{ cert: fixture('ecdsa-p256.pem'), key: fixture('ecdsa-p256-key.pem') }],
  });
  return cluster;
}

async function connect(c: Cluster): Promise<tls.TLSSocket> {
  const s = tls.connect({ host: '127.0.0.1', port: c.address.port, ca: caPem, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', () => resolve());
    s.once('error', reject);
  });
  return s;
}

describe('backend side', () => {
  it('a refused backend ends the client connection with a fatal alert, never a hang', async () => {
    // A port with nothing listening: bind, note the port, close.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const deadPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const c = await start(deadPort);
    const client = await connect(c);
    const errors: Error[] = [];
    client.on('error', (e) => errors.push(e));
    client.write('anyone there?');
    await new Promise((r) => client.once('close', r));
    expect(errors.map((e) => e.message).join()).toMatch(/internal error/i);
  });

  it('half-close both ways: the client ends its side, the backend still answers, then ends', async () => {
    const port = await backendServer((s) => {
      const got: Buffer[] = [];
      s.on('data', (d: Buffer) => got.push(d));
      // After the client's end of stream arrives, answer and end ours.
      s.on('end', () => s.end(`you said: ${Buffer.concat(got).toString()}`));
    });
    const c = await start(port);
    const client = await connect(c);
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString()));
    const ended = new Promise((r) => client.once('end', r));
    client.end('hello, then goodbye');
    await ended;
    expect(reply).toBe('you said: hello, then goodbye');
  });

  it('a client that stops reading pauses the backend: buffers stay bounded', async () => {
    let written = 0;
    let backend: net.Socket | undefined;
    const port = await backendServer((s) => {
      backend = s;
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => {
        while (written < 256 * MiB && s.write(chunk)) written += chunk.length;
        if (written < 256 * MiB) s.once('drain', pump);
      };
      s.on('data', () => pump());
    });
    const c = await start(port);
    const client = await connect(c);
    client.write('start');
    // The backend's bytes arrive; then the client stops reading.
    await new Promise((r) => client.once('data', r));
    client.pause();
    // Without backpressure the backend would write all 256 MiB; it stalls waiting for a drain.
    await stalled('the backend', () => written, () => backend?.writableNeedDrain === true);
    const stalledAt = written;
    expect(stalledAt).toBeLessThan(64 * MiB);
    for (const conn of c.gateway.connections()) expect(conn.retainedBytes).toBeLessThanOrEqual(4 * MiB + 64 * 1024);
    let received = 0;
    client.on('data', (d: Buffer) => (received += d.length));
    client.resume();
    // Reading again drains the client side, which lets the backend write on.
    await until('bytes after resuming', () => received > 0);
    await until('the backend writing on', () => written > stalledAt);
    client.destroy();
  });

  it('a backend that stops reading pauses the client: its writes stop being accepted', async () => {
    const port = await backendServer((s) => s.pause());
    const c = await start(port);
    const client = await connect(c);
    const chunk = Buffer.alloc(64 * 1024, 1);
    let written = 0;
    const accepted = () => written - client.writableLength;
    // Write whenever the socket drains (bounded in bytes): without backpressure all 512 MiB would go.
    const writeOn = () => {
      while (written < 512 * MiB && client.write(chunk)) written += chunk.length;
      if (written < 512 * MiB) {
        written += chunk.length;
        client.once('drain', writeOn);
      }
    };
    writeOn();
    await stalled('the client', accepted, () => client.writableNeedDrain);
    // Nothing near what was offered leaves the client while the backend does not read.
    expect(accepted()).toBeLessThan(64 * MiB);
    expect(written).toBeLessThan(512 * MiB);
    for (const conn of c.gateway.connections()) expect(conn.retainedBytes).toBeLessThanOrEqual(4 * MiB + 64 * 1024);
    client.destroy();
  });
});
