/**
 * A node started with `--join` while NATS is unreachable (issue 15, faults): it serves
 * TLS on its own configuration at once, its start line and `baton status` say it has
 * not joined, and stateful tickets meanwhile resume at most once, on this node only.
 * Once a real nats-server comes up on that port the node joins by itself: a second node
 * started normally lists it, a reload asked of the second node reaches it, and a
 * stateful ticket from before the join resumes nowhere while one issued after it
 * resumes once across the nodes.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StatusResponse } from '../../src/cluster/admin-api.js';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { VerifyingClient } from '../../src/cli/demo/verifying-client.js';
import { baton, batonOnce, killAll, waitForMatch, type Run } from '../helpers/cli.js';
import { caPem, certDir } from '../helpers/interop.js';
import { freePort, startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { until } from '../helpers/wait.js';

const START_LINE = /^baton: \d+ relays? on 127\.0\.0\.1:(\d+) -> .*; node (\S+) of cluster \S+ on nats:\/\/[^;]+; admin http:\/\/127\.0\.0\.1:(\d+) \(token file (.+)\)$/m;
const FAST = { BATON_TEST_HEARTBEAT_MS: '200', BATON_TEST_MEMBER_TTL_MS: '1500' };
const P384 = new X509Certificate(readFileSync(path.join(certDir, 'ecdsa-p384.pem'))).fingerprint256;

interface Node {
  readonly run: Run;
  readonly port: number;
  readonly admin: string[];
  readonly certFile: string;
  readonly keyFile: string;
}

/** One short connection through the echo backend: whether `session` resumed, and the ticket it got. */
async function visit(port: number, session?: Buffer): Promise<{ fingerprint: string; reused: boolean; session: Buffer | undefined }> {
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

describe('baton cluster --join while NATS is unreachable: serve alone, join when it answers', () => {
  let nats: NatsServer | undefined;
  let backend: EchoBackend;
  let dir: string;
  const clients: VerifyingClient[] = [];

  beforeAll(async () => {
    backend = await startEchoBackend('127.0.0.1', 0);
    dir = await mkdtemp(path.join(os.tmpdir(), 'baton-nodes-down-'));
  }, 30_000);

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop(2_000).catch(() => {});
    killAll();
    await nats?.stop();
    nats = undefined;
  });

  afterAll(async () => {
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Starts node `name` on its own copy of the P-256 certificate (so that a reload can replace it). */
  async function node(name: string, natsUrl: string): Promise<Node> {
    const certFile = path.join(dir, `${name}.pem`);
    const keyFile = path.join(dir, `${name}-key.pem`);
    await copyFile(path.join(certDir, 'ecdsa-p256.pem'), certFile);
    await copyFile(path.join(certDir, 'ecdsa-p256-key.pem'), keyFile);
    const run = baton(
      [
        'cluster', '--drain-timeout', '0', '--relays', '1', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`,
        '--cert', certFile, '--key', keyFile, '--admin', '127.0.0.1:0', '--token-file', path.join(dir, `${name}.token`),
        '--tickets', 'stateful', '--join', natsUrl, '--node', name, '--cluster-name', 'down',
      ],
      FAST,
    );
    const m = await waitForMatch(run, START_LINE, 40_000, `the start line of node ${name}`);
    expect(m[2]).toBe(name);
    return { run, port: Number(m[1]), admin: ['--admin', `127.0.0.1:${m[3]}`, '--token-file', m[4]!], certFile, keyFile };
  }

  /** `/status` straight from the admin API (polled; `baton status` itself is run once below). */
  const status = async (n: Node): Promise<StatusResponse> => {
    const token = readFileSync(n.admin[3]!, 'utf8').trim();
    const res = await fetch(`http://${n.admin[1]}/status`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    return (await res.json()) as StatusResponse;
  };

  it('serves TLS and says it has not joined; joins when nats-server comes up; a second node lists it and its reload reaches it', async () => {
    const natsPort = await freePort();
    const natsUrl = `nats://127.0.0.1:${natsPort}`;
    const a = await node('a', natsUrl);
    expect(a.run.stdout).toMatch(/NATS unreachable: serving alone on this configuration, joining when it answers/);
    expect(a.run.stdout).toMatch(/"event":"node.joinWaiting"/);

    // TLS round trips through a to the echo backend while NATS is away.
    const client = new VerifyingClient({ host: '127.0.0.1', port: a.port, ca: caPem, servername: 'localhost', seed: 'nats-down', maxChunk: 1024, window: 4096 });
    clients.push(client);
    await client.connect();
    client.start();
    await until('echoed bytes through a while NATS is unreachable', () => client.bytesVerified > 0, 10_000);

    const alone = await status(a);
    expect(alone.join).toMatchObject({ joined: false, cluster: 'down', nats: natsUrl, lastError: expect.stringMatching(/cannot reach NATS/) });
    expect(alone.join!.failedAttempts).toBeGreaterThanOrEqual(1);
    expect(alone.nodes!.map((n) => [n.name, n.source])).toEqual([['a', 'self']]);
    const human = await batonOnce(['status', ...a.admin]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^not joined: NATS at ${natsUrl} unreachable since .*; serving alone, joining cluster down when it answers$`, 'm'));
    const crash = await batonOnce(['crash', '--node', 'b', '--relay', 'relay-0', ...a.admin]);
    expect(crash.code).not.toBe(0);
    expect(crash.stderr).toMatch(/node a has not joined cluster down yet/);

    // Stateful tickets without the cluster's store: once on a (its own memory), then a full handshake.
    const early = await visit(a.port);
    expect(early.reused).toBe(false);
    expect(early.session).toBeDefined();
    expect((await visit(a.port, early.session)).reused).toBe(true);
    expect((await visit(a.port, early.session)).reused).toBe(false);
    const beforeJoin = await visit(a.port);

    nats = await startNatsServer({ port: natsPort });
    await waitForMatch(a.run, /"event":"node.joinedLate"/, 20_000, 'a to join');
    expect((await status(a)).join).toMatchObject({ joined: true });

    const b = await node('b', natsUrl);
    expect(b.run.stdout).not.toMatch(/NATS unreachable/);
    await until('b to list a', async () => (await status(b)).nodes?.map((n) => `${n.name}:${n.source}`).join() === 'b:self,a:nats', 20_000, 100);
    expect((await status(a)).nodes?.map((n) => n.name)).toEqual(['a', 'b']);

    // A ticket from before the join was kept in a's own store: it resumes nowhere now.
    expect((await visit(a.port, beforeJoin.session)).reused).toBe(false);
    // One issued after it lives in the cluster's store: it resumes once, on any node.
    const shared = await visit(a.port);
    expect((await visit(b.port, shared.session)).reused).toBe(true);
    expect((await visit(a.port, shared.session)).reused).toBe(false);

    // b's certificate files are renewed and b is asked to reload: the version reaches a.
    const version = (await status(a)).config.version;
    await copyFile(path.join(certDir, 'ecdsa-p384.pem'), b.certFile);
    await copyFile(path.join(certDir, 'ecdsa-p384-key.pem'), b.keyFile);
    const reload = await batonOnce(['reload', ...b.admin]);
    expect(reload.stderr).toBe('');
    expect(reload.code).toBe(0);
    await until('the reload to reach a', async () => (await status(a)).config.version === version + 1, 20_000, 100);
    expect((await visit(a.port)).fingerprint).toBe(P384);

    // a's streaming client never noticed any of it.
    const streamed = client.bytesVerified;
    await until('more echoed bytes through a', () => client.bytesVerified > streamed, 10_000);
    expect(client.errors).toEqual([]);
    expect(a.run.child.exitCode).toBeNull();
  }, 90_000);
});
