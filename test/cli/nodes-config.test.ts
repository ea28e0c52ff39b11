/**
 * One configuration across `baton cluster --join` processes on one real nats-server:
 * a session issued on node a resumes on node b (shared ticket keys, Node's `tls`
 * client); `baton reload` asked of b, after b's --cert/--key files were replaced,
 * reaches a and c (their /status shows the new version and digest, and new
 * handshakes on a get the new certificate), and the session from before still
 * resumes on c, and after NATS went away and came back; POST /config on c rolls the next one out (timed without the CLI's
 * start); a node that joins later comes up on the active version, whatever
 * its own certificate; ticket keys rotate once for the whole cluster, and a ticket
 * sealed after a rotation still resumes on the other node.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StatusResponse } from '../../src/cluster/admin-api.js';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { baton, batonOnce, killAll, waitForMatch } from '../helpers/cli.js';
import { caPem, certDir } from '../helpers/interop.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { until } from '../helpers/wait.js';

const START_LINE = /^baton: \d+ relays? on 127\.0\.0\.1:(\d+) -> .*; certificate sha256 (\S+) .*; node (\S+) of cluster \S+ on nats:\/\/[^;]+; admin http:\/\/127\.0\.0\.1:(\d+) \(token file (.+)\)$/m;
const FAST = { BATON_TEST_HEARTBEAT_MS: '200', BATON_TEST_MEMBER_TTL_MS: '1500' };
const fingerprintOf = (file: string) => new X509Certificate(readFileSync(path.join(certDir, file))).fingerprint256;
const P256 = fingerprintOf('ecdsa-p256.pem');
const P384 = fingerprintOf('ecdsa-p384.pem');

interface Node {
  readonly port: number;
  readonly admin: string[];
  readonly served: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly stdout: () => string;
}

/** One short connection: the certificate served, whether `session` resumed, and the ticket it got. */
async function visit(port: number, session?: Buffer): Promise<{ fingerprint: string; reused: boolean; session: Buffer | undefined }> {
  // The fixtures name different hosts: the chain is checked, the name is not (the fingerprint says which one).
  const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', checkServerIdentity: () => undefined, ...(session ? { session } : {}) });
  try {
    let ticket: Buffer | undefined;
    const gotTicket = new Promise<void>((resolve) => s.on('session', (t: Buffer) => ((ticket ??= t), resolve())));
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    s.write('x');
    await new Promise((r) => s.once('data', r));
    // TLS 1.3 tickets come after the handshake; a resumed one may bring none.
    if (!session) await Promise.race([gotTicket, new Promise((r) => setTimeout(r, 5_000))]);
    return { fingerprint: s.getPeerX509Certificate()?.fingerprint256 ?? '', reused: s.isSessionReused(), session: ticket };
  } finally {
    s.end();
    s.destroy();
  }
}

