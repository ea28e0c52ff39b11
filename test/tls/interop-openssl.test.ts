/**
 * Interop: the `openssl s_client` command against our engine over loopback TCP.
 * Skipped, with a note, when no `openssl` binary is on PATH. Every spawned
 * process is killed after its test; every wait is bounded.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { TlsEvent, TlsServerConfig } from '../../src/tls/types.js';
import { startEngineServer, waitFor, type EngineConnection, type EngineServer } from '../helpers/engine-server.js';
import { HANDSHAKE_LABELS, certDir, fixtureCertificates, keyLogsForComparison } from '../helpers/interop.js';

const TEST_TIMEOUT = 20_000;
const WAIT = 10_000;

const probe = spawnSync('openssl', ['version'], { encoding: 'utf8', timeout: 5_000 });
const noOpenssl = probe.error !== undefined || probe.status !== 0;
if (noOpenssl) {
  console.warn('interop-openssl: no usable `openssl` binary on PATH; these tests are skipped.');
}

const certs = fixtureCertificates();
const certificates = [certs.p256, certs.rsa, certs.ed25519, certs.p384];
const work = mkdtempSync(join(tmpdir(), 'baton-openssl-'));

let server: EngineServer | null = null;
const procs: ChildProcessWithoutNullStreams[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
  await server?.close();
  server = null;
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

async function start(extra: Partial<TlsServerConfig> = {}): Promise<EngineServer> {
  server = await startEngineServer({ config: { certificates, keyLog: true, ...extra } });
  return server;
}

interface SClient {
  proc: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/**
 * Runs `openssl s_client` in interactive mode (no -quiet, so the `k`/`K`
 * commands work and stdin EOF closes the connection with close_notify).
 */
function sClient(srv: EngineServer, args: string[] = []): SClient {
  const proc = spawn(
    'openssl',
    [
      's_client',
      '-connect',
      `127.0.0.1:${srv.port}`,
      '-tls1_3',
      '-CAfile',
      join(certDir, 'ca.pem'),
      '-servername',
      'localhost',
      '-verify_return_error',
      ...args,
    ],
    { stdio: 'pipe' },
  );
  procs.push(proc);
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString('latin1')));
  // EPIPE when s_client exits first is expected; the assertions say what went wrong.
  proc.stdin.on('error', () => {});
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, stdout: () => out, stderr: () => err, exited };
}

/** Waits for the process to exit (bounded); kills it on timeout. */
async function exitOf(c: SClient, timeoutMs = WAIT): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const r = await Promise.race([c.exited, timeout]);
  clearTimeout(timer);
  if (r === 'timeout') {
    c.proc.kill('SIGKILL');
    throw new Error(`s_client did not exit within ${timeoutMs} ms; stderr: ${c.stderr()}`);
  }
  return r;
}

function handshakeDone(conn: EngineConnection): Extract<TlsEvent, { type: 'handshakeDone' }> {
  const ev = conn.events.find((e) => e.type === 'handshakeDone');
  if (ev?.type !== 'handshakeDone') throw new Error('engine reported no handshakeDone');
  return ev;
}

async function established(srv: EngineServer, id: number, c: SClient): Promise<EngineConnection> {
  const conn = await srv.connection(id, WAIT);
  await waitFor(
    () => conn.events.some((e) => e.type === 'handshakeDone') || c.proc.exitCode !== null,
    WAIT,
    'the handshake',
  );
  if (!conn.events.some((e) => e.type === 'handshakeDone')) {
    throw new Error(
      `s_client exited before the handshake completed; alerts sent: ${JSON.stringify(
        conn.events.filter((e) => e.type === 'alertSent'),
      )}; stderr: ${c.stderr()}`,
    );
  }
  return conn;
}

/** Sends one line and waits until s_client prints it back. */
async function echoLine(c: SClient, line: string): Promise<void> {
  const before = c.stdout().split(line).length;
  c.proc.stdin.write(`${line}\n`);
  await waitFor(() => c.stdout().split(line).length > before, WAIT, `the echo of "${line}"`);
}

/** Closes stdin (s_client sends close_notify) and expects a clean exit. */
async function finish(c: SClient, conn: EngineConnection): Promise<void> {
  c.proc.stdin.end();
  expect(await exitOf(c)).toBe(0);
  await waitFor(() => conn.events.some((e) => e.type === 'peerClosed'), WAIT, 'peerClosed');
  expect(conn.events.filter((e) => e.type === 'alertSent')).toEqual([]);
  expect(conn.error).toBeUndefined();
}

