/**
 * What the micro-benchmarks share: the tinybench setup (BENCH_TIME_MS, BENCH_WARMUP_MS,
 * BENCH_CLOCK=cpu to sample process CPU time instead of wall time on a loaded machine),
 * the process CPU clock and number formatting.
 */
import { Bench, type Task } from 'tinybench';

export const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 400);
export const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 100);
export const CPU_CLOCK = process.env.BENCH_CLOCK === 'cpu';

/** Process CPU time (user + system, every thread) in ms. */
export function cpuNow(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export function newBench(): Bench {
  return new Bench({
    time: TIME_MS,
    warmupTime: WARMUP_MS,
    iterations: 32,
    warmupIterations: 8,
    throws: true,
    ...(CPU_CLOCK ? { now: cpuNow, subtractTimerOverhead: true } : {}),
  });
}

/** A task's result, which must have completed. */
export function completed(task: Task) {
  const r = task.result;
  if (r.state !== 'completed') throw new Error(`task ${task.name} did not complete (${r.state})`);
  return r;
}

/** Three significant digits; whole numbers with separators from 100 up. */
export function fmt(n: number, digits = 3): string {
  if (!Number.isFinite(n)) return String(n);
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toPrecision(digits);
}
