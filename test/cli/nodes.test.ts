/**
 * Two `baton cluster --join` processes (nodes a and b) on one real nats-server, as an
 * operator runs them: `baton status` on a lists both nodes with their relays,
 * connections and configuration version; `baton crash --node b --relay relay-1` asked
 * of a crashes b's relay, b's own status shows the crash and the restart, and a TLS
 * client streaming through b sees nothing. A node killed outright leaves the
 * membership once its heartbeats expire. Bad --join and --node values are refused; a
 * NATS that does not answer is not (the node serves alone meanwhile).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StatusResponse } from '../../src/cluster/admin-api.js';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { VerifyingClient } from '../../src/cli/demo/verifying-client.js';
import { baton, batonOnce, killAll, waitForMatch, type Run } from '../helpers/cli.js';
import { caPem, certDir } from '../helpers/interop.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { until } from '../helpers/wait.js';

const START_LINE = /^baton: \d+ relays? on 127\.0\.0\.1:(\d+) -> .*; node (\S+) of cluster (\S+) on nats:\/\/[^;]+; admin http:\/\/127\.0\.0\.1:(\d+) \(token file (.+)\)$/m;
const FAST = { BATON_TEST_HEARTBEAT_MS: '200', BATON_TEST_MEMBER_TTL_MS: '1500' };

describe('baton cluster --join: several nodes on one NATS', () => {
  let nats: NatsServer;
  let backend: EchoBackend;
  let dir: string;
  const clients: VerifyingClient[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    backend = await startEchoBackend('127.0.0.1', 0);
    dir = await mkdtemp(path.join(os.tmpdir(), 'baton-nodes-'));
  }, 30_000);

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop(2_000).catch(() => {});
    killAll();
  });

  afterAll(async () => {
    await backend?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function node(name: string, cluster: string): Promise<{ run: Run; port: number; admin: string[] }> {
    const tokenFile = path.join(dir, `${cluster}-${name}.token`);
    const run = baton(
      [
        'cluster', '--drain-timeout', '0', '--relays', '2', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`,
        '--cert', path.join(certDir, 'ecdsa-p256.pem'), '--key', path.join(certDir, 'ecdsa-p256-key.pem'),
        '--admin', '127.0.0.1:0', '--token-file', tokenFile, '--watchdog-ms', '500',
        '--join', nats.url, '--node', name, '--cluster-name', cluster,
      ],
      FAST,
    );
    const m = await waitForMatch(run, START_LINE, 40_000, `the start line of node ${name}`);
    expect(m[2]).toBe(name);
    expect(m[3]).toBe(cluster);
    return { run, port: Number(m[1]), admin: ['--admin', `127.0.0.1:${m[4]}`, '--token-file', m[5]!] };
  }

  const status = async (admin: string[]): Promise<StatusResponse> => {
    const r = await batonOnce(['status', '--json', ...admin]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as StatusResponse;
  };

  it('status on a lists both nodes; crash --node b from a crashes b\'s relay and b\'s connections survive', async () => {
    const [a, b] = await Promise.all([node('a', 'one'), node('b', 'one')]);
    await until('a to see b', async () => (await status(a.admin)).nodes?.length === 2, 20_000, 100);

    const client = new VerifyingClient({ host: '127.0.0.1', port: b.port, ca: caPem, servername: 'localhost', seed: 'nodes', maxChunk: 4096, window: 16_384 });
    clients.push(client);
    await client.connect();
    client.start();
    await until('echoed bytes through b', () => client.bytesVerified > 0, 10_000);

    const fromA = await status(a.admin);
    expect(fromA.node).toBe('a');
    expect(fromA.nodes!.map((n) => [n.name, n.source])).toEqual([['a', 'self'], ['b', 'nats']]);
    const nb = fromA.nodes!.find((n) => n.name === 'b')!;
    expect(nb.relays.map((r) => r.name)).toEqual(['relay-0', 'relay-1']);
    expect(nb.relays.every((r) => r.up)).toBe(true);
    expect(nb.connections.active).toBe(1);
    expect(nb.config.version).toBe(1);
    expect(nb.admin).toBe(b.admin[1]);

    // The human view has one row per node.
    const human = await batonOnce(['status', ...a.admin]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^NODE\s+RELAYS UP/m);
    expect(human.stdout).toMatch(/^a\s+2\/2\s+relay-0, relay-1\s+0 active/m);
    expect(human.stdout).toMatch(/^b\s+2\/2\s+relay-0, relay-1\s+1 active .* now$/m);

    // The relay that owns the client's connection on b, so the crash takes it over.
    const owner = (await status(b.admin)).connections.list[0]!.owner!;
    const sibling = owner === 'relay-0' ? 'relay-1' : 'relay-0';
    const crash = await batonOnce(['crash', '--node', 'b', '--relay', owner, '--kind', 'exit', ...a.admin]);
    expect(crash.stderr).toBe('');
    expect(crash.code).toBe(0);
    expect(crash.stdout).toMatch(new RegExp(`^crashed ${owner} on node b \\(thread \\d+\\) with exit$`, 'm'));
    await until('b to restart the relay', async () => (await status(b.admin)).relays.find((r) => r.name === owner)!.restarts === 1, 20_000, 100);
    const onB = await status(b.admin);
    expect(onB.relays.find((r) => r.name === owner)!.lastCrash?.fault?.kind).toBe('exit');
    expect(onB.relays.find((r) => r.name === sibling)!.restarts).toBe(0);
    expect(onB.takeovers.count).toBe(1);
    expect(b.run.stdout).toMatch(new RegExp(`"event":"relay.restarted","relay":"${owner}"`));
    // a's relays were not touched.
    expect((await status(a.admin)).relays.every((r) => r.restarts === 0)).toBe(true);
    // b's TLS connection went on through the crash.
    const before = client.bytesVerified;
    await until('more echoed bytes after the crash', () => client.bytesVerified > before, 10_000);
    expect(client.errors).toEqual([]);
    expect(onB.lost).toBe(0);

    // Unknown nodes and relays are named.
    const unknown = await batonOnce(['crash', '--node', 'zz', '--relay', 'relay-1', ...a.admin]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no live node named "zz" in cluster one \(live nodes: a, b\)/);
    const noRelay = await batonOnce(['crash', '--node', 'b', '--relay', 'relay-9', ...a.admin]);
    expect(noRelay.stderr).toMatch(/node b: relay: no relay named "relay-9"/);
  }, 120_000);

  it('a killed node leaves the membership when its heartbeats expire; a second node of one name is refused', async () => {
    const [a, b] = await Promise.all([node('a', 'two'), node('b', 'two')]);
    await until('a to see b', async () => (await status(a.admin)).nodes?.length === 2, 20_000, 100);
    const dup = await batonOnce(
      ['cluster', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`, '--admin', 'off', '--join', nats.url, '--node', 'b', '--cluster-name', 'two'],
      FAST,
      40_000,
    );
    expect(dup.code).not.toBe(0);
    expect(dup.stderr).toMatch(/--node b: another live node of this cluster has that name/);
    b.run.child.kill('SIGKILL');
    await until('b to expire', async () => (await status(a.admin)).nodes?.map((n) => n.name).join() === 'a', 20_000, 100);
    const gone = await batonOnce(['crash', '--node', 'b', '--relay', 'relay-1', ...a.admin]);
    expect(gone.stderr).toMatch(/no live node named "b"/);
  }, 120_000);

  it('NATS going away is logged and the nodes serve on; they see each other again when it is back', async () => {
    const [a, b] = await Promise.all([node('a', 'three'), node('b', 'three')]);
    await until('a to see b', async () => (await status(a.admin)).nodes?.map((n) => n.source).join() === 'self,nats', 20_000, 100);
    await nats.stop({ keepStore: true });
    await waitForMatch(a.run, /NATS connection lost; serving on, reconnecting/, 15_000, 'the disconnect line');
    // Both still serve TLS, and a's status still answers, b from its last heartbeat.
    const client = new VerifyingClient({ host: '127.0.0.1', port: a.port, ca: caPem, servername: 'localhost', seed: 'outage', maxChunk: 1024, window: 4096 });
    clients.push(client);
    await client.connect();
    client.start();
    await until('echoed bytes through a while NATS is down', () => client.bytesVerified > 0, 10_000);
    const down = await status(a.admin);
    expect(down.nodes!.find((n) => n.name === 'b')).toMatchObject({ source: 'heartbeat', error: expect.stringMatching(/BATON_ERR_UNREACHABLE|not reachable/) });
    nats = await startNatsServer({ port: nats.port, storeDir: nats.storeDir });
    await until('a to reach b again', async () => (await status(a.admin)).nodes?.map((n) => n.source).join() === 'self,nats', 30_000, 200);
    expect(a.run.stdout).toMatch(/NATS connection back/);
    expect(a.run.child.exitCode).toBeNull();
    expect(b.run.child.exitCode).toBeNull();
    expect(client.errors).toEqual([]);
  }, 120_000);

  it('refuses bad --join and --node values; a NATS that does not answer does not stop a node', async () => {
    const base = ['cluster', '--listen', '127.0.0.1:0', '--backend', '127.0.0.1:9', '--admin', 'off'];
    const bad = async (args: string[], pattern: RegExp) => {
      const r = await batonOnce([...base, ...args], {}, 40_000);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(pattern);
    };
    await bad(['--join', 'http://127.0.0.1:4222'], /--join "http:\/\/127.0.0.1:4222" has scheme http; only nats:\/\/ is supported/);
    await bad(['--join', '127.0.0.1:4222'], /--join "127.0.0.1:4222" is not a URL; expected nats:\/\/HOST:PORT/);
    await bad(['--join', nats.url, '--node', 'a.b'], /--node "a.b" is not a node name/);
    await bad(['--node', 'a'], /--node needs --join/);
    // It serves alone and keeps trying (nodes-nats-down.test.ts), and a SIGINT still closes it cleanly.
    const waiting = baton([...base, '--join', 'nats://127.0.0.1:1', '--node', 'x']);
    await waitForMatch(waiting, /^baton: .*; node x of cluster baton on nats:\/\/127\.0\.0\.1:1 \(NATS unreachable: serving alone on this configuration, joining when it answers\); admin off$/m, 40_000, 'the start line of node x');
    expect(waiting.stdout).toMatch(/cannot join cluster baton as node x: cannot reach NATS/);
    waiting.child.kill('SIGINT');
    expect(await waiting.exit).toBe(0);
  }, 120_000);
});
