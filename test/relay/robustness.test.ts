/**
 * Faults confined to one connection: a malformed record closes only its own
 * connection with the right alert; a poison connection that crashes its owner
 * twice in a row is quarantined with a fatal alert while the cluster and every
 * other connection carry on; and `openssl s_client` streams through a takeover
 * without noticing.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SupervisorEvent } from '../../src/actors/index.js';
import { VerifyingClient } from '../../src/cli/demo/verifying-client.js';
import type { Cluster } from '../../src/cluster/cluster.js';
import { sleep, startTestCluster, until, type TestCluster } from '../helpers/cluster.js';
import { caPem } from '../helpers/interop.js';

let test: TestCluster;
let cluster: Cluster;
let events: SupervisorEvent[];

beforeAll(async () => {
  test = await startTestCluster();
  ({ cluster, events } = test);
}, 60_000);

afterAll(async () => {
  await test?.close();
});

const allUp = () => test.allUp();

async function verifyingClient(seed: string): Promise<VerifyingClient> {
  const c = new VerifyingClient({ host: '127.0.0.1', port: cluster.address.port, ca: caPem, servername: 'localhost', seed, window: 16_384 });
  await c.connect();
  return c;
}

/** A Node TLS client over a socket we can also write raw bytes to. */
async function rawCapableClient(): Promise<{ raw: net.Socket; client: tls.TLSSocket; errors: Error[] }> {
  const raw = net.connect(cluster.address.port, '127.0.0.1');
  await new Promise((r) => raw.once('connect', r));
  const client = tls.connect({ socket: raw, ca: caPem, servername: 'localhost' });
  const errors: Error[] = [];
  client.on('error', (e) => errors.push(e));
  await new Promise((r) => client.once('secureConnect', r));
  return { raw, client, errors };
}

describe('faults confined to one connection', () => {
  it('a malformed record closes only its own connection, with bad_record_mac', async () => {
    await until('all relays up', allUp);
    const bystander = await verifyingClient('bystander-1');
    bystander.start();
    const { raw, client, errors } = await rawCapableClient();
    const closed = new Promise((r) => client.once('close', r));
    // A well-framed application_data record whose tag cannot verify.
    raw.write(Buffer.concat([Buffer.from([23, 3, 3, 0, 40]), Buffer.alloc(40, 0xa5)]));
    await closed;
    expect(errors.map((e) => e.message).join()).toMatch(/bad record mac/i);
    // The bystander streams on past the other connection's end.
    const verified = bystander.bytesVerified;
    await until('the bystander streaming on', () => bystander.bytesVerified > verified);
    await bystander.stop();
    expect(bystander.errors).toEqual([]);
    expect(bystander.bytesVerified).toBeGreaterThan(0);
    expect(bystander.bytesVerified).toBe(bystander.bytesSent);
  });

  it('a poison connection is quarantined with a fatal alert; the others and new ones carry on', async () => {
    await until('all relays up', allUp);
    const bystander = await verifyingClient('bystander-2');
    const { client: poison, errors } = await rawCapableClient();
    // Every relay crashes on the next application data it relays: the owner dies,
    // the next owner replays the same input and dies too, so the input is poison.
    await Promise.all(cluster.relayNames.map((n) => cluster.arm(n, 'relay.midStream', 'throw')));
    const quarantinedBefore = cluster.gateway.stats.quarantined;
    const closed = new Promise((r) => poison.once('close', r));
    poison.write('this input crashes whoever relays it');
    await Promise.race([closed, sleep(8000).then(() => { throw new Error(`poison never closed: ${JSON.stringify([cluster.gateway.connections(), cluster.gateway.stats.quarantined, events.slice(-4).map((e) => [e.type, (e as { child?: string }).child])])}`); })]);
    expect(errors.map((e) => e.message).join(), JSON.stringify([cluster.gateway.stats, events.slice(-6)])).toMatch(/internal error/i);
    expect(cluster.gateway.stats.quarantined).toBe(quarantinedBefore + 1);
    // The relay that quarantined it never reached the point: disarm it before traffic resumes.
    for (const n of cluster.relayNames) if (cluster.threadIdOf(n) !== undefined) await cluster.arm(n, 'relay.midStream', 'throw', { times: 0 });
    await until('all relays up', allUp);
    const bystanderBefore = bystander.bytesVerified;
    bystander.start();
    await until('the bystander streaming again', () => bystander.bytesVerified > bystanderBefore);
    const fresh = await verifyingClient('after-quarantine');
    fresh.start();
    await until('a new connection streaming', () => fresh.bytesVerified > 0);
    await Promise.all([bystander.stop(), fresh.stop()]);
    for (const c of [bystander, fresh]) {
      expect(c.errors).toEqual([]);
      expect(c.handshakes).toBe(1);
      expect(c.bytesVerified).toBeGreaterThan(0);
      expect(c.bytesVerified).toBe(c.bytesSent);
    }
  });

  it('a stream whose owners are crashed by injection back to back, mid-replay, is never quarantined', async () => {
    await until('all relays up', allUp);
    const streamer = await verifyingClient('injected-back-to-back');
    streamer.start();
    const quarantinedBefore = cluster.gateway.stats.quarantined;
    const mine = () => cluster.gateway.connections().find((c) => c.handshakeDone && c.owner !== null && c.inputs > 4);
    for (let round = 0; round < 3; round++) {
      await until('all relays up', allUp);
      // The first crash must find input in flight, the second must come before the
      // new owner answered its replay: what the old rule counted as poison.
      await until('input in flight', () => {
        const c = mine();
        return c !== undefined && c.sentUpTo > c.outputUpTo;
      }, 20_000, 1);
      const first = mine()!;
      cluster.inject(first.owner!, 'terminate');
      await until('the new owner', () => {
        const c = cluster.gateway.connections().find((x) => x.id === first.id);
        return c !== undefined && c.owner !== null && c.owner !== first.owner;
      }, 20_000, 1);
      cluster.inject(cluster.gateway.connections().find((x) => x.id === first.id)!.owner!, 'terminate');
    }
    await until('all relays up', allUp);
    const verified = streamer.bytesVerified;
    await until('the stream moving again', () => streamer.bytesVerified > verified + 65_536);
    await streamer.stop();
    expect(cluster.gateway.stats.quarantined).toBe(quarantinedBefore);
    expect(streamer.errors).toEqual([]);
    expect(streamer.bytesVerified).toBe(streamer.bytesSent);
  });
});

