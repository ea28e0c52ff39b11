/**
 * The admin API in process: a 3-relay cluster and its API on loopback port 0,
 * exercised over real HTTP: 200 for each route, 401 for a missing or wrong token,
 * 400 naming the bad field, 404 for an unknown relay, and metrics that change
 * after a crash (restart counted, takeover counted and timed).
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorError, type SupervisorEvent } from '../../src/actors/index.js';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { VerifyingClient } from '../../src/cli/demo/verifying-client.js';
import { AdminApi, isLoopback, type CrashResponse, type StatusResponse } from '../../src/cluster/admin-api.js';
import { ClusterMetrics, quantile, replicationLag } from '../../src/cluster/metrics.js';
import { defaultTokenFile, newAdminToken, readTokenFile, writeTokenFile } from '../../src/cluster/token.js';
import { Cluster } from '../../src/cluster/cluster.js';
import { createLogger, redact } from '../../src/util/log.js';
import { caPem, fixture } from '../helpers/interop.js';
import { until } from '../helpers/wait.js';


describe('admin API', () => {
  let backend: EchoBackend;
  let cluster: Cluster;
  let api: AdminApi;
  let base: string;
  const token = newAdminToken();
  const metrics = new ClusterMetrics();
  const events: SupervisorEvent[] = [];
  const logLines: string[] = [];
  const clients: VerifyingClient[] = [];

  const call = (method: string, route: string, opts: { token?: string | null; body?: string } = {}) =>
    fetch(`${base}${route}`, {
      method,
      headers: {
        ...(opts.token === null ? {} : { authorization: `Bearer ${opts.token ?? token}` }),
        ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(opts.body !== undefined ? { body: opts.body } : {}),
    });
  const status = async () => (await (await call('GET', '/status')).json()) as StatusResponse;

  beforeAll(async () => {
    backend = await startEchoBackend();
    cluster = await Cluster.start({
      relays: 3,
      listen: { host: '127.0.0.1', port: 0 },
      backend: { host: '127.0.0.1', port: backend.port },
      certificates: [{ cert: fixture('ecdsa-p256.pem'), key: fixture('ecdsa-p256-key.pem') }],
      // No test here hangs a relay: a deadline with room, so a starved machine (CI, busy loops) does not declare one hung.
      watchdogMs: 3000,
      onEvent: (e) => {
        events.push(e);
        metrics.supervisorEvent(e);
      },
    });
    metrics.attach(cluster);
    const log = createLogger({ level: 'debug', destination: { write: (l: string) => logLines.push(l) } });
    api = new AdminApi({ cluster, metrics, token, log, pick: () => 0 });
    const at = await api.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${at.port}`;
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop(5_000)));
    await api?.close();
    metrics.detach();
    await cluster?.close();
    await backend?.close();
  });

  it('refuses a missing, wrong or malformed token with 401 on every route', async () => {
    for (const [method, route] of [['GET', '/status'], ['GET', '/metrics'], ['POST', '/crash'], ['GET', '/nope']] as const) {
      const none = await call(method, route, { token: null });
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(((await none.json()) as { error: string }).error).toMatch(/missing or wrong admin token/);
      expect((await call(method, route, { token: 'x'.repeat(token.length) })).status).toBe(401);
      expect((await call(method, route, { token: `${token}x` })).status).toBe(401);
    }
    const basic = await fetch(`${base}/status`, { headers: { authorization: `Basic ${token}` } });
    expect(basic.status).toBe(401);
    // The token is never logged, not even when refused.
    expect(logLines.join('')).not.toContain(token);
  });

  it('reports relays, placement and connections on GET /status', async () => {
    for (let i = 0; i < 3; i++) {
      const c = new VerifyingClient({ host: '127.0.0.1', port: cluster.address.port, ca: caPem, servername: 'localhost', seed: `admin-${i}` });
      clients.push(c);
      await c.connect();
      c.start();
    }
    await until('3 handshakes', () => cluster.gateway.stats.handshakes >= 3, 10_000);
    const res = await call('GET', '/status');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const s = (await res.json()) as StatusResponse;
    expect(s.relays.map((r) => r.name)).toEqual(['relay-0', 'relay-1', 'relay-2']);
    // A node alone (no --join) says nothing of other nodes.
    expect(s.node).toBeUndefined();
    expect(s.nodes).toBeUndefined();
    for (const r of s.relays) {
      expect(r.up).toBe(true);
      expect(r.threadId).toBe(cluster.threadIdOf(r.name));
      expect(r.restarts).toBe(0);
      expect(r.lastCrash).toBeUndefined();
    }
    expect(s.connections.active).toBe(3);
    expect(s.relays.reduce((n, r) => n + r.owned, 0)).toBe(3);
    const live = new Map(cluster.gateway.connections().map((c) => [c.id, c]));
    for (const c of s.connections.list) {
      expect(c.owner).not.toBeNull();
      expect(c.epoch).toBe(1);
      expect(c.handshakeDone).toBe(true);
      // Uncommitted inputs are a whole number of this connection's inputs so far (which only grow).
      expect(Number.isInteger(c.replicationLag)).toBe(true);
      expect(c.replicationLag).toBeLessThanOrEqual(live.get(c.id)!.inputs);
    }
    // The totals are those of the list (all three connections are listed).
    expect(s.connections.truncated).toBe(false);
    expect(s.replicationLag.sum).toBe(s.connections.list.reduce((n, c) => n + c.replicationLag, 0));
    expect(s.replicationLag.max).toBe(Math.max(...s.connections.list.map((c) => c.replicationLag)));
    // The lag is inputs less the committed ones, and none when a commit runs ahead.
    expect(replicationLag({ inputs: 7, committedUpTo: 4 })).toBe(3);
    expect(replicationLag({ inputs: 4, committedUpTo: 4 })).toBe(0);
    expect(s.takeovers.count).toBe(0);
  });

  it('answers 400 naming the bad field, 404 for an unknown relay or route, 405 for a wrong method', async () => {
    const bad = async (body: string, message: RegExp) => {
      const res = await call('POST', '/crash', { body });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(message);
    };
    await bad('', /body: expected a JSON object/);
    await bad('{"relay":', /body: not valid JSON/);
    await bad('[]', /body: .*object/i);
    await bad('{"kind":"exit"}', /^relay: /);
    await bad('{"relay":"relay-0","kind":"explode"}', /^kind: must be one of "throw", "exit", "terminate", "oom", "hang"/);
    await bad('{"relay":"relay-0","kind":"exit","at":"relay.nowhere"}', /^at: must be one of "relay.afterClientHelloReplicated"/);
    await bad('{"relay":"relay-0","kind":"exit","when":"now"}', /unknown field "when"/);
    await bad('{"relay":7,"kind":"exit"}', /^relay: /);

    const unknown = await call('POST', '/crash', { body: '{"relay":"relay-9","kind":"exit"}' });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toBe('relay: no relay named "relay-9" (relays: relay-0, relay-1, relay-2)');
    const noNodes = await call('POST', '/crash', { body: '{"relay":"relay-0","kind":"exit","node":"b"}' });
    expect(noNodes.status).toBe(404);
    expect(((await noNodes.json()) as { error: string }).error).toBe('node: this cluster is a node alone (started without --join), there is no node "b"');
    expect((await call('GET', '/nope')).status).toBe(404);
    const wrong = await call('GET', '/crash');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    // Nothing crashed.
    expect(events).toEqual([]);
  });

  it('crashes a relay on POST /crash; /status and /metrics show the restart and the takeover', async () => {
    const before = await (await call('GET', '/metrics')).text();
    expect(before).toContain('# TYPE baton_takeovers_total counter');
    expect(before).toMatch(/^baton_takeovers_total 0$/m);
    expect(before).toMatch(/^baton_relay_restarts_total\{relay="relay-0"\} 0$/m);
    expect(before).toMatch(/^baton_connections_active 3$/m);
    expect(before).toMatch(/^baton_handshakes_total\{resumed="false"\} 3$/m);
    expect(before).toContain('baton_takeover_duration_ms_bucket{le="2000",kind=');
    expect(before).toMatch(/^baton_bytes_total\{peer="client",direction="in"\} [1-9]\d*$/m);
    expect(before).toContain('baton_replication_lag_inputs_max');

    const oldThread = cluster.threadIdOf('relay-0');
    const res = await call('POST', '/crash', { body: JSON.stringify({ relay: 'random', kind: 'exit' }) });
    expect(res.status).toBe(200);
    const crash = (await res.json()) as CrashResponse;
    expect(crash).toEqual({ relay: 'relay-0', kind: 'exit', threadId: oldThread, armed: false });

    await until('relay-0 restarted', async () => (await status()).relays[0]!.restarts === 1 && (await status()).relays[0]!.up, 20_000);
    await until('the takeover', () => cluster.gateway.stats.takeoverSamples.length >= 1, 10_000);
    const s = await status();
    const r0 = s.relays[0]!;
    expect(r0.threadId).not.toBe(oldThread);
    expect(r0.lastCrash).toMatchObject({ kind: 'exit', reason: 'process.exit(70)', threadId: oldThread, fault: { kind: 'exit' } });
    expect(Date.parse(r0.lastCrash!.at)).toBeGreaterThan(Date.now() - 60_000);
    expect(s.takeovers.count).toBeGreaterThanOrEqual(1);
    expect(s.takeovers.p99Ms).toBeGreaterThanOrEqual(s.takeovers.p50Ms);
    expect(s.connections.list.some((c) => c.epoch === 2)).toBe(true);

    const after = await (await call('GET', '/metrics')).text();
    expect(after).toMatch(/^baton_relay_restarts_total\{relay="relay-0"\} 1$/m);
    expect(after).toMatch(/^baton_relay_crashes_total\{relay="relay-0",reason="exit"\} 1$/m);
    expect(after).toMatch(/^baton_takeovers_total [1-9]\d*$/m);
    expect(after).toMatch(/^baton_takeover_duration_ms_count\{kind="exit"\} [1-9]\d*$/m);
    expect(after).toMatch(/^baton_relay_up\{relay="relay-0"\} 1$/m);

    // An armed fault point crashes the relay when a connection's data next reaches it.
    await until('every relay up', () => cluster.relayNames.every((n) => cluster.threadIdOf(n) !== undefined), 20_000);
    const armed = await call('POST', '/crash', { body: JSON.stringify({ relay: 'relay-1', kind: 'throw', at: 'relay.midStream' }) });
    expect(armed.status).toBe(200);
    expect(await armed.json()).toMatchObject({ relay: 'relay-1', kind: 'throw', at: 'relay.midStream', armed: true });
    await until('relay-1 crashed at relay.midStream', () => metrics.relayHistory('relay-1').lastCrash?.fault?.point === 'relay.midStream', 20_000);

    for (const c of clients) expect(c.errors).toEqual([]);
    expect(cluster.gateway.stats.connectionsLost).toBe(0);
    expect(logLines.some((l) => JSON.parse(l).msg === 'crash injected')).toBe(true);
    expect(logLines.join('')).not.toContain(token);
  });

  it('answers 409 for a relay that is being restarted', async () => {
    await until('every relay up', () => cluster.relayNames.every((n) => cluster.threadIdOf(n) !== undefined), 20_000);
    cluster.inject('relay-2', 'terminate');
    // Between the crash and the restart (a new worker takes tens of ms to start) it is down.
    await until('relay-2 down', () => !cluster.gateway.placement().get('relay-2')!.up, 5_000, 1);
    const res = await call('POST', '/crash', { body: '{"relay":"relay-2","kind":"exit"}' });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: string }).error).toMatch(/relay-2 is not running now/);
    await until('relay-2 restarted', () => metrics.relayHistory('relay-2').restarts >= 1, 20_000);
  });
});

describe('admin API pieces', () => {
  it('answers 409, not 500, when the relay dies between the check and the arm', async () => {
    // A stand-in cluster whose relay-0 looks up, then dies before confirming the arm.
    const cluster = {
      relayNames: ['relay-0'],
      threadIdOf: () => 7,
      gateway: { placement: () => new Map([['relay-0', { up: true }]]) },
      arm: () => Promise.reject(new ActorError('BATON_ERR_ACTOR_DEAD', 'relay-0 died before it confirmed the fault point')),
      inject: () => {
        throw new ActorError('BATON_ERR_ACTOR_DEAD', 'relay-0 is not running');
      },
    };
    const token = newAdminToken();
    const api = new AdminApi({ cluster: cluster as never, metrics: new ClusterMetrics(), token });
    const at = await api.listen({ host: '127.0.0.1', port: 0 });
    try {
      for (const [body, word] of [['{"relay":"relay-0","kind":"throw","at":"relay.midStream"}', 'armed'], ['{"relay":"random","kind":"exit"}', 'injected']] as const) {
        const res = await fetch(`http://127.0.0.1:${at.port}/crash`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
        expect(res.status).toBe(409);
        expect(((await res.json()) as { error: string }).error).toBe(`relay-0 stopped before the fault was ${word} (it is being restarted); try again`);
      }
    } finally {
      await api.close();
    }
  });

  it('binds loopback only', async () => {
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('127.9.9.9')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('localhost')).toBe(true);
    expect(isLoopback('0.0.0.0')).toBe(false);
    expect(isLoopback('::')).toBe(false);
    expect(isLoopback('10.0.0.1')).toBe(false);
    expect(isLoopback('example.com')).toBe(false);
    const api = new AdminApi({ cluster: {} as never, metrics: new ClusterMetrics(), token: newAdminToken() });
    await expect(api.listen({ host: '0.0.0.0', port: 0 })).rejects.toThrow(/loopback only/);
    await api.close();
  });

  it('writes the token file with mode 0600, reads it back, and removes only its own', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'baton-token-'));
    try {
      const file = path.join(dir, 'sub', 'admin.token');
      const token = newAdminToken();
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const remove = await writeTokenFile(file, token, { privateDir: true });
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
      expect(await readTokenFile(file)).toBe(token);
      await remove();
      await expect(readTokenFile(file)).rejects.toThrow(/cannot read the admin token file ".*admin.token": ENOENT/);
      // A file another cluster rewrote is left alone.
      const removeOld = await writeTokenFile(file, token);
      await writeTokenFile(file, newAdminToken());
      await removeOld();
      expect((await readFile(file, 'utf8')).trim()).not.toBe(token);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(defaultTokenFile(9901, { XDG_RUNTIME_DIR: '/run/user/1000' })).toMatch(/^\/run\/user\/1000\/baton-[^/]+\/admin\.token$/);
    expect(defaultTokenFile(9999, { XDG_RUNTIME_DIR: '/run/user/1000' })).toMatch(/\/admin-9999\.token$/);
  });

  it('quantile is nearest-rank', () => {
    expect(quantile([], 0.5)).toBe(0);
    expect(quantile([5, 1, 3], 0.5)).toBe(3);
    expect(quantile(Array.from({ length: 100 }, (_, i) => i + 1), 0.99)).toBe(99);
  });

  it('logs JSON lines without secrets', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: { write: (l: string) => lines.push(l) } });
    const pem = `-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n`;
    log.debug('hidden');
    log.info('relay restarted', { relay: 'relay-1', threadId: 4, key: pem, nested: { ticketSecret: 'abc', note: pem, raw: Buffer.alloc(32) } });
    const child = log.child({ token: 'tok', relay: 'relay-2' });
    child.warn('x', { snapshot: { a: 1 }, n: 10n });
    expect(lines).toHaveLength(2);
    const first = JSON.parse(lines[0]!);
    expect(first).toMatchObject({ level: 'info', msg: 'relay restarted', relay: 'relay-1', threadId: 4, key: '<redacted>' });
    expect(first.nested).toEqual({ ticketSecret: '<redacted>', note: '<redacted>', raw: '<32 bytes>' });
    expect(typeof first.time).toBe('string');
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: 'warn', token: '<redacted>', relay: 'relay-2', snapshot: '<redacted>', n: '10' });
    expect(lines.join('')).not.toContain('PRIVATE KEY');
    expect(redact({ a: { b: { c: 1 } } })).toEqual({ a: { b: { c: 1 } } });
  });
});
