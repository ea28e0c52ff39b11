/**
 * `baton cluster`: flag validation as unit tests, and the command run as a user
 * runs it (`node bin/baton.mjs cluster ...`) against an echo backend on loopback.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import tls from 'node:tls';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { describeEvent } from '../../src/cli/cluster-command.js';
import { parseClusterFlags, parseHostPort, type RawClusterFlags } from '../../src/cli/cluster-flags.js';
import { availableParallelism } from 'node:os';
import type { ActorRef } from '../../src/actors/index.js';
import { CliError } from '../../src/cli/errors.js';
import { parseLimits } from '../../src/cli/limits.js';
import { singleBackend } from '../../src/relay/backend-pool.js';
import { DEFAULT_HEALTH_CHECK } from '../../src/relay/health-check.js';
import type { ClusterFileConfig } from '../../src/cluster/config-file.js';
import { makeSelfSigned } from '../../src/cli/self-signed.js';
import { loadCertifiedKey } from '../../src/tls/index.js';
import { baton, killAll, waitForMatch, withTimeout, type Run } from '../helpers/cli.js';

const CERTS = fileURLToPath(new URL('../fixtures/certs/', import.meta.url));

function cliError(raw: RawClusterFlags): CliError {
  try {
    parseClusterFlags(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    return e as CliError;
  }
  throw new Error(`expected a CliError for ${JSON.stringify(raw)}`);
}

const ok = { backend: '127.0.0.1:9000' } as const;

describe('parseClusterFlags', () => {
  it('applies the defaults', () => {
    expect(parseClusterFlags(ok)).toEqual({
      relays: Math.max(2, availableParallelism()),
      listen: { host: '127.0.0.1', port: 8443 },
      backend: { host: '127.0.0.1', port: 9000 },
      backends: singleBackend({ host: '127.0.0.1', port: 9000 }),
      replication: true,
      proxyProtocol: 'off',
      logLevel: 'info',
      limits: {
        handshakeTimeoutMs: 10_000,
        idleTimeoutMs: 300_000,
        backendConnectTimeoutMs: 5_000,
        maxConnections: 10_000,
        maxHandshakeChangeCipherSpecs: 32,
        maxHandshakeWarningAlerts: 32,
        maxUnreadKeyUpdates: 32,
        retainedBudgetBytes: 256 * 2 ** 20,
      },
      drainTimeoutMs: 30_000,
    });
  });

  it('takes a comma-separated list of backends: a round-robin default pool, health-checked', () => {
    const f = parseClusterFlags({ backend: '127.0.0.1:9000, 127.0.0.1:9001,[::1]:9002' });
    expect(f.backend).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(f.backends).toEqual({
      pools: { default: [{ host: '127.0.0.1', port: 9000 }, { host: '127.0.0.1', port: 9001 }, { host: '::1', port: 9002 }] },
      policy: 'round-robin',
      routes: [],
      health: DEFAULT_HEALTH_CHECK,
    });
    expect(() => parseClusterFlags({ backend: '127.0.0.1:9000,127.0.0.1:9000' })).toThrow('--backend lists 127.0.0.1:9000 twice');
    expect(parseClusterFlags({ backend: '127.0.0.1:9000,127.0.0.1:9001', balance: 'least-connections' }).backends.policy).toBe('least-connections');
    expect(() => parseClusterFlags({ backend: '127.0.0.1:9000', balance: 'random' })).toThrow('--balance must be one of round-robin, least-connections, got "random"');
    expect(() => parseClusterFlags({ backend: '127.0.0.1:9000,' })).toThrow(/--backend "": expected HOST:PORT/);
  });

  it('takes every flag', () => {
    expect(
      parseClusterFlags({
        relays: '5',
        listen: '[::1]:0',
        backend: 'localhost:80',
        cert: 'a.pem',
        key: 'b.pem',
        watchdogMs: '250',
        alpn: 'h2,http/1.1',
        replication: 'off',
        proxyProtocol: 'v2',
        logLevel: 'debug',
        handshakeTimeout: '1s',
        idleTimeout: '0',
        backendConnectTimeout: '750ms',
        maxConnections: '2',
        maxHandshakeCcs: '4',
        maxHandshakeWarningAlerts: '0',
        maxUnreadKeyUpdates: '7',
        retainedBudget: '64MiB',
        drainTimeout: '5',
      }),
    ).toEqual({
      relays: 5,
      listen: { host: '::1', port: 0 },
      backend: { host: 'localhost', port: 80 },
      backends: singleBackend({ host: 'localhost', port: 80 }),
      files: { cert: 'a.pem', key: 'b.pem' },
      watchdogMs: 250,
      alpn: ['h2', 'http/1.1'],
      replication: false,
      proxyProtocol: 'v2',
      logLevel: 'debug',
      limits: {
        handshakeTimeoutMs: 1_000,
        idleTimeoutMs: 0,
        backendConnectTimeoutMs: 750,
        maxConnections: 2,
        maxHandshakeChangeCipherSpecs: 4,
        maxHandshakeWarningAlerts: 0,
        maxUnreadKeyUpdates: 7,
        retainedBudgetBytes: 64 * 2 ** 20,
      },
      drainTimeoutMs: 5_000,
    });
  });

  it('takes --proxy-protocol v2 or off and names the flag otherwise', () => {
    expect(parseClusterFlags({ ...ok, proxyProtocol: 'off' }).proxyProtocol).toBe('off');
    expect(cliError({ ...ok, proxyProtocol: 'v1' }).message).toBe('--proxy-protocol must be "v2" or "off", got "v1"');
    expect(cliError({ ...ok, proxyProtocol: '' }).message).toMatch(/^--proxy-protocol/);
    // The file's backends.proxyProtocol, unless the flag was typed.
    const file = { listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: 9 }, backends: singleBackend({ host: '127.0.0.1', port: 9 }), tls: { certificates: [] }, obsolete: [], proxyProtocol: 'v2' };
    expect(parseClusterFlags({}, file as unknown as ClusterFileConfig).proxyProtocol).toBe('v2');
    expect(parseClusterFlags({ proxyProtocol: 'off' }, file as unknown as ClusterFileConfig).proxyProtocol).toBe('off');
  });

  it('takes --tickets stateless or stateful over the file, stateless by default, and names the flag otherwise', () => {
    expect(parseClusterFlags(ok).ticketMode).toBeUndefined();
    expect(parseClusterFlags({ ...ok, tickets: 'stateful' }).ticketMode).toBe('stateful');
    expect(parseClusterFlags({ ...ok, tickets: 'stateless' }).ticketMode).toBeUndefined();
    expect(cliError({ ...ok, tickets: 'sticky' }).message).toBe('--tickets must be "stateless" or "stateful", got "sticky"');
    const file = { listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: 9 }, backends: singleBackend({ host: '127.0.0.1', port: 9 }), tls: { certificates: [], ticketMode: 'stateful' }, obsolete: [] };
    expect(parseClusterFlags({}, file as unknown as ClusterFileConfig).ticketMode).toBe('stateful');
    expect(parseClusterFlags({ tickets: 'stateless' }, file as unknown as ClusterFileConfig).ticketMode).toBeUndefined();
  });

  it('takes --drain-timeout in seconds (or 500ms, 2m), over the file, and names the flag when it is bad', () => {
    expect(parseClusterFlags({ ...ok, drainTimeout: '0' }).drainTimeoutMs).toBe(0);
    expect(parseClusterFlags({ ...ok, drainTimeout: '500ms' }).drainTimeoutMs).toBe(500);
    expect(parseClusterFlags({ ...ok, drainTimeout: '2m' }).drainTimeoutMs).toBe(120_000);
    const file = { drainTimeoutMs: 9_000, listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: 1 }, backends: singleBackend({ host: '127.0.0.1', port: 1 }), tls: { certificates: [] } } as unknown as ClusterFileConfig;
    expect(parseClusterFlags({ drainTimeout: '3' }, file).drainTimeoutMs).toBe(3_000);
    expect(parseClusterFlags({}, file).drainTimeoutMs).toBe(9_000);
    for (const bad of ['soon', '-1', '1.5ms', '']) expect(() => parseClusterFlags({ ...ok, drainTimeout: bad })).toThrow(/--drain-timeout/);
    expect(() => parseClusterFlags({ ...ok, drainTimeout: '2d' })).toThrow(/--drain-timeout/);
  });

  it('reads sizes as bytes, KiB, MiB or GiB (KB, MB, GB and k, m, g alike)', () => {
    const budget = (retainedBudget: string) => parseClusterFlags({ ...ok, retainedBudget }).limits.retainedBudgetBytes;
    expect(budget('1048576')).toBe(2 ** 20);
    expect(budget('2048KiB')).toBe(2 * 2 ** 20);
    expect(budget('1.5GiB')).toBe(1.5 * 2 ** 30);
    expect(budget('512mb')).toBe(512 * 2 ** 20);
    expect(budget('3g')).toBe(3 * 2 ** 30);
  });

  it('takes the caps from the configuration file under the flags', () => {
    const file = { maxHandshakeChangeCipherSpecs: 3, maxHandshakeWarningAlerts: 2, maxUnreadKeyUpdates: 1, retainedBudgetBytes: 8 * 2 ** 20 } as const;
    expect(parseLimits({}, file as unknown as ClusterFileConfig)).toMatchObject(file);
    expect(parseLimits({ maxUnreadKeyUpdates: '9' }, file as unknown as ClusterFileConfig)).toMatchObject({ ...file, maxUnreadKeyUpdates: 9 });
  });

  it('reads durations as ms, s or m (a bare number is seconds)', () => {
    const limits = (raw: RawClusterFlags) => parseClusterFlags({ ...ok, ...raw }).limits;
    expect(limits({ idleTimeout: '5m' }).idleTimeoutMs).toBe(300_000);
    expect(limits({ idleTimeout: '90' }).idleTimeoutMs).toBe(90_000);
    expect(limits({ handshakeTimeout: '1.5s' }).handshakeTimeoutMs).toBe(1_500);
    expect(limits({ backendConnectTimeout: '250ms' }).backendConnectTimeoutMs).toBe(250);
  });

  it.each([
    [{ ...ok, relays: '0' }, /--relays must be a positive integer, got "0"/],
    [{ ...ok, relays: '-1' }, /--relays must be a positive integer/],
    [{ ...ok, relays: '2.5' }, /--relays must be a positive integer/],
    [{ ...ok, relays: 'three' }, /--relays must be a positive integer, got "three"/],
    [{ ...ok, relays: '100000' }, /--relays must be at most 256/],
    [{ relays: '2' }, /--backend is required/],
    [{ ...ok, listen: '127.0.0.1' }, /--listen "127.0.0.1": expected HOST:PORT/],
    [{ ...ok, listen: ':8443' }, /--listen ":8443": the host is missing/],
    [{ ...ok, listen: '127.0.0.1:' }, /--listen "127.0.0.1:": the port must be a number/],
    [{ ...ok, listen: '127.0.0.1:http' }, /--listen "127.0.0.1:http": the port must be a number/],
    [{ ...ok, listen: '127.0.0.1:65536' }, /--listen "127.0.0.1:65536": port 65536 is out of range \(0-65535\)/],
    [{ ...ok, listen: '::1:8443' }, /--listen "::1:8443": put an IPv6 address in brackets/],
    [{ ...ok, listen: '[nope]:8443' }, /--listen "\[nope\]:8443": "nope" in brackets is not an IPv6 address/],
    [{ ...ok, listen: '300.1.1.1:8443' }, /--listen "300.1.1.1:8443": "300.1.1.1" is not a valid IPv4 address/],
    [{ ...ok, listen: 'bad_host!:8443' }, /--listen "bad_host!:8443": "bad_host!" is not a valid host name/],
    [{ backend: '127.0.0.1:0' }, /--backend "127.0.0.1:0": port 0 is out of range \(1-65535\)/],
    [{ backend: 'localhost' }, /--backend "localhost": expected HOST:PORT/],
    [{ backend: '127.0.0.1:99999' }, /--backend "127.0.0.1:99999": port 99999 is out of range/],
    [{ ...ok, cert: 'a.pem' }, /--cert needs --key/],
    [{ ...ok, key: 'b.pem' }, /--key needs --cert/],
    [{ ...ok, watchdogMs: '0' }, /--watchdog-ms must be a whole number of milliseconds from 50/],
    [{ ...ok, watchdogMs: 'soon' }, /--watchdog-ms .* got "soon"/],
    [{ ...ok, alpn: 'h2,,http/1.1' }, /--alpn has an empty protocol name/],
    [{ ...ok, alpn: 'h2,h2' }, /--alpn lists "h2" twice/],
    [{ ...ok, alpn: 'h 2' }, /--alpn protocol "h 2" must be printable ASCII/],
    [{ ...ok, replication: 'maybe' }, /--replication must be "on" or "off", got "maybe"/],
    [{ ...ok, logLevel: 'verbose' }, /--log-level must be one of debug, info, warn, error, got "verbose"/],
    [{ ...ok, handshakeTimeout: 'soon' }, /--handshake-timeout must be a duration such as 10s, 500ms or 5m \(0: off\), got "soon"/],
    [{ ...ok, idleTimeout: '-1s' }, /--idle-timeout must be a duration/],
    [{ ...ok, backendConnectTimeout: '0.5ms' }, /--backend-connect-timeout must be a duration/],
    [{ ...ok, idleTimeout: '2000m' }, /--idle-timeout must be at most 24 hours/],
    [{ ...ok, maxConnections: '0' }, /--max-connections must be a whole number from 1 to 100000, got "0"/],
    [{ ...ok, maxConnections: 'lots' }, /--max-connections must be a whole number/],
    [{ ...ok, maxHandshakeCcs: '0' }, /--max-handshake-ccs must be a whole number from 1 to 100000, got "0"/],
    [{ ...ok, maxHandshakeWarningAlerts: 'many' }, /--max-handshake-warning-alerts must be a whole number from 0/],
    [{ ...ok, maxUnreadKeyUpdates: '-1' }, /--max-unread-key-updates must be a whole number from 0/],
    [{ ...ok, retainedBudget: 'huge' }, /--retained-budget must be a size such as 256MiB, 1GiB or a number of bytes, got "huge"/],
    [{ ...ok, retainedBudget: '512KiB' }, /--retained-budget must be from 1MiB to 64GiB, got "512KiB"/],
    [{ ...ok, retainedBudget: '65GiB' }, /--retained-budget must be from 1MiB to 64GiB/],
  ] as [RawClusterFlags, RegExp][])('rejects %j', (raw, message) => {
    const e = cliError(raw);
    expect(e.message).toMatch(message);
    expect(e.exitCode).toBe(2);
  });

  it('parses HOST:PORT forms', () => {
    expect(parseHostPort('--listen', '0.0.0.0:443', { allowPortZero: false })).toEqual({ host: '0.0.0.0', port: 443 });
    expect(parseHostPort('--listen', '[::]:0', { allowPortZero: true })).toEqual({ host: '::', port: 0 });
    expect(parseHostPort('--backend', 'db.internal.example:5432', { allowPortZero: false })).toEqual({
      host: 'db.internal.example',
      port: 5432,
    });
  });
});

describe('makeSelfSigned', () => {
  it('makes a P-256 certificate for localhost that the TLS engine loads', async () => {
    const made = await makeSelfSigned();
    const cert = new X509Certificate(made.cert);
    expect(cert.subject).toBe('CN=localhost');
    expect(cert.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
    expect(cert.fingerprint256).toBe(made.fingerprint256);
    expect(made.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
    expect(days).toBe(365);
    expect(made.key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const loaded = loadCertifiedKey({ cert: made.cert, key: made.key });
    expect(loaded.keyKind).toBe('ecdsa-p256');
    expect(loaded.names).toEqual(['localhost']);
  });
});

describe('describeEvent', () => {
  const ref = {} as ActorRef;
  it('prints crashes, restarts and escalation as plain lines', () => {
    expect(
      describeEvent({
        type: 'Crashed',
        supervisor: ref,
        child: 'relay-1',
        crash: { ref, reason: { kind: 'terminated', by: 'inject' }, detectedAt: 0, threadId: 7, phase: 'run', fault: { kind: 'terminate' } },
      }),
    ).toEqual({ level: 'warn', line: 'relay-1 crashed on thread 7: terminated (inject) (injected terminate)' });
    expect(describeEvent({ type: 'Restarted', supervisor: ref, child: 'relay-1', ref, threadId: 9, recent: 1 })).toEqual({
      level: 'info',
      line: 'relay-1 restarted on thread 9 (1 restart in the current period)',
    });
    const escalated = describeEvent({ type: 'Escalated', supervisor: ref, child: 'relay-0', cause: { kind: 'exit', exitCode: 3 } });
    expect(escalated.level).toBe('error');
    expect(escalated.line).toContain('relay-0 (process.exit(3))');
  });
});

// ---- end to end: the command as a user runs it ----

const START_LINE = /^baton: (\d+) relays? on (\S+):(\d+) -> backend (\S+); certificate sha256 ([0-9A-F:]+)/m;

/** Waits for the start line; fails with the process output if it exits first. */
async function started(run: Run): Promise<{ port: number; fingerprint: string; line: string }> {
  const m = await waitForMatch(run, START_LINE, 20_000, 'the start line');
  return { port: Number(m[3]), fingerprint: m[5]!, line: m[0] };
}