const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8', timeout: 5_000 });
const haveOpenssl = openssl.status === 0;
if (!haveOpenssl) console.warn('robustness: no `openssl` binary on PATH; the s_client takeover test is skipped.');

describe('openssl s_client through a takeover', () => {
  let proc: ChildProcessWithoutNullStreams | undefined;
  afterAll(() => proc?.kill('SIGKILL'));

  it.skipIf(!haveOpenssl)('streams lines through two owner crashes without noticing', async () => {
    await until('all relays up', allUp);
    const dir = mkdtempSync(join(tmpdir(), 'baton-sclient-'));
    writeFileSync(join(dir, 'ca.pem'), caPem);
    proc = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${cluster.address.port}`, '-tls1_3', '-CAfile', join(dir, 'ca.pem'), '-servername', 'localhost', '-verify_return_error', '-quiet'], { stdio: 'pipe' });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    let exited = false;
    proc.on('exit', () => (exited = true));
    const lines: string[] = [];
    const send = async (i: number) => {
      const line = `line ${i} ${'x'.repeat(i * 37)}`;
      lines.push(line);
      proc!.stdin.write(`${line}\n`);
      await until(`echo of line ${i}`, () => out.includes(`${line}\n`));
    };
    await until('handshake', () => cluster.gateway.connections().some((c) => c.handshakeDone));
    for (let i = 0; i < 5; i++) await send(i);
    for (const kind of ['exit', 'terminate'] as const) {
      const [conn] = cluster.gateway.connections();
      cluster.inject(conn!.owner!, kind);
      for (let i = 0; i < 5; i++) await send(lines.length);
      await until('restart', () => allUp());
    }
    expect(out).toBe(lines.map((l) => `${l}\n`).join(''));
    expect(exited).toBe(false);
    expect(err).not.toMatch(/error|alert/i);
    proc.stdin.end();
  });
});