describe('baton cluster --join: one configuration and shared sessions across nodes', () => {
  let nats: NatsServer;
  let backend: EchoBackend;
  let dir: string;

  beforeAll(async () => {
    nats = await startNatsServer();
    backend = await startEchoBackend('127.0.0.1', 0);
    dir = await mkdtemp(path.join(os.tmpdir(), 'baton-nodes-config-'));
  }, 30_000);

  afterEach(() => killAll());

  afterAll(async () => {
    await backend?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Starts node `name` on its own copy of a certificate, so that a reload can replace it. */
  async function node(name: string, cluster: string, cert = 'ecdsa-p256', extra: string[] = []): Promise<Node> {
    const certFile = path.join(dir, `${cluster}-${name}.pem`);
    const keyFile = path.join(dir, `${cluster}-${name}-key.pem`);
    await copyFile(path.join(certDir, `${cert}.pem`), certFile);
    await copyFile(path.join(certDir, `${cert}-key.pem`), keyFile);
    const run = baton(
      [
        'cluster', '--drain-timeout', '0', '--relays', '2', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`,
        '--cert', certFile, '--key', keyFile, '--admin', '127.0.0.1:0', '--token-file', path.join(dir, `${cluster}-${name}.token`),
        '--join', nats.url, '--node', name, '--cluster-name', cluster, ...extra,
      ],
      FAST,
    );
    const m = await waitForMatch(run, START_LINE, 60_000, `the start line of node ${name}`);
    expect(m[3]).toBe(name);
    return { port: Number(m[1]), served: m[2]!, admin: ['--admin', `127.0.0.1:${m[4]}`, '--token-file', m[5]!], certFile, keyFile, stdout: () => run.stdout };
  }

  const status = async (n: Node): Promise<StatusResponse> => {
    const r = await batonOnce(['status', '--json', ...n.admin]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as StatusResponse;
  };

  it('a session from a resumes on b; a reload asked of b reaches a and c, and sessions still resume across nodes', async () => {
    const a = await node('a', 'cfg');
    // b and c bring other certificates: they come up on the cluster's active version, a's.
    const [b, c] = await Promise.all([node('b', 'cfg', 'ecdsa-p384'), node('c', 'cfg', 'ecdsa-p384')]);
    expect(a.served).toBe(P256);
    expect(b.served).toBe(P256);
    expect(b.stdout()).toMatch(/the cluster's active version\)/);
    await until('a to see b and c', async () => (await status(a)).nodes?.map((n) => n.name).join() === 'a,b,c', 20_000, 100);
    const before = await status(a);
    expect((await status(b)).config).toEqual(before.config);
    expect((await status(c)).config).toEqual(before.config);
    expect((await visit(c.port)).fingerprint).toBe(P256);

    // A session issued on a resumes on b and on c: one ticket-key schedule.
    const first = await visit(a.port);
    expect(first.reused).toBe(false);
    expect(first.session).toBeDefined();
    expect((await visit(b.port, first.session)).reused).toBe(true);
    expect((await visit(c.port, first.session)).reused).toBe(true);

    // b's certificate files are renewed (P-384), and b is asked to reload.
    await copyFile(path.join(certDir, 'ecdsa-p384.pem'), b.certFile);
    await copyFile(path.join(certDir, 'ecdsa-p384-key.pem'), b.keyFile);
    const t0 = performance.now();
    const r = await batonOnce(['reload', ...b.admin]);
    const ms = performance.now() - t0;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = /configuration version (\d+) active \(digest ([0-9a-f]+)\)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    const version = Number(m![1]);
    expect(version).toBe(before.config.version + 1);
    console.log(`three-node rollout, baton reload on b to active on every node: ${ms.toFixed(0)} ms`);

    // Active on a and c as soon as b answered: the rollout waits for every live node.
    for (const n of [a, b, c]) {
      const s = await status(n);
      expect(s.config.version).toBe(version);
      expect(s.config.digest.startsWith(m![2]!)).toBe(true);
    }
    const onA = await status(a);
    expect(onA.nodes!.map((n) => [n.name, n.config.version])).toEqual([['a', version], ['b', version], ['c', version]]);
    // New handshakes on a (and c) get the certificate b loaded.
    expect((await visit(a.port)).fingerprint).toBe(P384);
    expect((await visit(c.port)).fingerprint).toBe(P384);
    // The ticket keys went with the version: a's old session still resumes on c, a new one from c on a.
    expect((await visit(c.port, first.session)).reused).toBe(true);
    const fresh = await visit(c.port);
    expect((await visit(a.port, fresh.session)).reused).toBe(true);

    // The rollout alone, without the CLI's start: POST /config to c (c's files are P-384 too).
    await copyFile(path.join(certDir, 'ecdsa-p256.pem'), c.certFile);
    await copyFile(path.join(certDir, 'ecdsa-p256-key.pem'), c.keyFile);
    const token = readFileSync(c.admin[3]!, 'utf8').trim();
    const t1 = performance.now();
    const res = await fetch(`http://${c.admin[1]}/config`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
    const posted = (await res.json()) as { ok: boolean; version: number };
    console.log(`three-node rollout, POST /config on c to active on every node: ${(performance.now() - t1).toFixed(0)} ms`);
    expect(res.status).toBe(200);
    expect(posted).toMatchObject({ ok: true, version: version + 1 });
    expect((await status(a)).config.version).toBe(version + 1);
    expect((await visit(b.port)).fingerprint).toBe(P256);
    expect(a.stdout()).toMatch(new RegExp(`node a runs configuration version ${version}`));
    // a says so in its own log, though the reload was asked of b.
    expect(a.stdout()).toMatch(new RegExp(`certificate sha256 ${P384} served to new handshakes \\(cluster configuration version ${version}\\)`));
  }, 180_000);

  it('a node that joins later comes up on the active version; a node of another cluster keeps its own', async () => {
    const a = await node('a', 'late', 'ecdsa-p384');
    const first = await visit(a.port);
    const b = await node('b', 'late');
    expect(b.served).toBe(P384);
    expect((await status(b)).config).toEqual((await status(a)).config);
    expect((await visit(b.port, first.session)).reused).toBe(true);
    // Another cluster on the same NATS shares nothing: its own certificate, its own keys.
    const other = await node('a', 'apart');
    expect(other.served).toBe(P256);
    expect((await visit(other.port, first.session)).reused).toBe(false);
  }, 180_000);

  it('ticket keys rotate once for the whole cluster: both nodes run every rotated version, and sessions resume across nodes', async () => {
    // Both nodes ask for a rotation every 3 s; the cluster rotates once a period, not once per node.
    const file = path.join(dir, 'rotate.yaml');
    const cert = `{ cert: ${path.join(certDir, 'ecdsa-p256.pem')}, key: ${path.join(certDir, 'ecdsa-p256-key.pem')} }`;
    await writeFile(file, `listeners:\n  - address: 127.0.0.1:0\n    certificates: [${cert}]\nbackend: 127.0.0.1:9\ntickets: { rotationSeconds: 3 }\n`);
    const [a, b] = await Promise.all([node('a', 'rot', 'ecdsa-p256', ['--config', file]), node('b', 'rot', 'ecdsa-p256', ['--config', file])]);
    const v0 = (await status(a)).config.version;
    const t0 = performance.now();
    await until('two rotations', async () => (await status(a)).config.version >= v0 + 2, 30_000, 100);
    expect(performance.now() - t0).toBeGreaterThan(2_500);
    // One view from a: its own version and b's, asked over NATS at the same moment.
    await until('b on a\'s version', async () => {
      const [self, other] = (await status(a)).nodes ?? [];
      return other?.name === 'b' && other.source === 'nats' && self!.config.version >= v0 + 2 && JSON.stringify(other.config) === JSON.stringify(self!.config);
    }, 20_000, 100);
    const fromA = await visit(a.port);
    expect((await visit(b.port, fromA.session)).reused).toBe(true);
    const fromB = await visit(b.port);
    expect((await visit(a.port, fromB.session)).reused).toBe(true);
  }, 180_000);

  it('after NATS went away and came back, a reload asked of b still reaches a', async () => {
    const [a, b] = await Promise.all([node('a', 'outage'), node('b', 'outage')]);
    await until('a to see b', async () => (await status(a)).nodes?.map((n) => n.source).join() === 'self,nats', 20_000, 100);
    const first = await visit(a.port);
    await nats.stop({ keepStore: true });
    await until('a to lose NATS', () => /NATS connection lost/.test(a.stdout()), 15_000, 100);
    // Both serve on, on the version they run, and a session from a still resumes on b.
    expect((await visit(b.port, first.session)).reused).toBe(true);
    nats = await startNatsServer({ port: nats.port, storeDir: nats.storeDir });
    await until('a and b back on NATS', () => /NATS connection back/.test(a.stdout()) && /NATS connection back/.test(b.stdout()), 30_000, 100);
    const before = (await status(a)).config.version;
    await copyFile(path.join(certDir, 'ecdsa-p384.pem'), b.certFile);
    await copyFile(path.join(certDir, 'ecdsa-p384-key.pem'), b.keyFile);
    const token = readFileSync(b.admin[3]!, 'utf8').trim();
    // The buckets may still be reopening a moment after the reconnect: a refused reload is asked again (bounded).
    let answer: { ok: boolean; version: number; error?: string } = { ok: false, version: before };
    await until('the reload on b to be applied', async () => {
      const res = await fetch(`http://${b.admin[1]}/config`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
      answer = (await res.json()) as typeof answer;
      return answer.ok;
    }, 30_000, 500);
    expect(answer.version).toBe(before + 1);
    await until('a on the new version', async () => (await status(a)).config.version === before + 1, 10_000, 100);
    expect((await visit(a.port)).fingerprint).toBe(P384);
  }, 180_000);
});
