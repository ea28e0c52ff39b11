/**
 * Each node authenticates to NATS with its own NKey (`--nats-nkey FILE`): a real
 * nats-server that lists only the public keys of nodes a and b lets them form one
 * cluster; a node with no credentials, or with a key the server does not list, is
 * refused with an error that says so and names the key's public half, never the seed,
 * and exits 2 (a configuration error), also when it was refused only after serving
 * while NATS was unreachable.
 * A seed file others can read is refused before anything starts.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { nkeys } from '@nats-io/nats-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StatusResponse } from '../../src/cluster/admin-api.js';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { baton, batonOnce, killAll, waitForMatch, withTimeout } from '../helpers/cli.js';
import { certDir } from '../helpers/interop.js';
import { freePort, startNatsServer, type NatsServer } from '../helpers/nats-server.js';
import { until } from '../helpers/wait.js';

const START_LINE = /^baton: \d+ relays? on 127\.0\.0\.1:(\d+) -> .*; node (\S+) of cluster (\S+) on nats:\/\/[^;]+; admin http:\/\/127\.0\.0\.1:(\d+) \(token file (.+)\)$/m;
const FAST = { BATON_TEST_HEARTBEAT_MS: '200', BATON_TEST_MEMBER_TTL_MS: '1500' };

interface Key {
  readonly seed: string;
  readonly publicKey: string;
  readonly file: string;
}

describe('baton cluster --join --nats-nkey: each node with its own NATS credentials', () => {
  let nats: NatsServer;
  let backend: EchoBackend;
  let dir: string;
  const keys: Record<'a' | 'b' | 'stranger', Key> = {} as never;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'baton-nodes-auth-'));
    for (const name of ['a', 'b', 'stranger'] as const) {
      const kp = nkeys.createUser();
      const seed = new TextDecoder().decode(kp.getSeed());
      const file = path.join(dir, `${name}.nk`);
      await writeFile(file, `${seed}\n`, { mode: 0o600 });
      keys[name] = { seed, publicKey: kp.getPublicKey(), file };
    }
    const conf = path.join(dir, 'nats.conf');
    await writeFile(conf, `authorization {\n  users = [\n    { nkey: "${keys.a.publicKey}" }\n    { nkey: "${keys.b.publicKey}" }\n  ]\n}\n`);
    nats = await startNatsServer({ configFile: conf });
    backend = await startEchoBackend('127.0.0.1', 0);
  }, 30_000);

  afterEach(() => killAll());

  afterAll(async () => {
    await backend?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const clusterArgs = (name: string, extra: string[]) => [
    'cluster', '--drain-timeout', '0', '--relays', '1', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`,
    '--cert', path.join(certDir, 'ecdsa-p256.pem'), '--key', path.join(certDir, 'ecdsa-p256-key.pem'),
    '--admin', '127.0.0.1:0', '--token-file', path.join(dir, `${name}.token`),
    '--join', nats.url, '--node', name, '--cluster-name', 'auth', ...extra,
  ];

  const noSeedIn = (text: string) => {
    for (const k of Object.values(keys)) expect(text).not.toContain(k.seed);
  };

  it('nodes a and b, each with its own listed key, form one cluster; no seed reaches their output', { timeout: 90_000 }, async () => {
    const a = baton(clusterArgs('a', ['--nats-nkey', keys.a.file]), FAST);
    const b = baton(clusterArgs('b', ['--nats-nkey', keys.b.file]), FAST);
    const ma = await waitForMatch(a, START_LINE, 40_000, 'the start line of node a');
    await waitForMatch(b, START_LINE, 40_000, 'the start line of node b');
    const admin = ['--admin', `127.0.0.1:${ma[4]}`, '--token-file', ma[5]!];
    await until(
      'a to see b',
      async () => {
        const r = await batonOnce(['status', '--json', ...admin]);
        return r.code === 0 && ((JSON.parse(r.stdout) as StatusResponse).nodes?.map((n) => n.name).sort().join(',') ?? '') === 'a,b';
      },
      20_000,
      100,
    );
    noSeedIn(a.stdout + a.stderr + b.stdout + b.stderr);
  });

  it('a node without credentials is refused, and told to give its own with --nats-nkey', { timeout: 60_000 }, async () => {
    const r = await batonOnce(clusterArgs('c', []), FAST, 30_000);
    // A configuration error (2), not a NATS away (which a node serves through).
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refused this node: it presented no credentials \(give the node its own with --nats-nkey FILE\)/);
  });

  it('a node whose key the server does not list is refused; the error names its public key, never the seed', { timeout: 60_000 }, async () => {
    const r = await batonOnce(clusterArgs('d', ['--nats-nkey', keys.stranger.file]), FAST, 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`refused this node: it presented the NKey ${keys.stranger.publicKey}`);
    noSeedIn(r.stdout + r.stderr);
  });

  it('a node that started while NATS was unreachable, then is refused when it answers, stops with the same error', { timeout: 60_000 }, async () => {
    const port = await freePort();
    const args = clusterArgs('h', ['--nats-nkey', keys.stranger.file]).map((a) => (a === nats.url ? `nats://127.0.0.1:${port}` : a));
    const run = baton(args, FAST);
    await waitForMatch(run, /^baton: .*\(NATS unreachable: serving alone on this configuration, joining when it answers\)/m, 40_000, 'the start line of node h');
    const late = await startNatsServer({ configFile: path.join(dir, 'nats.conf'), port });
    try {
      expect(await withTimeout(run.exit, 20_000, 'node h to stop')).toBe(2);
      expect(run.stderr).toContain(`refused this node: it presented the NKey ${keys.stranger.publicKey}`);
      expect(run.stdout).toMatch(/"event":"cluster.closing","joinRefused":true/);
      noSeedIn(run.stdout + run.stderr);
    } finally {
      await late.stop();
    }
  });

  it('bad seed files are refused before anything starts, naming the file and why', { timeout: 90_000 }, async () => {
    const open = path.join(dir, 'open.nk');
    await writeFile(open, `${keys.a.seed}\n`);
    await chmod(open, 0o644);
    const loose = await batonOnce(clusterArgs('e', ['--nats-nkey', open]));
    expect(loose.code).toBe(2);
    expect(loose.stderr).toContain(`--nats-nkey ${open}: the seed is readable by others (mode 644); make it private: chmod 600 ${open}`);
    noSeedIn(loose.stderr);

    const junk = path.join(dir, 'junk.nk');
    await writeFile(junk, 'not a seed\n', { mode: 0o600 });
    const bad = await batonOnce(clusterArgs('f', ['--nats-nkey', junk]));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`--nats-nkey ${junk}: no NKey user seed in it`);

    const missing = await batonOnce(clusterArgs('g', ['--nats-nkey', path.join(dir, 'nowhere.nk')]));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read it (ENOENT)');

    const alone = await batonOnce(['cluster', '--nats-nkey', keys.a.file, '--backend', '127.0.0.1:9']);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--nats-nkey needs --join');
  });
});
