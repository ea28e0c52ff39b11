/**
 * SIGHUP never kills `baton cluster`. Started with --cert/--key (no --config), a
 * SIGHUP after the files were replaced rolls the new certificate out: a new handshake
 * gets it (by fingerprint) while a connection opened before echoes on. A broken key
 * file is logged with the file's name and the old certificate is kept. A cluster on a
 * self-signed certificate logs that there is nothing to reload. Every wait is on a log
 * line or an event, bounded.
 */
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { baton, killAll, waitForMatch, withTimeout, type Run } from '../helpers/cli.js';
import { caPem, certDir, fixture } from '../helpers/interop.js';

const START_LINE = /^baton: 1 relay on 127\.0\.0\.1:(\d+) -> .*certificate sha256 ([0-9A-F:]+) /m;

/** The fingerprint of the leaf a fresh handshake gets. */
function servedFingerprint(port: number, verify = true): Promise<string> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...(verify ? { ca: caPem } : { rejectUnauthorized: false }) }, () => {
        const fp = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
        socket.destroy();
        resolve(fp);
      });
      socket.once('error', reject);
    }),
    15_000,
    'a TLS handshake',
  );
}

/** An open connection through the cluster that echoes on demand. */
async function openEcho(port: number): Promise<{ socket: tls.TLSSocket; echo: (text: string) => Promise<string> }> {
  const socket = await withTimeout(
    new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' }, () => resolve(s));
      s.once('error', reject);
    }),
    15_000,
    'the first connection',
  );
  let received = '';
  socket.setEncoding('utf8').on('data', (d: string) => (received += d));
  const echo = (text: string) => {
    received = '';
    socket.write(text);
    return withTimeout(
      new Promise<string>((resolve, reject) => {
        const check = () => {
          if (received.length >= text.length) {
            socket.off('data', check);
            resolve(received);
          }
        };
        socket.on('data', check);
        socket.once('close', () => reject(new Error('the connection closed')));
        check();
      }),
      15_000,
      `the echo of ${text}`,
    );
  };
  return { socket, echo };
}

const logLines = (run: Run) =>
  run.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('SIGHUP (end to end)', () => {
  let backend: EchoBackend;
  let dir: string;

  beforeAll(async () => {
    backend = await startEchoBackend('127.0.0.1', 0);
    dir = await mkdtemp(path.join(os.tmpdir(), 'baton-sighup-'));
  });

  afterEach(killAll);

  afterAll(async () => {
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('re-reads --cert/--key: new handshakes get the new certificate, an open connection echoes on; a broken key keeps the old one', async () => {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    await copyFile(path.join(certDir, 'ecdsa-p256.pem'), cert);
    await copyFile(path.join(certDir, 'ecdsa-p256-key.pem'), key);
    const ecdsa = new X509Certificate(fixture('ecdsa-p256.pem')).fingerprint256;
    const rsa = new X509Certificate(fixture('rsa.pem')).fingerprint256;

    const cluster = baton(['cluster', '--drain-timeout', '0', '--relays', '1', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`, '--cert', cert, '--key', key, '--admin', 'off']);
    const m = await waitForMatch(cluster, START_LINE, 30_000, 'the start line');
    const port = Number(m[1]);
    expect(m[2]).toBe(ecdsa);
    expect(await servedFingerprint(port)).toBe(ecdsa);
    const old = await openEcho(port);
    expect(await old.echo('before')).toBe('before');

    // Renewed files at the same paths, then SIGHUP.
    await copyFile(path.join(certDir, 'rsa-key.pem'), key);
    await copyFile(path.join(certDir, 'rsa.pem'), cert);
    cluster.child.kill('SIGHUP');
    await waitForMatch(cluster, /"event":"cert\.reloaded"/, 30_000, 'the certificate reload in the log');
    const reloaded = logLines(cluster).find((l) => l.event === 'cert.reloaded')!;
    expect(reloaded).toMatchObject({ level: 'info', certificateSha256: rsa, certFile: cert, keyFile: key, version: 2 });
    expect(logLines(cluster).find((l) => l.event === 'config.reload')).toMatchObject({ reloaded: 'certificates', certFile: cert, keyFile: key });
    expect(await servedFingerprint(port)).toBe(rsa);
    expect(await old.echo('after the reload')).toBe('after the reload');

    // A broken key file: logged with its name, the cluster lives on with the RSA certificate.
    await writeFile(key, 'not a key\n');
    cluster.child.kill('SIGHUP');
    await waitForMatch(cluster, /"event":"config\.invalid"/, 30_000, 'the reload error in the log');
    const invalid = logLines(cluster).find((l) => l.event === 'config.invalid')!;
    expect(invalid).toMatchObject({ level: 'error', keyFile: key });
    expect(String(invalid.msg)).toContain(`still serving sha256 ${rsa}`);
    expect(String(invalid.error)).toContain(`--key "${key}"`);
    expect(cluster.child.exitCode).toBeNull();
    expect(await servedFingerprint(port)).toBe(rsa);
    expect(await old.echo('after the broken reload')).toBe('after the broken reload');
    old.socket.destroy();

    cluster.child.kill('SIGTERM');
    expect(await withTimeout(cluster.exit, 15_000, 'exit after SIGTERM')).toBe(0);
    expect(cluster.stderr).toBe('');
    expect(cluster.stdout).not.toContain('PRIVATE KEY');
  }, 120_000);

  it('a self-signed cluster logs that there is nothing to reload and serves on', async () => {
    const cluster = baton(['cluster', '--drain-timeout', '0', '--relays', '1', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`, '--admin', 'off']);
    const m = await waitForMatch(cluster, START_LINE, 30_000, 'the start line');
    cluster.child.kill('SIGHUP');
    await waitForMatch(cluster, /SIGHUP: nothing to reload/, 15_000, 'the nothing-to-reload line');
    expect(logLines(cluster).find((l) => l.event === 'config.reload')).toMatchObject({ level: 'info', reloaded: 'nothing' });
    expect(await servedFingerprint(Number(m[1]), false)).toBe(m[2]);
    cluster.child.kill('SIGTERM');
    expect(await withTimeout(cluster.exit, 15_000, 'exit after SIGTERM')).toBe(0);
  }, 60_000);
});
