#!/usr/bin/env node
/**
 * Builds the native record-protection addon (native/record_aead.c) into
 * build/Release/baton_record_aead.node with node-gyp, against Node's own headers and
 * the OpenSSL Node exports. Run by `npm install` (the root package's "install" script)
 * or by hand: `node native/build.mjs [--verbose]`.
 *
 * It never fails the install: when the addon cannot be built or does not load, it
 * prints one line saying so and exits 0, and Baton uses node:crypto for record
 * protection instead (the same bytes, slower). BATON_NATIVE=0 skips the build.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ADDON = join(ROOT, 'build', 'Release', 'baton_record_aead.node');
const VERBOSE = process.argv.includes('--verbose') || process.env.BATON_BUILD_VERBOSE === '1';
const TIMEOUT_MS = 5 * 60_000;

function fallback(why) {
  console.log(`baton: the native record protection could not be built (${why}); Baton will use node:crypto.`);
}

/** How to run node-gyp: npm's own (npm_config_node_gyp, a JS entry, or the one npm bundles), then node-gyp on PATH. */
function nodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return { cmd: process.execPath, args: [fromNpm], label: fromNpm };
  // Run by hand: the node-gyp npm bundles beside npm-cli.js (npm_execpath), if known.
  const npmCli = process.env.npm_execpath;
  if (npmCli) {
    const bundled = join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(bundled)) return { cmd: process.execPath, args: [bundled], label: bundled };
  }
  // Or the npm installed beside this node (<prefix>/lib/node_modules/npm).
  const besideNode = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(besideNode)) return { cmd: process.execPath, args: [besideNode], label: besideNode };
  return { cmd: 'node-gyp', args: [], label: 'node-gyp' };
}

/** Node's own headers, so node-gyp never downloads any (npm here sets nodedir; by hand we may not). */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = resolve(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

/** The most telling line of node-gyp's or the compiler's output: the first "error:", else the last error line. */
function tail(text) {
  const lines = String(text ?? '').trim().split('\n');
  const line = lines.find((l) => /error:/i.test(l)) ?? lines.filter((l) => /error|ERR!/i.test(l)).pop() ?? '';
  return line.replace(/\s+/g, ' ').trim().slice(0, 160);
}

function main() {
  if (process.env.BATON_NATIVE === '0') {
    console.log('baton: BATON_NATIVE=0, not building the native record protection; Baton will use node:crypto.');
    return;
  }
  const gyp = nodeGyp();
  const run = spawnSync(gyp.cmd, [...gyp.args, 'rebuild', `--directory=${ROOT}`, ...nodedirArgs()], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: VERBOSE ? 'inherit' : 'pipe',
    timeout: TIMEOUT_MS,
    env: process.env,
  });
  if (run.error) {
    const e = /** @type {NodeJS.ErrnoException} */ (run.error);
    fallback(e.code === 'ENOENT' ? `${gyp.label} not found` : e.code === 'ETIMEDOUT' ? 'node-gyp timed out' : e.message);
    return;
  }
  if (run.status !== 0) {
    const detail = tail(run.stderr) || tail(run.stdout);
    fallback(`node-gyp exited with ${run.status ?? run.signal}${detail ? `: ${detail}` : ''}; \`node native/build.mjs --verbose\` shows why`);
    return;
  }
  if (!existsSync(ADDON)) {
    fallback(`node-gyp made no ${ADDON}`);
    return;
  }
  // It must load and seal in this Node (e.g. every OpenSSL symbol it needs is exported).
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const a = require(${JSON.stringify(ADDON)});
       const c = a.create('aes-128-gcm', new Uint8Array(16), new Uint8Array(12), 'seal');
       const n = a.sealRecord(c, 0, 23, new Uint8Array(1), 0, new Uint8Array(64), 0);
       a.free(c);
       if (n !== 5 + 1 + 1 + 16) process.exit(3);`,
    ],
    { encoding: 'utf8', stdio: 'pipe', timeout: 30_000 },
  );
  if (probe.status !== 0) {
    fallback(`the built addon does not load or seal in this Node${tail(probe.stderr) ? `: ${tail(probe.stderr)}` : ''}`);
    return;
  }
  console.log('baton: native record protection built (build/Release/baton_record_aead.node).');
}

try {
  main();
} catch (e) {
  fallback(e instanceof Error ? e.message : String(e));
}
process.exitCode = 0;
