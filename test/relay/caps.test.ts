/**
 * The caps and the budget an operator expects, against a real cluster on loopback,
 * with hand-built records on a raw socket (and Node's tls client for a real handshake
 * whose keys it logs): change_cipher_spec and warning-alert floods during a handshake
 * (unexpected_message), KeyUpdates asked for by a client that does not read (closed),
 * and the global budget for retained input (above it, connections holding more than
 * their share are not read).
 * Each shows in the gateway's counters and in the Prometheus text. Every wait is on an
 * event or a condition, with a bound.
 */
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { VerifyingClient } from '../../src/cli/demo/verifying-client.js';
import { ClusterMetrics } from '../../src/cluster/metrics.js';
import { Cluster, type ClusterOptions } from '../../src/cluster/cluster.js';
import { nextTrafficSecret } from '../../src/tls/crypto/key-schedule.js';
import { RecordSealer } from '../../src/tls/crypto/record-protection.js';
import { suiteByName } from '../../src/tls/crypto/suites.js';
import { concat } from '../../src/util/bytes.js';
import { P256_CERT, sleep, startTestCluster, until, type TestCluster } from '../helpers/cluster.js';
import { caPem } from '../helpers/interop.js';
import { deterministicServer, recordSession, toRecordSteps } from '../helpers/recorded-session.js';

const MiB = 1 << 20;
/** Node's ClientHello, as one plaintext record (any server answers it). */
const recorded = toRecordSteps((await recordSession(deterministicServer())).steps);
const HELLO = (recorded.find((s) => s.kind === 'client') as { bytes: Uint8Array }).bytes;
const CCS = Uint8Array.of(20, 3, 3, 0, 1, 1);
const USER_CANCELED = Uint8Array.of(21, 3, 3, 0, 2, 1, 90);

let running: TestCluster | undefined;
let cluster: Cluster | undefined;
let metrics: ClusterMetrics | undefined;
const sockets: net.Socket[] = [];
const servers: net.Server[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  metrics?.detach();
  metrics = undefined;
  await running?.close();
  running = undefined;
  await cluster?.close();
  cluster = undefined;
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
});

async function start(opts: Partial<ClusterOptions> = {}): Promise<Cluster> {
  running = await startTestCluster({ relays: 1, ...opts });
  metrics = new ClusterMetrics();
  metrics.attach(running.cluster);
  return running.cluster;
}

const metricsText = () => metrics!.registry.metrics();

