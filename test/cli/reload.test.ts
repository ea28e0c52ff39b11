/**
 * `baton cluster --config` and `baton reload` end to end: a spawned cluster serves
 * the ECDSA certificate of its file; the file is rewritten to the RSA one and
 * `baton reload` makes it version 2: new handshakes get the RSA certificate while a
 * connection opened before the reload streams on unharmed. A file whose key does
 * not match its certificate is refused by `baton reload` (naming the field), a
 * malformed field sent by SIGHUP is logged and ignored, and the cluster stays on
 * version 2 throughout. A malformed file at start is refused with exit 2. Every
 * spawned process is killed after each test.
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AdminApi, type ReloadResult, type StatusResponse } from '../../src/cluster/admin-api.js';
import { ClusterMetrics } from '../../src/cluster/metrics.js';
import { newAdminToken, writeTokenFile } from '../../src/cluster/token.js';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { VerifyingClient } from '../../src/cli/demo/verifying-client.js';
import { ROOT, baton, batonOnce as batonOnceWithin, killAll, waitForMatch, withTimeout, type Run } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';
import { caPem, certDir } from '../helpers/interop.js';

/** Runs a short-lived baton command to its end (reloads wait for every relay: 30 s). */
const batonOnce = (args: string[]) => batonOnceWithin(args, {}, 30_000);

const START_LINE =
  /^baton: (\d+) relays? on 127\.0\.0\.1:(\d+) -> .*; config version (\d+) \(digest ([0-9a-f]{12}), from (.+)\); admin http:\/\/127\.0\.0\.1:(\d+) \(token file (.+)\)$/m;

function started(run: Run): Promise<RegExpExecArray> {
  return waitForMatch(run, START_LINE, 30_000, 'the start line');
}

/** The key type of the certificate a fresh handshake gets ('ec' or 'rsa'). */
function servedKeyType(port: number): Promise<string | undefined> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => {
        const type = socket.getPeerX509Certificate()?.publicKey.asymmetricKeyType;
        socket.destroy();
        resolve(type);
      });
      socket.once('error', reject);
    }),
    10_000,
    'a TLS handshake',
  );
}

function configYaml(cert: string, key: string, extra = ''): string {
  return `# written by reload.test.ts
listeners:
  - address: 127.0.0.1:8443
    certificates:
      - { cert: ${cert}, key: ${key} }
    alpn: [echo]
backend: 127.0.0.1:9
relays: 2
watchdogMs: 1000
tickets: { rotationSeconds: 3600 }
${extra}`;
}

