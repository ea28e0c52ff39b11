/**
 * `baton cluster --handshake-timeout 1s --max-connections 2`, end to end: a client
 * sending its ClientHello a byte every 200 ms is closed within a bound while a normal
 * client is served, and a third connection past the limit waits until one ends; both
 * show in GET /metrics. Waits are on events and conditions, bounded generously.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { baton, killAll, waitForMatch, withTimeout } from '../helpers/cli.js';

const START_LINE = /^baton: 1 relay on 127\.0\.0\.1:(\d+) -> .*; admin http:\/\/127\.0\.0\.1:(\d+) /m;

function connectTls(port: number): Promise<tls.TLSSocket> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    }),
    20_000,
    'a TLS handshake',
  );
}

function echo(s: tls.TLSSocket, text: string): Promise<string> {
  return withTimeout(
    new Promise((resolve) => {
      let got = '';
      const on = (d: Buffer) => {
        got += d.toString('utf8');
        if (got.length >= text.length) {
          s.off('data', on);
          resolve(got);
        }
      };
      s.on('data', on);
      s.write(text);
    }),
    20_000,
    `the echo of ${text}`,
  );
}

describe('baton cluster deadlines and limit (end to end)', () => {
  let backend: EchoBackend;
  let dir: string;
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    backend = await startEchoBackend('127.0.0.1', 0);
    dir = await mkdtemp(path.join(os.tmpdir(), 'baton-limits-'));
  });

  afterEach(() => {
    for (const s of sockets.splice(0)) s.destroy();
    killAll();
  });

  afterAll(async () => {
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('closes a trickling handshake after --handshake-timeout, serves a normal client, and holds a third past --max-connections', async () => {
    const tokenFile = path.join(dir, 'tok');
    const run = baton([
      'cluster', '--drain-timeout', '0', '--relays', '1', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`,
      '--admin', '127.0.0.1:0', '--token-file', tokenFile, '--handshake-timeout', '1s', '--max-connections', '2',
    ]);
    const m = await waitForMatch(run, START_LINE, 30_000, 'the start line');
    const port = Number(m[1]);
    const metrics = async () => {
      const token = (await readFile(tokenFile, 'utf8')).trim();
      const r = await fetch(`http://127.0.0.1:${m[2]}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      return r.text();
    };

    // A TLS record header announcing a 512-byte ClientHello, then its body, a byte every 200 ms.
    const hello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), Buffer.alloc(511, 0x41)]);
    const slow = net.connect(port, '127.0.0.1');
    sockets.push(slow);
    slow.on('error', () => {});
    await withTimeout(new Promise((r) => slow.once('connect', r)), 10_000, 'the slow connect');
    const since = Date.now();
    let sent = 0;
    const drip = setInterval(() => {
      if (!slow.destroyed) slow.write(hello.subarray(sent, ++sent));
    }, 200);
    try {
      const a = await connectTls(port);
      sockets.push(a);
      expect(await echo(a, 'normal')).toBe('normal');
      await withTimeout(new Promise((r) => slow.once('close', r)), 15_000, 'the slow client closed');
      expect(Date.now() - since).toBeGreaterThanOrEqual(900);
    } finally {
      clearInterval(drip);
    }
    expect(await metrics()).toMatch(/^baton_deadline_closes_total\{deadline="handshake"\} 1$/m);

    // Two served; a third waits unread until one ends.
    const a = sockets[1] as tls.TLSSocket;
    const b = await connectTls(port);
    sockets.push(b);
    let served = false;
    const third = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => (served = true));
    sockets.push(third);
    third.on('error', () => {});
    const secure = withTimeout(new Promise((r) => third.once('secureConnect', r)), 20_000, 'the third handshake');
    await withTimeout(
      (async () => {
        while (!/^baton_connections_waiting 1$/m.test(await metrics())) await new Promise((r) => setTimeout(r, 50));
      })(),
      15_000,
      'the third connection to wait',
    );
    expect(await echo(b, 'b')).toBe('b');
    expect(served).toBe(false);
    a.destroy();
    await secure;
    expect(await echo(third, 'third')).toBe('third');
    const after = await metrics();
    expect(after).toMatch(/^baton_connections_queued_total 1$/m);
    expect(after).toMatch(/^baton_connections_waiting 0$/m);

    run.child.kill('SIGTERM');
    expect(await withTimeout(run.exit, 15_000, 'exit after SIGTERM')).toBe(0);
    expect(run.stderr).toBe('');
  }, 90_000);

  it('--max-handshake-warning-alerts and --retained-budget reach the running cluster and its metrics', async () => {
    const tokenFile = path.join(dir, 'tok-caps');
    const run = baton([
      'cluster', '--drain-timeout', '0', '--relays', '1', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`,
      '--admin', '127.0.0.1:0', '--token-file', tokenFile, '--max-handshake-warning-alerts', '2', '--retained-budget', '8MiB',
    ]);
    const m = await waitForMatch(run, START_LINE, 30_000, 'the start line');
    const metrics = async () => {
      const token = (await readFile(tokenFile, 'utf8')).trim();
      const r = await fetch(`http://127.0.0.1:${m[2]}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      return r.text();
    };
    const before = await metrics();
    expect(before).toMatch(/^baton_retained_budget_bytes 8388608$/m);
    expect(before).toMatch(/^baton_limit_closes_total\{limit="handshake_warning_alerts"\} 0$/m);
    // Three user_canceled alerts before any ClientHello: the third is one too many.
    const s = net.connect(Number(m[1]), '127.0.0.1');
    sockets.push(s);
    s.on('error', () => {});
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    await withTimeout(new Promise((r) => s.once('connect', r)), 10_000, 'the connect');
    s.write(Buffer.from([21, 3, 3, 0, 2, 1, 90, 21, 3, 3, 0, 2, 1, 90, 21, 3, 3, 0, 2, 1, 90]));
    await withTimeout(new Promise((r) => s.once('close', r)), 15_000, 'the connection closed');
    expect([...Buffer.concat(got)]).toEqual([21, 3, 3, 0, 2, 2, 10]);
    expect(await metrics()).toMatch(/^baton_limit_closes_total\{limit="handshake_warning_alerts"\} 1$/m);
    run.child.kill('SIGTERM');
    expect(await withTimeout(run.exit, 15_000, 'exit after SIGTERM')).toBe(0);
    expect(run.stderr).toBe('');
  }, 90_000);
});
