/**
 * Determinism across takeover: with reproducible randomness and clock, the bytes
 * a client receives through a run with relay crashes (mid-handshake and
 * mid-stream) are identical to those of the same run without any crash.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import type { SupervisorEvent } from '../../src/actors/index.js';
import type { Cluster } from '../../src/cluster/cluster.js';
import { sleep, startTestCluster, until, type TestCluster } from '../helpers/cluster.js';
import { caPem, fixture } from '../helpers/interop.js';

const MESSAGES = 12;

/** What the recording run saw: each client write, and how many server bytes had arrived before it. */
interface Recording {
  readonly writes: { readonly bytes: Buffer; readonly receivedBefore: number }[];
  readonly received: Buffer;
}

let running: TestCluster | undefined;

afterEach(async () => {
  await running?.close();
  running = undefined;
});

async function startCluster(events: SupervisorEvent[]): Promise<Cluster> {
  await running?.close();
  running = await startTestCluster({
    // Ed25519 signs deterministically; ECDSA and RSA-PSS draw a fresh nonce or salt per
    // signature, so two runs would differ at CertificateVerify. (Within one run a flight
    // is never signed twice once it has left: it is replicated before it is released.)
    certificates: [{ cert: fixture('ed25519.pem'), key: fixture('ed25519-key.pem') }],
    ticketKeys: { current: { id: new Uint8Array(16).fill(1), secret: new Uint8Array(32).fill(2) } },
    reproducible: { seed: 'determinism', clockMs: 1_800_000_000_000 },
    onEvent: (e) => events.push(e),
  });
  return running.cluster;
}

/** Runs Node's TLS client over a recording pipe: request/response, so input order is fixed. */
async function record(port: number): Promise<Recording> {
  const raw = net.connect(port, '127.0.0.1');
  await new Promise((r) => raw.once('connect', r));
  const writes: Recording['writes'] = [];
  const received: Buffer[] = [];
  let receivedBytes = 0;
  const pipe = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      writes.push({ bytes: Buffer.from(chunk), receivedBefore: receivedBytes });
      raw.write(chunk, cb);
    },
  });
  raw.on('data', (d: Buffer) => {
    received.push(d);
    receivedBytes += d.length;
    pipe.push(d);
  });
  const client = tls.connect({ socket: pipe, ca: caPem, servername: 'ed.example.test', minVersion: 'TLSv1.3' });
  await new Promise<void>((resolve, reject) => {
    client.once('secureConnect', () => resolve());
    client.once('error', reject);
  });
  let echoed = 0;
  let tickets = 0;
  client.on('data', (d: Buffer) => (echoed += d.length));
  client.on('session', () => tickets++);
  // The tickets follow the client Finished; let both arrive before the first request.
  await until('tickets', () => receivedBytes > 0 && writes.length >= 2 && tickets >= 2);
  for (let i = 0; i < MESSAGES; i++) {
    const msg = createHash('sha512').update(`message ${i}`).digest();
    const want = echoed + msg.length * 10;
    client.write(Buffer.concat(Array.from({ length: 10 }, () => msg)));
    await until(`echo ${i}`, () => echoed >= want);
  }
  client.destroy();
  raw.destroy();
  return { writes, received: Buffer.concat(received) };
}

/** Replays the recorded client writes in the same order against the same points, crashing relays on the way. */
async function replay(c: Cluster, rec: Recording, crashBefore: ReadonlySet<number>, events: SupervisorEvent[]): Promise<Buffer> {
  const raw = net.connect(c.address.port, '127.0.0.1');
  await new Promise((r) => raw.once('connect', r));
  const received: Buffer[] = [];
  let receivedBytes = 0;
  raw.on('data', (d: Buffer) => {
    received.push(d);
    receivedBytes += d.length;
  });
  for (let j = 0; j < rec.writes.length; j++) {
    const w = rec.writes[j]!;
    await until(`server bytes before write ${j}`, () => receivedBytes >= w.receivedBefore);
    if (crashBefore.has(j)) {
      const [conn] = c.gateway.connections();
      const crashes = events.filter((e) => e.type === 'Crashed').length;
      c.inject(conn!.owner!, j % 2 ? 'exit' : 'throw');
      await until('crash detected', () => events.filter((e) => e.type === 'Crashed').length > crashes);
      await until('takeover', () => c.gateway.connections()[0]?.owner !== conn!.owner);
      // Let the crashed relay come back, so every crash is handled alone.
      await until('restart', () => c.relayNames.every((n) => c.threadIdOf(n) !== undefined));
    }
    raw.write(w.bytes);
  }
  await until('all server bytes', () => receivedBytes >= rec.received.length);
  await sleep(100);
  raw.destroy();
  return Buffer.concat(received);
}

describe('determinism across takeover', () => {
  it('a client receives the same bytes with crashes (mid-handshake, mid-stream) as without', async () => {
    const events: SupervisorEvent[] = [];
    const first = await startCluster(events);
    const rec = await record(first.address.port);
    expect(rec.writes.length).toBeGreaterThan(MESSAGES);

    // The same run, replayed without a crash, gives the same bytes (the baseline is reproducible)...
    const again = await startCluster(events);
    const plain = await replay(again, rec, new Set(), events);
    expect(plain.equals(rec.received)).toBe(true);

    // ...and so does one whose owner relay dies before the client Finished and twice mid-stream.
    const crashed = await startCluster(events);
    const finishedWrite = 1; // writes[0] is the ClientHello; writes[1] carries the client Finished
    const withCrashes = await replay(crashed, rec, new Set([finishedWrite, finishedWrite + 3, finishedWrite + 8]), events);
    expect(crashed.gateway.stats.takeovers).toBe(3);
    expect(withCrashes.length).toBe(rec.received.length);
    expect(withCrashes.equals(rec.received)).toBe(true);
  }, 120_000);
});