describe('baton cluster --config and baton reload (end to end)', () => {
  let backend: EchoBackend;
  let dir: string;
  const clients: VerifyingClient[] = [];

  beforeAll(async () => {
    backend = await startEchoBackend('127.0.0.1', 0);
    dir = await mkdtemp(path.join(os.tmpdir(), 'baton-reload-'));
    for (const f of ['ecdsa-p256.pem', 'ecdsa-p256-key.pem', 'rsa.pem', 'rsa-key.pem']) await copyFile(path.join(certDir, f), path.join(dir, f));
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.stop(2_000).catch(() => {});
    killAll();
  });

  afterAll(async () => {
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reloads a new certificate as version 2 without disturbing open connections; refuses broken files and stays on version 2', async () => {
    const file = path.join(dir, 'baton.yaml');
    const tokenFile = path.join(dir, 'tok');
    await writeFile(file, configYaml('ecdsa-p256.pem', 'ecdsa-p256-key.pem'));
    // --listen and --backend on the command line override the file's addresses.
    const cluster = baton([
      'cluster', '--drain-timeout', '0', '--config', file, '--admin', '127.0.0.1:0', '--token-file', tokenFile,
      '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`,
    ]);
    const m = await started(cluster);
    const [, relays, portText, version, digest1, from, adminPort] = m;
    expect(relays).toBe('2');
    expect(version).toBe('1');
    expect(from).toBe(file);
    const port = Number(portText);
    const admin = ['--admin', `127.0.0.1:${adminPort}`, '--token-file', tokenFile];
    const status = async (): Promise<StatusResponse> => {
      const r = await batonOnce(['status', '--json', ...admin]);
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout) as StatusResponse;
    };
    expect((await status()).config).toEqual({ version: 1, digest: expect.stringMatching(new RegExp(`^${digest1}[0-9a-f]{52}$`)) as unknown });

    expect(await servedKeyType(port)).toBe('ec');

    // A connection opened on version 1, streaming through the reload.
    const client = new VerifyingClient({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', seed: 'reload', maxChunk: 4096, window: 16_384 });
    clients.push(client);
    await client.connect();
    client.start();
    await until('echoed bytes before the reload', () => client.bytesVerified > 0, 10_000);

    // Version 2: the RSA certificate (its SAN names localhost too).
    await writeFile(file, configYaml('rsa.pem', 'rsa-key.pem'));
    const reload = await batonOnce(['reload', ...admin]);
    expect(reload.stderr).toBe('');
    expect(reload.code).toBe(0);
    const v2 = /^configuration version 2 active \(digest ([0-9a-f]{12})\)$/m.exec(reload.stdout);
    expect(v2, reload.stdout).not.toBeNull();
    expect(v2![1]).not.toBe(digest1);
    expect(await servedKeyType(port)).toBe('rsa');
    const before = client.bytesVerified;
    await until('echoed bytes after the reload', () => client.bytesVerified > before, 10_000);
    expect(client.errors).toEqual([]);
    expect((await status()).config.version).toBe(2);

    // A key that does not match its certificate: refused before any relay sees it.
    await writeFile(file, configYaml('rsa.pem', 'ecdsa-p256-key.pem'));
    const broken = await batonOnce(['reload', ...admin]);
    expect(broken.code).toBe(2);
    expect(broken.stdout).toBe('');
    expect(broken.stderr).toContain(`${file}: listeners[0].certificates[0]`);
    expect(broken.stderr).toMatch(/private key does not match/);
    expect(broken.stderr).not.toContain('PRIVATE KEY');
    expect((await status()).config.version).toBe(2);
    expect(await servedKeyType(port)).toBe('rsa');

    // A malformed field by SIGHUP: logged with the field, the cluster serves on.
    await writeFile(file, configYaml('ecdsa-p256.pem', 'ecdsa-p256-key.pem').replace('relays: 2', 'relays: many'));
    cluster.child.kill('SIGHUP');
    await until('the reload error in the log', () => cluster.stdout.includes('"event":"config.invalid"') && /relays: /.test(cluster.stdout.split('"event":"config.invalid"').pop()!), 10_000);
    const logged = cluster.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === 'config.invalid');
    expect(logged.at(-1)).toMatchObject({ level: 'error', configFile: file });
    expect(String(logged.at(-1)!.error)).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: relays: `));
    expect((await status()).config.version).toBe(2);
    expect(await servedKeyType(port)).toBe('rsa');

    // The same file without the bad field, through SIGHUP: version 3, the ECDSA certificate again.
    await writeFile(file, configYaml('ecdsa-p256.pem', 'ecdsa-p256-key.pem'));
    cluster.child.kill('SIGHUP');
    await until('version 3 after SIGHUP', () => cluster.stdout.includes('"msg":"configuration version 3 active"'), 15_000);
    expect(await servedKeyType(port)).toBe('ec');

    await client.stop();
    expect(client.errors).toEqual([]);
    expect(client.handshakes).toBe(1);
    expect(client.bytesVerified).toBe(client.bytesSent);

    cluster.child.kill('SIGTERM');
    expect(await withTimeout(cluster.exit, 15_000, 'exit after SIGTERM')).toBe(0);
    expect(cluster.stderr).toBe('');
    expect(cluster.stdout).not.toContain('PRIVATE KEY');
  }, 120_000);

  it('warns about settings that need a restart and applies the rest; loads another file by path', async () => {
    const file = path.join(dir, 'restart.yaml');
    const tokenFile = path.join(dir, 'tok-restart');
    await writeFile(file, configYaml('ecdsa-p256.pem', 'ecdsa-p256-key.pem').replace('backend: 127.0.0.1:9', `backend: 127.0.0.1:${backend.port}`));
    const cluster = baton(['cluster', '--config', file, '--admin', '127.0.0.1:0', '--token-file', tokenFile, '--listen', '127.0.0.1:0']);
    const m = await started(cluster);
    const admin = ['--admin', `127.0.0.1:${m[6]}`, '--token-file', tokenFile];

    const other = path.join(dir, 'other.yaml');
    await writeFile(other, configYaml('rsa.pem', 'rsa-key.pem').replace('relays: 2', 'relays: 3\nbackends: { proxyProtocol: v2 }'));
    const r = await batonOnce(['reload', '--file', path.relative(ROOT, other), ...admin]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^configuration version 2 active \(digest [0-9a-f]{12}\)$/m);
    expect(r.stdout).toContain('warning: relays requires a restart; kept 2');
    // The gateway reads it once, at start.
    expect(r.stdout).toContain('warning: backends.proxyProtocol requires a restart; kept off');
    // The backend differs from the running one (the file's port 9 is not the echo server's):
    // new connections go there from now on, without a restart.
    expect(r.stdout).not.toContain('backend requires a restart');
    await until('backends replaced', () => cluster.stdout.includes('"msg":"new connections go to backend 127.0.0.1:9"'), 15_000);
    // --listen was given on the command line: it overrides every file, no warning.
    expect(r.stdout).not.toContain('listeners[0].address');
    expect(await servedKeyType(Number(m[2]))).toBe('rsa');

    const missing = await batonOnce(['reload', '--file', path.join(dir, 'nope.yaml'), ...admin]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${path.join(dir, 'nope.yaml')}: cannot read`);

    // Only regular files beside the --config one: a FIFO and /dev/zero are refused at once.
    const fifo = path.join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const fromFifo = await batonOnce(['reload', '--file', fifo, ...admin]);
    expect(fromFifo.code).toBe(2);
    expect(fromFifo.stderr).toContain(`${fifo}: not a regular file`);
    const zero = await batonOnce(['reload', '--file', '/dev/zero', ...admin]);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('/dev/zero: only files in the folder of the --config file');
    expect(await servedKeyType(Number(m[2]))).toBe('rsa');
  }, 60_000);

  it('refuses a malformed file at start with exit 2, naming the file and the field', async () => {
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, configYaml('ecdsa-p256.pem', 'ecdsa-p256-key.pem').replace('relays: 2', 'relays: many'));
    const r = await batonOnce(['cluster', '--config', bad, '--admin', 'off']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toMatch(new RegExp(`^baton: error: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: relays: `));
    const absent = await batonOnce(['cluster', '--config', path.join(dir, 'absent.yaml'), '--admin', 'off']);
    expect(absent.code).toBe(2);
    expect(absent.stderr).toContain('absent.yaml');
  }, 60_000);
});

