/**
 * `baton crash` and `baton status` end to end, as an operator runs them: `baton
 * cluster` in the background with its admin API on a free loopback port, a TLS
 * client streaming through it, `baton crash` against the relay that owns the
 * client's connection, then `baton status` shows the restart and the takeover,
 * the metrics endpoint counts them, the client saw no error, and a wrong token is
 * refused. Every spawned process is killed after each test.
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StatusResponse } from '../../src/cluster/admin-api.js';
import { readTokenFile } from '../../src/cluster/token.js';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { VerifyingClient } from '../../src/cli/demo/verifying-client.js';
import { baton, batonOnce, killAll, sleep, waitForMatch, withTimeout, type Run } from '../helpers/cli.js';
import { caPem, certDir } from '../helpers/interop.js';

const START_LINE = /^baton: \d+ relays? on 127\.0\.0\.1:(\d+) -> .*; admin http:\/\/127\.0\.0\.1:(\d+) \(token file (.+)\)$/m;

async function started(run: Run): Promise<{ port: number; adminPort: number; tokenFile: string }> {
  const m = await waitForMatch(run, START_LINE, 30_000, 'the start line');
  return { port: Number(m[1]), adminPort: Number(m[2]), tokenFile: m[3]! };
}

describe('baton crash and baton status (end to end)', () => {
  let backend: EchoBackend;
  let dir: string;
  const clients: VerifyingClient[] = [];

  beforeAll(async () => {
    backend = await startEchoBackend('127.0.0.1', 0);
    dir = await mkdtemp(path.join(os.tmpdir(), 'baton-crash-status-'));
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop(2_000).catch(() => {});
    killAll();
  });

  afterAll(async () => {
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('crashes the relay that owns a streaming connection; status and metrics show the restart and the takeover; the client sees nothing', async () => {
    const tokenFile = path.join(dir, 'admin.token');
    const cluster = baton([
      'cluster', '--drain-timeout', '0', '--relays', '3', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`,
      '--cert', path.join(certDir, 'ecdsa-p256.pem'), '--key', path.join(certDir, 'ecdsa-p256-key.pem'),
      // No hang is injected here: a deadline with room, so a starved machine does not declare a relay hung.
      '--admin', '127.0.0.1:0', '--token-file', tokenFile, '--watchdog-ms', '3000',
    ]);
    const { port, adminPort, tokenFile: printed } = await started(cluster);
    expect(printed).toBe(tokenFile);
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
    const token = await readTokenFile(tokenFile);
    const admin = ['--admin', `127.0.0.1:${adminPort}`, '--token-file', tokenFile];

    const client = new VerifyingClient({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', seed: 'crash-status', maxChunk: 4096, window: 16_384 });
    clients.push(client);
    await client.connect();
    client.start();
    await withTimeout((async () => { while (client.bytesVerified === 0) await sleep(20); })(), 10_000, 'echoed bytes');

    const status = async (): Promise<StatusResponse> => {
      const r = await batonOnce(['status', '--json', ...admin]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout) as StatusResponse;
    };
    const before = await status();
    expect(before.connections.active).toBe(1);
    const conn = before.connections.list[0]!;
    expect(conn.epoch).toBe(1);
    const victim = before.relays.find((r) => r.name === conn.owner)!;
    expect(victim.up).toBe(true);
    expect(victim.restarts).toBe(0);

    const crash = await batonOnce(['crash', '--relay', conn.owner!, '--kind', 'exit', ...admin]);
    expect(crash.stderr).toBe('');
    expect(crash.code).toBe(0);
    expect(crash.stdout).toBe(`crashed ${conn.owner} (thread ${victim.threadId}) with exit\n`);

    let after = await status();
    const deadline = Date.now() + 30_000;
    while (!(after.relays.find((r) => r.name === conn.owner)!.restarts >= 1 && after.relays.every((r) => r.up) && after.takeovers.count >= 1)) {
      if (Date.now() > deadline) throw new Error(`no restart and takeover seen: ${JSON.stringify(after)}`);
      await sleep(300);
      after = await status();
    }
    const restarted = after.relays.find((r) => r.name === conn.owner)!;
    expect(restarted.threadId).not.toBe(victim.threadId);
    expect(restarted.lastCrash).toMatchObject({ kind: 'exit', reason: 'process.exit(70)', threadId: victim.threadId });
    expect(after.connections.list[0]).toMatchObject({ id: conn.id, epoch: 2 });
    expect(after.connections.list[0]!.owner).not.toBeNull();

    // The human view: the table row of the crashed relay and the summary line.
    const human = await batonOnce(['status', ...admin]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^RELAY +THREAD +UP +RESTARTS +OWNED +LAST CRASH$/m);
    expect(human.stdout).toMatch(new RegExp(`^${conn.owner} +${restarted.threadId} +yes +1 +\\d+ +process\\.exit\\(70\\), \\d+s ago$`, 'm'));
    expect(human.stdout).toMatch(/^connections 1 active \(1 opened\); takeovers 1 \(p50 \d+ ms, p99 \d+ ms\); quarantined 0; lost 0; /m);
    // The one backend, with the one connection open to it.
    expect(human.stdout).toMatch(/^BACKEND +UP +ACTIVE +CONNECTIONS +CONNECT FAILURES +CHECKS FAILED$/m);
    expect(human.stdout).toMatch(new RegExp(`^127\\.0\\.0\\.1:${backend.port} +yes +1 +1 +0 +0$`, 'm'));

    // Metrics count the same things.
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text();
    expect(metrics).toMatch(/^baton_takeovers_total 1$/m);
    expect(metrics).toMatch(new RegExp(`^baton_relay_restarts_total\\{relay="${conn.owner}"\\} 1$`, 'm'));
    expect(metrics).toMatch(/^baton_takeover_duration_ms_count\{kind="exit"\} 1$/m);
    expect(metrics).toMatch(/^baton_connections_active 1$/m);
    expect(metrics).toMatch(/^baton_connections_lost_total 0$/m);
    expect((await fetch(`http://127.0.0.1:${adminPort}/metrics`)).status).toBe(401);

    // A token file with the wrong token: refused with a clear message.
    const wrong = path.join(dir, 'wrong.token');
    await writeFile(wrong, 'not-the-token\n', { mode: 0o600 });
    const refused = await batonOnce(['status', '--admin', `127.0.0.1:${adminPort}`, '--token-file', wrong]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim()).toBe(`baton: error: the cluster at 127.0.0.1:${adminPort} refused the token in "${wrong}" (401): is that the token file of this cluster?`);
    const refusedCrash = await batonOnce(['crash', '--random', '--admin', `127.0.0.1:${adminPort}`, '--token-file', wrong]);
    expect(refusedCrash.code).toBe(2);

    await client.stop();
    expect(client.errors).toEqual([]);
    expect(client.handshakes).toBe(1);
    expect(client.bytesVerified).toBe(client.bytesSent);

    cluster.child.kill('SIGTERM');
    expect(await withTimeout(cluster.exit, 15_000, 'exit after SIGTERM')).toBe(0);
    await expect(stat(tokenFile)).rejects.toThrow(/ENOENT/);

    // Logs: JSON lines after the start line, with the crash and restart, and no secrets.
    const lines = cluster.stdout.trim().split('\n');
    const json = lines.filter((l) => !l.startsWith('baton: ')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(json.length).toBe(lines.length - 1);
    expect(json.some((l) => l.event === 'relay.crashed' && l.relay === conn.owner && l.reason === 'exit')).toBe(true);
    expect(json.some((l) => l.event === 'relay.restarted' && l.relay === conn.owner)).toBe(true);
    expect(json.some((l) => l.msg === 'crash injected')).toBe(true);
    const all = cluster.stdout + cluster.stderr;
    expect(all).not.toContain('PRIVATE KEY');
    expect(all).not.toContain(token);
    expect(cluster.stderr).toBe('');
  }, 120_000);

  it('finds the cluster by its admin port and the default token file, and says when no cluster answers', async () => {
    const env = { XDG_RUNTIME_DIR: dir };
    const cluster = baton(['cluster', '--drain-timeout', '0', '--relays', '1', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`, '--admin', '127.0.0.1:0', '--log-level', 'debug'], env);
    const { adminPort, tokenFile } = await started(cluster);
    expect(tokenFile).toBe(path.join(dir, `baton-${process.getuid!()}`, `admin-${adminPort}.token`));
    expect((await stat(path.dirname(tokenFile))).mode & 0o777).toBe(0o700);

    const ok = await batonOnce(['status', '--json', '--admin', `127.0.0.1:${adminPort}`], env);
    expect(ok.code).toBe(0);
    expect((JSON.parse(ok.stdout) as StatusResponse).relays.map((r) => r.name)).toEqual(['relay-0']);
    const bad = await batonOnce(['crash', '--relay', 'relay-5', '--admin', `127.0.0.1:${adminPort}`], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe('baton: error: the cluster refused: relay: no relay named "relay-5" (relays: relay-0) (HTTP 404)');

    cluster.child.kill('SIGTERM');
    expect(await withTimeout(cluster.exit, 15_000, 'exit after SIGTERM')).toBe(0);
    await expect(stat(tokenFile)).rejects.toThrow(/ENOENT/);
    expect(cluster.stdout).toContain('"msg":"admin request"');

    const gone = await batonOnce(['status', '--admin', `127.0.0.1:${adminPort}`], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toBe(`baton: error: no cluster answers at 127.0.0.1:${adminPort} — is \`baton cluster\` running?`);
  }, 60_000);

  it('refuses a non-loopback admin address and bad crash flags before doing anything', async () => {
    const open = await batonOnce(['cluster', '--backend', `127.0.0.1:${backend.port}`, '--admin', '0.0.0.0:9901']);
    expect(open.code).toBe(2);
    expect(open.stderr.trim()).toBe('baton: error: --admin "0.0.0.0:9901": the admin API listens on loopback only (127.0.0.1, [::1] or localhost), not on 0.0.0.0');
    const both = await batonOnce(['crash', '--relay', 'relay-0', '--random']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('give --relay NAME or --random, not both');
    const kind = await batonOnce(['crash', '--random', '--kind', 'explode']);
    expect(kind.code).toBe(2);
    expect(kind.stderr).toContain('--kind must be one of throw, exit, terminate, oom, hang, got "explode"');
    const at = await batonOnce(['crash', '--random', '--at', 'nowhere']);
    expect(at.code).toBe(2);
    expect(at.stderr).toContain('--at must be one of relay.afterClientHelloReplicated');
  }, 60_000);
});