/** A raw TCP connection to the cluster, collecting what it reads. */
async function raw(c: Cluster): Promise<{ socket: net.Socket; received: () => Buffer; closed: Promise<void> }> {
  const socket = net.connect(c.address.port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise((r, j) => socket.once('connect', r).once('error', j));
  return { socket, received: () => Buffer.concat(chunks), closed };
}

/** Resolves when `p` does, or throws naming `what` after `ms`. */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, j) => (timer = setTimeout(() => j(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

describe('caps during a handshake', () => {
  it('32 change_cipher_spec records are taken, the 33rd closes the connection with unexpected_message; counted', async () => {
    const c = await start();
    const client = await raw(c);
    client.socket.write(HELLO);
    // The server flight comes back: the handshake is waiting for the client Finished.
    await until('the server flight', () => client.received().length > 100);
    client.socket.write(concat(Array.from({ length: 32 }, () => CCS)));
    // 32 are taken: the connection is still open, and nothing is counted.
    const sent = client.received().length;
    client.socket.write(CCS);
    await bounded(client.closed, 20_000, 'the connection to close');
    // One protected record after the flight: the alert (under the handshake key).
    const tail = client.received().subarray(sent);
    expect(tail.length).toBe(5 + 2 + 1 + 16);
    expect(tail[0]).toBe(23);
    expect(c.gateway.stats.handshakeChangeCipherSpecCloses).toBe(1);
    expect(c.gateway.stats.handshakeWarningAlertCloses).toBe(0);
    expect(await metricsText()).toMatch(/^baton_limit_closes_total\{limit="handshake_change_cipher_spec"\} 1$/m);
  });

  it('past a cap of 5, a warning alert before the ClientHello gets unexpected_message in the clear; counted; below it a client goes on', async () => {
    const c = await start({ maxHandshakeWarningAlerts: 5 });
    const client = await raw(c);
    client.socket.write(concat(Array.from({ length: 5 }, () => USER_CANCELED)));
    client.socket.write(USER_CANCELED);
    await bounded(client.closed, 20_000, 'the connection to close');
    expect([...client.received()]).toEqual([21, 3, 3, 0, 2, 2, 10]);
    expect(c.gateway.stats.handshakeWarningAlertCloses).toBe(1);
    expect(await metricsText()).toMatch(/^baton_limit_closes_total\{limit="handshake_warning_alerts"\} 1$/m);
    // Below the cap a client goes on: 5 alerts, then a whole handshake.
    const ok = await raw(c);
    ok.socket.write(concat([...Array.from({ length: 5 }, () => USER_CANCELED), HELLO]));
    await until('the server flight', () => ok.received().length > 100);
    expect(c.gateway.stats.handshakeWarningAlertCloses).toBe(1);
  });
});

/**
 * Node's tls client over a pipe to a raw socket: the handshake is real (its keys are
 * logged), then the test takes the raw socket over and writes its own records under
 * the client application key, updating it after each KeyUpdate as section 4.6.3 says.
 */
async function takenOver(c: Cluster): Promise<{ socket: net.Socket; keyUpdate: (requested: boolean) => void; closeNotify: () => void; received: () => number }> {
  const socket = net.connect(c.address.port, '127.0.0.1');
  sockets.push(socket);
  socket.on('error', () => {});
  await new Promise((r, j) => socket.once('connect', r).once('error', j));
  let toNode = true;
  let received = 0;
  const pipe = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
  });
  socket.on('data', (d: Buffer) => {
    received += d.length;
    if (toNode) pipe.push(d);
  });
  const client = tls.connect({ socket: pipe, ca: caPem, servername: 'localhost', minVersion: 'TLSv1.3' });
  const keyLog: string[] = [];
  client.on('keylog', (line: Buffer) => keyLog.push(line.toString()));
  let tickets = 0;
  client.on('session', () => tickets++);
  await bounded(new Promise<void>((r, j) => client.once('secureConnect', () => r()).once('error', j)), 20_000, 'the handshake');
  // The tickets follow the handshake; after them the server sends nothing unasked.
  await until('the tickets', () => tickets >= 2);
  toNode = false;
  const line = keyLog.find((l) => l.startsWith('CLIENT_TRAFFIC_SECRET_0 '));
  const suite = suiteByName('TLS_AES_128_GCM_SHA256');
  let secret: Uint8Array = new Uint8Array(Buffer.from(line!.trim().split(' ')[2]!, 'hex'));
  // Node sent nothing under the application key: its first record is number 0.
  let sealer = new RecordSealer(suite, secret, 0);
  return {
    socket,
    keyUpdate: (requested) => {
      socket.write(sealer.seal(22, Uint8Array.of(24, 0, 0, 1, requested ? 1 : 0)));
      secret = nextTrafficSecret(suite.hash, secret);
      sealer = new RecordSealer(suite, secret, 0);
    },
    closeNotify: () => socket.write(sealer.seal(21, Uint8Array.of(1, 0))),
    received: () => received,
  };
}

/** A backend that sends `bytes` as fast as its socket drains, and reads nothing of note. */
async function floodingBackend(bytes: number): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => s.destroy());
    s.on('end', () => s.end());
    const chunk = Buffer.alloc(256 << 10, 0x5a);
    let sent = 0;
    const pump = () => {
      while (sent < bytes && s.write(chunk)) sent += chunk.length;
      if (sent < bytes) s.once('drain', pump);
    };
    pump();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as net.AddressInfo).port;
}