describe('POST /config and baton reload against a stub cluster (a relay refusal, bad bodies)', () => {
  let api: AdminApi;
  let base: string;
  let port: number;
  let dir: string;
  const token = newAdminToken();
  const calls: (string | undefined)[] = [];
  let next: ReloadResult = { status: 'refused', version: 2, error: 'relay-1 refused version 3: no certificate for the default name' };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'baton-reload-stub-'));
    await writeTokenFile(path.join(dir, 'tok'), token, { privateDir: false });
    api = new AdminApi({
      cluster: { activeConfig: { version: 2, digest: 'ab'.repeat(32) } } as never,
      metrics: new ClusterMetrics(),
      token,
      reload: (p) => {
        calls.push(p);
        return Promise.resolve(next);
      },
    });
    port = (await api.listen({ host: '127.0.0.1', port: 0 })).port;
    base = `http://127.0.0.1:${port}`;
  });

  afterEach(killAll);

  afterAll(async () => {
    await api?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const post = async (body?: string) => {
    const r = await fetch(`${base}/config`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, ...(body !== undefined ? { body } : {}) });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };

  it('answers 422 with the reason and the version kept; baton reload prints it and exits 1', async () => {
    expect(await post()).toEqual({ status: 422, json: { ok: false, version: 2, error: next.status === 'refused' ? next.error : '' } });
    expect(calls.at(-1)).toBeUndefined();
    const r = await batonOnce(['reload', '--admin', `127.0.0.1:${port}`, '--token-file', path.join(dir, 'tok')]);
    expect(r.code).toBe(1);
    expect(r.stdout.trim()).toBe('reload refused: relay-1 refused version 3: no certificate for the default name; still on version 2');
  }, 30_000);

  it('passes a path on, refuses a relative one or unknown fields, and needs the token', async () => {
    next = { status: 'applied', version: 3, digest: 'cd'.repeat(32), unchanged: false, warnings: [] };
    expect(await post('{"path": "/etc/baton/baton.yaml"}')).toEqual({ status: 200, json: { ok: true, version: 3, digest: 'cd'.repeat(32), unchanged: false, warnings: [] } });
    expect(calls.at(-1)).toBe('/etc/baton/baton.yaml');
    expect(await post('{}')).toMatchObject({ status: 200 });
    const relative = await post('{"path": "baton.yaml"}');
    expect(relative.status).toBe(400);
    expect(relative.json.error).toMatch(/^path: must be an absolute path/);
    const unknown = await post('{"file": "/x.yaml"}');
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toMatch(/unknown field "file"/);
    next = { status: 'invalid', error: 'the cluster was started without --config: give the file to load' };
    expect(await post('{}')).toEqual({ status: 400, json: { error: next.error } });
    expect((await fetch(`${base}/config`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${base}/config`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(405);
  });
});
