/**
 * Summarises V8 CPU profiles (`--cpu-prof`): the functions with the most self
 * time, per profile (one per thread: the main thread is Baton's gateway, the
 * others its relay workers).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileSummary {
  readonly file: string;
  /** Sampled milliseconds that were not idle (program, GC and JS). */
  readonly busyMs: number;
  readonly totalMs: number;
  readonly top: readonly { readonly fn: string; readonly ms: number; readonly pct: number }[];
}

/** Monotonic microseconds, the clock V8 stamps profile samples with (CLOCK_MONOTONIC on Linux). */
export const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * Self time per function. With `windows` (monotonic µs, see monotonicUs), only
 * samples inside them count: the measured windows, not start-up or teardown.
 */
export function summarize(file: string, root: string, topN = 12, windows?: readonly (readonly [number, number])[]): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const inside = (t: number) => !windows || windows.length === 0 || windows.some(([a, b]) => t >= a && t <= b);
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (!inside(t)) continue;
    // timeDeltas[i] is the time before sample i; attribute the next delta to it.
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
  }
  const byFn = new Map<string, number>();
  let busy = 0;
  let total = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id)!;
    total += ms;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') continue;
    busy += ms;
    let url = n.callFrame.url.replace(/^file:\/\//, '');
    if (url.startsWith(root)) url = relative(root, url);
    const key = url ? `${name} ${url}:${n.callFrame.lineNumber + 1}` : name;
    byFn.set(key, (byFn.get(key) ?? 0) + ms);
  }
  const top = [...byFn.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, topN)
    .map(([fn, ms]) => ({ fn, ms, pct: busy > 0 ? (ms / busy) * 100 : 0 }));
  return { file, busyMs: busy, totalMs: total, top };
}

/** Every `.cpuprofile` under `dir`, largest busy time first. */
export function summarizeDir(dir: string, root: string, topN = 12, windows?: readonly (readonly [number, number])[]): ProfileSummary[] {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const f of readdirSync(d)) {
      const path = join(d, f);
      if (statSync(path).isDirectory()) walk(path);
      else if (f.endsWith('.cpuprofile')) files.push(path);
    }
  };
  walk(dir);
  return files.map((f) => summarize(f, root, topN, windows)).sort((a, b) => b.busyMs - a.busyMs);
}

export function formatSummary(s: ProfileSummary): string[] {
  return [
    `${s.file}: ${(s.busyMs / 1000).toFixed(2)} s busy of ${(s.totalMs / 1000).toFixed(2)} s sampled (measured windows)`,
    ...s.top.map((t) => `  ${t.pct.toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(6)} ms  ${t.fn}`),
  ];
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: node dist/bench/profile.js (or --import tsx src/bench/profile.ts) <dir with .cpuprofile files> [topN]\n');
    process.exit(2);
  }
  for (const s of summarizeDir(dir, process.cwd(), Number(process.argv[3] ?? 15))) console.log(formatSummary(s).join('\n'), '\n');
}