describe.skipIf(noOpenssl)('interop: openssl s_client -> engine', () => {
  it(
    'handshakes, verifies the certificate, echoes a line; key logs agree',
    async () => {
      const srv = await start();
      const keyLogFile = join(work, 'basic.keylog');
      const c = sClient(srv, ['-keylogfile', keyLogFile]);
      const conn = await established(srv, 0, c);
      await echoLine(c, 'hello from s_client');
      expect(c.stdout()).toMatch(/Verify return code: 0 \(ok\)/);
      expect(c.stdout()).toMatch(/New, TLSv1\.3, Cipher is TLS_AES_128_GCM_SHA256/);
      expect(c.stdout()).toMatch(/Server Temp Key: X25519/);
      expect(handshakeDone(conn)).toMatchObject({ cipherSuite: 'TLS_AES_128_GCM_SHA256', group: 'x25519' });
      await finish(c, conn);

      const { client, engine, engineLabels } = keyLogsForComparison(
        readFileSync(keyLogFile, 'utf8').split('\n'),
        conn.keyLog,
      );
      for (const label of HANDSHAKE_LABELS) expect(engineLabels).toContain(label);
      expect(client).toEqual(engine);
    },
    TEST_TIMEOUT,
  );

  for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const) {
    it(
      `-ciphersuites ${suite}`,
      async () => {
        const srv = await start();
        const c = sClient(srv, ['-ciphersuites', suite]);
        const conn = await established(srv, 0, c);
        await echoLine(c, `suite ${suite}`);
        expect(c.stdout()).toContain(`Cipher is ${suite}`);
        expect(handshakeDone(conn).cipherSuite).toBe(suite);
        await finish(c, conn);
      },
      TEST_TIMEOUT,
    );
  }

  const groups = [
    ['X25519', 'x25519', /Server Temp Key: X25519/],
    ['P-256', 'secp256r1', /Server Temp Key: ECDH, prime256v1/],
    ['P-384', 'secp384r1', /Server Temp Key: ECDH, secp384r1/],
  ] as const;
  for (const [opt, group, temp] of groups) {
    it(
      `-groups ${opt}`,
      async () => {
        const srv = await start();
        const c = sClient(srv, ['-groups', opt]);
        const conn = await established(srv, 0, c);
        await echoLine(c, `group ${opt}`);
        expect(c.stdout()).toMatch(temp);
        expect(handshakeDone(conn)).toMatchObject({ group, helloRetry: false });
        await finish(c, conn);
      },
      TEST_TIMEOUT,
    );
  }

  it(
    '-groups P-256:X25519 against a server with only x25519 forces a HelloRetryRequest',
    async () => {
      const srv = await start({ groups: ['x25519'] });
      const c = sClient(srv, ['-groups', 'P-256:X25519']);
      const conn = await established(srv, 0, c);
      await echoLine(c, 'after hrr');
      expect(handshakeDone(conn)).toMatchObject({ helloRetry: true, group: 'x25519' });
      await finish(c, conn);
    },
    TEST_TIMEOUT,
  );

  for (const [name, cn] of [
    ['rsa.example.test', 'rsa.example.test'],
    ['ed.example.test', 'ed.example.test'],
    ['p384.example.test', 'p384.example.test'],
  ] as const) {
    it(
      `-servername ${name} selects that certificate`,
      async () => {
        const srv = await start();
        const c = sClient(srv, ['-servername', name, '-verify_hostname', name]);
        const conn = await established(srv, 0, c);
        await echoLine(c, `sni ${name}`);
        expect(c.stdout()).toContain(`subject=CN = ${cn}`);
        expect(c.stdout()).toMatch(/Verify return code: 0 \(ok\)/);
        expect(handshakeDone(conn).serverName).toBe(name);
        await finish(c, conn);
      },
      TEST_TIMEOUT,
    );
  }

  for (const [name, sigalgs, type, digest] of [
    ['rsa.example.test', 'rsa_pss_rsae_sha512', 'RSA-PSS', 'SHA512'],
    ['rsa.example.test', 'rsa_pss_rsae_sha384:rsa_pss_rsae_sha256', 'RSA-PSS', 'SHA384'],
    ['ed.example.test', 'ed25519', 'Ed25519', null],
    ['p384.example.test', 'ecdsa_secp384r1_sha384', 'ECDSA', 'SHA384'],
  ] as const) {
    it(
      `-sigalgs ${sigalgs} for ${name}: CertificateVerify is ${type}${digest ? ` with ${digest}` : ''}`,
      async () => {
        const srv = await start();
        const c = sClient(srv, ['-servername', name, '-verify_hostname', name, '-sigalgs', sigalgs]);
        const conn = await established(srv, 0, c);
        await echoLine(c, `sigalgs ${sigalgs}`);
        // OpenSSL 3.0 prints "ed25519", later versions "Ed25519".
        expect(c.stdout().toLowerCase()).toContain(`peer signature type: ${type.toLowerCase()}`);
        if (digest !== null) expect(c.stdout()).toContain(`Peer signing digest: ${digest}`);
        await finish(c, conn);
      },
      TEST_TIMEOUT,
    );
  }

  it(
    '-no_middlebox: a handshake without change_cipher_spec records or a legacy session id',
    async () => {
      const srv = await start();
      const c = sClient(srv, ['-no_middlebox']);
      const conn = await established(srv, 0, c);
      await echoLine(c, 'no middlebox');
      await finish(c, conn);
    },
    TEST_TIMEOUT,
  );

  it(
    '-alpn picks the server preference',
    async () => {
      const srv = await start({ alpn: ['h2', 'http/1.1'] });
      const c = sClient(srv, ['-alpn', 'http/1.1,h2']);
      const conn = await established(srv, 0, c);
      await echoLine(c, 'alpn');
      expect(c.stdout()).toContain('ALPN protocol: h2');
      expect(handshakeDone(conn).alpn).toBe('h2');
      await finish(c, conn);
    },
    TEST_TIMEOUT,
  );

  for (const [command, requested] of [
    ['K', true],
    ['k', false],
  ] as const) {
    it(
      `survives a KeyUpdate from s_client (\`${command}\`: update_requested ${requested})`,
      async () => {
        const srv = await start();
        const c = sClient(srv);
        const conn = await established(srv, 0, c);
        await echoLine(c, 'before key update');
        // An interactive s_client reads a line starting with K/k as a command
        // (openssl-s_client(1), CONNECTED COMMANDS) and prints KEYUPDATE on stderr.
        c.proc.stdin.write(`${command}\n`);
        await waitFor(() => c.stderr().includes('KEYUPDATE'), WAIT, 'KEYUPDATE from s_client');
        await echoLine(c, 'after key update');
        const payload = randomBytes(3_000).toString('hex');
        await echoLine(c, payload);
        const updates = conn.events.flatMap((e) => (e.type === 'keyUpdated' ? [e.direction] : []));
        // RFC 8446 section 4.6.3: update_requested obliges us to update our sending key.
        expect(updates.filter((d) => d === 'read')).toHaveLength(1);
        expect(updates.filter((d) => d === 'write')).toHaveLength(requested ? 1 : 0);
        await finish(c, conn);
      },
      TEST_TIMEOUT,
    );
  }

  it(
    'resumes with -sess_out / -sess_in',
    async () => {
      const ticketKeys = { current: { id: new Uint8Array(randomBytes(16)), secret: new Uint8Array(randomBytes(32)) } };
      const srv = await start({ ticketKeys });
      const sess = join(work, 'session.pem');
      const first = sClient(srv, ['-sess_out', sess]);
      const conn0 = await established(srv, 0, first);
      await echoLine(first, 'first');
      // TLS 1.3 tickets arrive after the handshake; s_client writes the file on receipt.
      await waitFor(() => existsSync(sess) && statSync(sess).size > 0, WAIT, 'the session file');
      expect(first.stdout()).toContain('New, TLSv1.3');
      await finish(first, conn0);

      const second = sClient(srv, ['-sess_in', sess]);
      const conn1 = await established(srv, 1, second);
      await echoLine(second, 'second');
      expect(second.stdout()).toContain('Reused, TLSv1.3');
      expect(handshakeDone(conn1).resumed).toBe(true);
      await finish(second, conn1);
    },
    TEST_TIMEOUT,
  );

  it(
    'a server close_notify ends s_client cleanly',
    async () => {
      const srv = await start();
      const c = sClient(srv);
      const conn = await established(srv, 0, c);
      await echoLine(c, 'closing from the server');
      conn.close();
      expect(await exitOf(c)).toBe(0);
      expect(conn.events.filter((e) => e.type === 'alertSent')).toEqual([]);
    },
    TEST_TIMEOUT,
  );
});
