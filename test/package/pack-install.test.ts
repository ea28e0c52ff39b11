/**
 * What a user does with the package: build it, pack it, install the tarball into an
 * empty folder with production dependencies only (from the npm registry), then
 * `npx baton --version`, start a cluster from there (self-signed certificate, an echo
 * backend) and complete a TLS 1.3 handshake and an echo through it with
 * `openssl s_client`. The build runs in a copy of the package's files, so this
 * checkout's dist/ is never touched while other suites run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, withTimeout } from '../helpers/cli.js';

/** What the tarball is made from: the package's sources and build settings. */
const COPIED = ['src', 'bin', 'native', 'binding.gyp', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE'];

const work = mkdtempSync(join(os.tmpdir(), 'baton-pack-'));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

/** The environment a user's shell would give npm and baton: none of npm's own variables from the `npm test` around us. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'BATON_FROM_SOURCE' && k !== 'INIT_CWD') env[k] = v;
  return env;
}

interface Done {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end, killed after `timeoutMs`. */
function run(cmd: string, args: readonly string[], cwd: string, timeoutMs: number, input?: string): Promise<Done> {
  const child = spawn(cmd, [...args], { cwd, env: userEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.end(input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

function ok(r: Done, what: string): Done {
  expect(r.code, `${what} failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
}

/** A plaintext echo server on loopback (the backend). */
function echoBackend(): Promise<net.Server> {
  return new Promise((resolve) => {
    const server = net.createServer((s) => {
      s.on('error', () => s.destroy());
      s.pipe(s);
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

describe('the package, packed and installed', () => {
  it('installs with production dependencies only and serves a TLS 1.3 echo from the install', { timeout: 420_000 }, async () => {
    // 1. Build and pack, in a copy of the package's files (dev dependencies from this checkout).
    const pkgDir = join(work, 'package-source');
    mkdirSync(pkgDir);
    for (const name of COPIED) if (existsSync(join(ROOT, name))) cpSync(join(ROOT, name), join(pkgDir, name), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(pkgDir, 'node_modules'), 'dir');
    ok(await run('npm', ['run', 'build'], pkgDir, 180_000), 'npm run build');
    // The build emits src/ alone.
    expect(readdirSync(join(pkgDir, 'dist')).sort()).toEqual(readdirSync(join(pkgDir, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort());
    expect(existsSync(join(pkgDir, 'dist/cli/main.js'))).toBe(true);
    expect(existsSync(join(pkgDir, 'dist/actors/pool-bootstrap.mjs'))).toBe(true);
    // dist/ is fresh: packing need not build again (prepack would).
    const packed = ok(await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], pkgDir, 60_000), 'npm pack');
    const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    const paths = info!.files.map((f) => f.path);
    const outside = paths.filter((p) => !/^(dist\/|native\/|bin\/baton\.mjs$|binding\.gyp$|README\.md$|LICENSE$|package\.json$)/.test(p));
    expect(outside, 'files in the tarball beyond dist/, native/, bin/, the README and the license').toEqual([]);
    expect(paths).toContain('dist/cli/main.js');
    expect(paths).toContain('native/build.mjs');
    expect(paths).toContain('native/record_aead.c');
    expect(paths.some((p) => p.startsWith('dist/bench/'))).toBe(true);

    // 2. Install the tarball into an empty folder, production dependencies only.
    const app = join(work, 'app');
    mkdirSync(app);
    // Its own package.json (what `npm init -y` writes), so npm never takes a project further up for this one.
    writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'baton-install-check', version: '1.0.0', private: true }, null, 2)}\n`);
    ok(await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', join(work, info!.filename)], app, 240_000), 'npm install of the tarball');
    expect(existsSync(join(app, 'node_modules/baton/dist/cli/main.js'))).toBe(true);
    expect(existsSync(join(app, 'node_modules/tsx')), 'tsx is a dev dependency').toBe(false);
    expect(existsSync(join(app, 'node_modules/typescript'))).toBe(false);

    // 3. npx baton --version
    const v = ok(await run('npx', ['--no', '--', 'baton', '--version'], app, 30_000), 'npx baton --version');
    expect(v.stdout.trim()).toBe('0.1.0');

    // 4. A cluster from the install, a self-signed certificate, an echo backend.
    const backend = await echoBackend();
    try {
      const port = (backend.address() as net.AddressInfo).port;
      // The installed command itself (what npx ran above), so signals reach baton and no npm process sits between.
      const args = ['cluster', '--drain-timeout', '0', '--relays', '2', '--listen', '127.0.0.1:0', '--backend', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0'];
      const cluster = spawn(join(app, 'node_modules/.bin/baton'), args, { cwd: app, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(cluster);
      let out = '';
      cluster.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      cluster.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      const exited = new Promise<number | null>((resolve) => cluster.once('exit', (code) => resolve(code)));
      const start = await withTimeout(
        new Promise<RegExpExecArray>((resolve, reject) => {
          const check = () => {
            const m = / relays on 127\.0\.0\.1:(\d+) -> backend .*certificate sha256 ([0-9A-F:]+) \(self-signed.*record protection ([^;]+);/.exec(out);
            if (m) resolve(m);
          };
          cluster.stdout.on('data', check);
          void exited.then((code) => reject(new Error(`baton cluster exited ${code}:\n${out}`)));
        }),
        60_000,
        `the start line of baton cluster (output so far: ${JSON.stringify(out)})`,
      );
      const gateway = start[1]!;
      // npm install built the native record protection (the install script).
      const expected = process.env.BATON_NATIVE === '0' ? 'node:crypto' : 'native';
      expect(start[3]!.startsWith(expected), start[0]).toBe(true);

      // 5. openssl s_client: a TLS 1.3 handshake and an echo through the relay.
      const line = `hello from openssl ${process.pid}`;
      const client = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${gateway}`, '-servername', 'localhost', '-tls1_3'], {
        env: userEnv(),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      children.add(client);
      let seen = '';
      client.stdout.setEncoding('utf8').on('data', (d: string) => (seen += d));
      client.stderr.setEncoding('utf8').on('data', () => {});
      client.stdin.write(`${line}\n`);
      const echoed = await withTimeout(
        new Promise<void>((resolve) => {
          const check = () => {
            if (seen.includes(`\n${line}\n`)) resolve();
          };
          client.stdout.on('data', check);
          check();
        }),
        20_000,
        `the echo through baton (openssl printed ${JSON.stringify(seen)})`,
      ).then(
        () => true,
        (e: unknown) => e as Error,
      );
      client.stdin.end();
      client.kill('SIGTERM');
      expect(echoed).toBe(true);
      expect(seen).toMatch(/New, TLSv1\.3, Cipher is TLS_AES_128_GCM_SHA256/);
      // The certificate it served is the one baton made and printed.
      const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(seen)?.[0];
      expect(pem, seen).toBeDefined();
      expect(new X509Certificate(pem!).fingerprint256).toBe(start[2]);

      // A clean stop.
      cluster.kill('SIGTERM');
      expect(await withTimeout(exited, 20_000, 'baton cluster to stop on SIGTERM')).toBe(0);
    } finally {
      await new Promise((r) => backend.close(r));
    }
  });
});
