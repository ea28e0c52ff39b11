/**
 * Runs the tinybench micro-benchmarks (the engine's and the runtime's, listed in
 * MICRO below) in turn, each in its own `tsx` child process so one file's JIT
 * state, heap and handles cannot skew the next. The macro benchmarks are not
 * here: `npm run bench` (baton bench) and `npx tsx bench/cluster.bench.ts`.
 *
 *   npm run bench:micro                 every micro-benchmark
 *   npm run bench:micro -- tls actors   only files whose name contains one of the words
 *
 * Environment (BENCH_TIME_MS, BENCH_FILTER, ...) passes through to the children.
 * Exits non-zero if any file fails.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
/** The tinybench files. */
const MICRO = ['actors.bench.ts', 'data-channel.bench.ts', 'tls.bench.ts', 'record-aead.bench.ts'];
const files = MICRO.filter((f) => only.length === 0 || only.some((w) => f.includes(w)));

if (files.length === 0) {
  console.error(`bench/micro: no micro-benchmark${only.length ? ` matching ${only.join(', ')}` : ''}`);
  process.exit(1);
}

const failed: string[] = [];
const started = performance.now();
for (const file of files) {
  console.log(`\n=== ${file} ===`);
  const t0 = performance.now();
  // `node --import tsx` is what the tsx CLI does, without an extra wrapper process.
  const res = spawnSync(process.execPath, ['--import', 'tsx', join(here, file)], { stdio: 'inherit', env: process.env });
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  if (res.status !== 0) {
    failed.push(file);
    console.error(`=== ${file} FAILED (${res.error?.message ?? res.signal ?? `exit ${res.status}`}) after ${secs} s ===`);
  } else {
    console.log(`=== ${file} ok (${secs} s) ===`);
  }
}
console.log(`\nbench/micro: ${files.length - failed.length}/${files.length} files ok in ${((performance.now() - started) / 1000).toFixed(1)} s`);
if (failed.length) process.exit(1);