/** Connects with Node's TLS client, echoes `payload`, and returns the peer certificate fingerprint. */
async function echoOnce(port: number, payload: Buffer): Promise<{ fingerprint256: string; echoed: Buffer }> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false });
  try {
    await withTimeout(new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    }), 10_000, 'the TLS handshake');
    const fingerprint256 = socket.getPeerCertificate().fingerprint256;
    const chunks: Buffer[] = [];
    let got = 0;
    const echoed = withTimeout(new Promise<Buffer>((resolve, reject) => {
      socket.on('data', (d: Buffer) => {
        chunks.push(d);
        got += d.length;
        if (got >= payload.length) resolve(Buffer.concat(chunks));
      });
      socket.once('error', reject);
    }), 10_000, 'the echo');
    socket.write(payload);
    return { fingerprint256, echoed: await echoed };
  } finally {
    socket.destroy();
  }
}

describe('baton cluster (end to end)', () => {
  let backend: EchoBackend;

  beforeAll(async () => {
    backend = await startEchoBackend('127.0.0.1', 0);
  });

  afterAll(async () => {
    await backend.close();
  });

  afterEach(killAll);

  it('serves a self-signed certificate whose printed fingerprint is the peer one, echoes, and exits 0 on SIGTERM', async () => {
    const run = baton(['cluster', '--admin', '127.0.0.1:0', '--relays', '2', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`]);
    const { port, fingerprint, line } = await started(run);
    expect(port).toBeGreaterThan(0);
    expect(line).toContain(`2 relays on 127.0.0.1:${port} -> backend 127.0.0.1:${backend.port}`);
    expect(run.stdout).toContain('self-signed, CN=localhost; DNS:localhost, IP Address:127.0.0.1');
    expect(run.stdout + run.stderr).not.toContain('PRIVATE KEY');

    const payload = Buffer.from('hello through baton '.repeat(100));
    const { fingerprint256, echoed } = await echoOnce(port, payload);
    expect(fingerprint256).toBe(fingerprint);
    expect(echoed.equals(payload)).toBe(true);

    // The same port a second time: a clear message, exit code 2.
    const second = baton(['cluster', '--admin', '127.0.0.1:0', '--relays', '1', '--listen', `127.0.0.1:${port}`, '--backend', `127.0.0.1:${backend.port}`]);
    expect(await withTimeout(second.exit, 20_000, 'the second run to exit')).toBe(2);
    expect(second.stderr).toContain(`127.0.0.1:${port} is already in use`);
    expect(second.stderr).not.toMatch(/\n\s+at /);

    run.child.kill('SIGTERM');
    expect(await withTimeout(run.exit, 15_000, 'exit after SIGTERM')).toBe(0);
    expect(run.stderr).toBe('');
  });

  it('serves --cert/--key from files', async () => {
    const certPath = `${CERTS}ecdsa-p256.pem`;
    const run = baton([
      'cluster', '--admin', '127.0.0.1:0', '--relays', '1', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`,
      '--cert', certPath, '--key', `${CERTS}ecdsa-p256-key.pem`, '--alpn', 'h2,http/1.1',
    ]);
    const { port, fingerprint } = await started(run);
    const expected = new X509Certificate(readFileSync(certPath)).fingerprint256;
    expect(fingerprint).toBe(expected);
    expect(run.stdout).not.toContain('self-signed');
    const { fingerprint256, echoed } = await echoOnce(port, Buffer.from('ping'));
    expect(fingerprint256).toBe(expected);
    expect(echoed.toString()).toBe('ping');
    run.child.kill('SIGINT');
    expect(await withTimeout(run.exit, 15_000, 'exit after SIGINT')).toBe(0);
  });

  it('names an unreadable certificate file and the OS reason', async () => {
    const missing = `${CERTS}no-such-cert.pem`;
    const run = baton(['cluster', '--admin', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`, '--cert', missing, '--key', `${CERTS}ecdsa-p256-key.pem`]);
    expect(await withTimeout(run.exit, 20_000, 'exit')).toBe(2);
    expect(run.stderr).toContain(`--cert: cannot read "${missing}": ENOENT: no such file or directory`);
    expect(run.stdout).toBe('');
  });

  it('refuses a key that does not belong to the certificate, without printing the key', async () => {
    const run = baton([
      'cluster', '--admin', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`,
      '--cert', `${CERTS}ecdsa-p256.pem`, '--key', `${CERTS}ecdsa-p384-key.pem`,
    ]);
    expect(await withTimeout(run.exit, 20_000, 'exit')).toBe(2);
    expect(run.stderr).toContain('private key does not match the leaf certificate');
    expect(run.stderr).toContain('ecdsa-p384-key.pem');
    expect(run.stderr).not.toContain('PRIVATE KEY');
    expect(run.stdout).toBe('');
  });

  it('exits 2 with a one-line message for an unknown flag and for a bad value', async () => {
    const unknown = baton(['cluster', '--admin', '127.0.0.1:0', '--backend', '127.0.0.1:9', '--frobnicate']);
    expect(await withTimeout(unknown.exit, 20_000, 'exit')).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--frobnicate'");

    const bad = baton(['cluster', '--admin', '127.0.0.1:0', '--relays', '0', '--backend', '127.0.0.1:9']);
    expect(await withTimeout(bad.exit, 20_000, 'exit')).toBe(2);
    expect(bad.stderr.trim()).toBe('baton: error: --relays must be a positive integer, got "0"');
  });
});
