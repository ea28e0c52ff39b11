/**
 * PROXY protocol v2 as real consumers read it: NGINX (`listen ... proxy_protocol`)
 * and HAProxy (`bind ... accept-proxy`) behind Baton answer an HTTPS request with the
 * client address they were told, which must be the Node client's own address and
 * port. Both run as our own processes on free loopback ports with a temporary
 * folder (.ci/run installs the Debian packages); none of their services is used.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../src/cluster/cluster.js';
import { P256_CERT, until } from '../helpers/cluster.js';
import { caPem, certDir } from '../helpers/interop.js';
import { baton, killAll, waitForMatch, withTimeout } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-pp2-'));
const children: ChildProcess[] = [];

/** A loopback port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Spawns a consumer and waits (bounded) until its port takes connections. */
async function startConsumer(what: string, cmd: string, args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  const accepts = () =>
    new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
  await until(() => `${what} to listen on ${port} (exited: ${exited}; output: ${output})`, async () => {
    if (exited !== null) throw new Error(`${what} exited ${exited}: ${output}`);
    return accepts();
  }, 15_000, 50);
  return child;
}

/** One HTTP/1.1 GET over TLS through Baton: the response body, and the client socket's own address and port. */
async function httpsGet(port: number): Promise<{ body: string; local: string; status: string }> {
  const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', () => resolve());
    s.once('error', reject);
  });
  const local = `${s.localAddress}:${s.localPort}`;
  let response = '';
  s.on('data', (d: Buffer) => (response += d.toString()));
  const ended = new Promise<void>((resolve, reject) => {
    s.once('end', () => resolve());
    s.once('error', reject);
  });
  s.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  await withTimeout(ended, 10_000, 'the end of the HTTP response');
  s.destroy();
  const [head, body = ''] = response.split('\r\n\r\n');
  return { status: head!.split('\r\n')[0]!, body, local };
}

afterAll(async () => {
  killAll();
  await Promise.all(
    children.map((c) =>
      c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((resolve) => (c.once('exit', resolve), c.kill('SIGKILL')))),
  );
  rmSync(dir, { recursive: true, force: true });
});

describe('PROXY v2 to NGINX', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.close();
  });

  it('NGINX sees the client address and port', async () => {
    const port = await freePort();
    const conf = join(dir, 'nginx.conf');
    // One process (master_process off), so killing it leaves no worker behind. Every path nginx would otherwise take from its build (logs, temp folders, pid) is
    // in our folder, so it needs nothing owned by root and no service of the package.
    writeFileSync(
      conf,
      `worker_processes 1;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
  server {
    listen 127.0.0.1:${port} proxy_protocol;
    location / { default_type text/plain; return 200 "$proxy_protocol_addr:$proxy_protocol_port"; }
  }
}
`,
    );
    await startConsumer('nginx', 'nginx', ['-p', `${dir}/`, '-e', 'stderr', '-c', conf, '-g', `daemon off; master_process off; pid ${dir}/nginx.pid; error_log stderr;`], port);
    cluster = await Cluster.start({
      relays: 2,
      listen: { host: '127.0.0.1', port: 0 },
      backend: { host: '127.0.0.1', port },
      certificates: [P256_CERT],
      alpn: ['http/1.1'],
      proxyProtocol: 'v2',
    });
    const got = await httpsGet(cluster.address.port);
    expect(got.status).toBe('HTTP/1.1 200 OK');
    expect(got.body).toBe(got.local);
  }, 60_000);
});

describe('PROXY v2 to HAProxy, from `baton cluster --proxy-protocol v2`', () => {
  it('HAProxy sees the client address and port, Baton\'s address and the SNI', async () => {
    const port = await freePort();
    const conf = join(dir, 'haproxy.cfg');
    writeFileSync(
      conf,
      `global
  log stderr format raw local0 warning
defaults
  mode http
  log global
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend pp2
  bind 127.0.0.1:${port} accept-proxy
  http-request return status 200 content-type text/plain lf-string "%[src]:%[src_port] %[dst]:%[dst_port] %[fc_pp_authority]"
`,
    );
    await startConsumer('haproxy', 'haproxy', ['-db', '-f', conf], port);
    const run = baton([
      'cluster', '--relays', '2', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${port}`, '--proxy-protocol', 'v2',
      '--cert', `${certDir}ecdsa-p256.pem`, '--key', `${certDir}ecdsa-p256-key.pem`, '--alpn', 'http/1.1', '--admin', 'off',
    ]);
    const [line, listen] = await waitForMatch(run, /^baton: .* on 127\.0\.0\.1:(\d+) ->.*$/m, 30_000, 'the start line');
    expect(line).toContain('PROXY protocol v2 to the backend');
    const got = await httpsGet(Number(listen));
    expect(got.status).toMatch(/^HTTP\/1\.1 200/);
    expect(got.body).toBe(`${got.local} 127.0.0.1:${listen} localhost`);
  }, 60_000);
});