describe('KeyUpdates asked for by a client that does not read', () => {
  it('past --max-unread-key-updates the connection is closed (no alert: it would sit behind the unread output); counted', async () => {
    const backendPort = await floodingBackend(256 * MiB);
    cluster = await Cluster.start({
      relays: 1,
      listen: { host: '127.0.0.1', port: 0 },
      backend: { host: '127.0.0.1', port: backendPort },
      certificates: [P256_CERT],
      cipherSuites: ['TLS_AES_128_GCM_SHA256'],
      maxUnreadKeyUpdates: 8,
    });
    metrics = new ClusterMetrics();
    metrics.attach(cluster);
    const limited = new Promise<string>((r) => cluster!.gateway.once('limitExceeded', (l) => r(l.limit)));
    let hit = false;
    void limited.then(() => (hit = true));
    const client = await takenOver(cluster);
    // It stops reading: the backend's bytes pile up in front of it.
    client.socket.pause();
    let sent = 0;
    const deadline = Date.now() + 60_000;
    while (!hit && sent < 20_000 && Date.now() < deadline) {
      client.keyUpdate(true);
      sent++;
      await sleep(sent < 100 ? 20 : 5);
    }
    expect(await bounded(limited, 5_000, 'the cap')).toBe('unreadKeyUpdates');
    // At least the cap's worth was answered (and more, before the output backed up).
    expect(sent).toBeGreaterThan(8);
    expect(cluster.gateway.stats.unreadKeyUpdateCloses).toBe(1);
    expect(cluster.gateway.stats.connectionsActive).toBe(0);
    expect(await metricsText()).toMatch(/^baton_limit_closes_total\{limit="unread_key_updates"\} 1$/m);
  });

  it('a client that reads may ask for many more: 100 KeyUpdates answered, then a clean close', async () => {
    const c = await start({ cipherSuites: ['TLS_AES_128_GCM_SHA256'], maxUnreadKeyUpdates: 8 });
    const client = await takenOver(c);
    const before = client.received();
    for (let i = 0; i < 100; i++) client.keyUpdate(true);
    // Each is answered by a KeyUpdate of the server's: 100 records of 5 + 5 + 1 + 16 bytes.
    await until('100 answers', () => client.received() - before >= 100 * 27);
    client.closeNotify();
    const ended = new Promise<void>((r) => client.socket.once('end', () => r()));
    await bounded(ended, 20_000, 'the end of stream after close_notify');
    expect(c.gateway.stats.unreadKeyUpdateCloses).toBe(0);
    expect(c.gateway.stats.connectionsLost).toBe(0);
  });
});

describe('the global budget for retained input', () => {
  it('above --retained-budget connections holding more than their share are not read; below half of it reading resumes; nothing is lost', async () => {
    const budget = MiB;
    // One relay that hangs mid-stream: inputs pile up in the gateway, retained, until the
    // watchdog ends the hang and a restarted relay takes the connections over.
    const c = await start({ retainedBudgetBytes: budget, watchdogMs: 3_000 });
    const changes: boolean[] = [];
    // A connection that comes while the budget is reached holds nothing: it is read,
    // and its handshake goes on (one connection with much in flight stalls no other).
    let lateReceived = 0;
    c.gateway.on('retainedBudget', (b) => {
      changes.push(b.paused);
      if (b.paused && changes.length === 1) {
        const late = net.connect(c.address.port, '127.0.0.1');
        sockets.push(late);
        late.on('error', () => {});
        late.on('data', (d: Buffer) => (lateReceived += d.length));
        late.write(HELLO);
      }
    });
    const clients = await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const v = new VerifyingClient({ host: '127.0.0.1', port: c.address.port, ca: caPem, servername: 'localhost', seed: `budget-${i}`, window: 8 * MiB });
        await v.connect();
        return v;
      }),
    );
    await c.arm('relay-0', 'relay.midStream', 'hang');
    let peak = 0;
    const sample = setInterval(() => (peak = Math.max(peak, c.gateway.stats.retainedBytes)), 2);
    try {
      for (const v of clients) v.start();
      await until('the budget reached', () => changes.includes(true), 30_000, 2);
      expect(c.gateway.stats.retainedBudgetPaused || changes.includes(false)).toBe(true);
      await until('the budget left again (after the takeover replayed and committed)', () => changes.includes(false), 60_000);
      expect(peak).toBeGreaterThan(budget);
      // A share each of half the budget, over what was held when it was reached, and at
      // most a read more per connection: 1.5 times the budget, where the per-connection
      // limits alone would let 4 MiB pile up.
      expect(peak).toBeLessThan(1.5 * budget + 5 * (128 << 10));
      await until('the handshake of a connection that came under the budget', () => lateReceived > 100, 30_000);
      expect(await metricsText()).toMatch(/^baton_retained_budget_pauses_total [1-9]\d*$/m);
      expect(await metricsText()).toMatch(/^baton_retained_budget_bytes 1048576$/m);
      // Reading resumed: every client streams on, and nothing was lost.
      const at = clients.map((v) => v.bytesVerified);
      const state = () => JSON.stringify({ retained: c.gateway.stats.retainedBytes, conns: c.gateway.connections(), clients: clients.map((v) => [v.bytesSent, v.bytesVerified]) });
      await until(() => `every client streaming on: ${state()}`, () => clients.every((v, i) => v.bytesVerified > at[i]!), 60_000);
    } finally {
      clearInterval(sample);
      await Promise.all(clients.map((v) => v.stop()));
    }
    for (const v of clients) {
      expect(v.errors).toEqual([]);
      expect(v.bytesVerified).toBe(v.bytesSent);
    }
    expect(c.gateway.stats.connectionsLost).toBe(0);
    expect(await metricsText()).toMatch(/^baton_retained_bytes \d+$/m);
  }, 180_000);
});
