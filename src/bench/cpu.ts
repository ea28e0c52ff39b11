/**
 * CPU time and resident memory of a process and its descendants, every thread included, from Linux
 * /proc (utime + stime in clock ticks, `getconf CLK_TCK`, normally 100).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';

let ticks: number | undefined;

/** Clock ticks per second of /proc/<pid>/stat times. */
export function clockTicks(): number {
  if (ticks === undefined) {
    try {
      const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      ticks = Number.isFinite(n) && n > 0 ? n : 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** True where /proc gives per-process CPU times (Linux). */
export function procAvailable(): boolean {
  return existsSync(`/proc/${process.pid}/stat`);
}

/** utime + stime of a whole process (all its threads, live and exited), in ticks; undefined once it is gone. */
function processTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: fields after it start past the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Field 3 (state) is f[0]; utime and stime are fields 14 and 15.
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

/** Direct children of a process (the union over its threads). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
        if (text) for (const c of text.split(/\s+/)) out.push(Number(c));
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    // the process ended meanwhile
  }
  return out;
}

/** `read` summed over `pid` and every live descendant (e.g. HAProxy's workers under its master, or a command under `sh -c`). */
function overTree(pid: number, read: (pid: number) => number): number {
  let total = 0;
  const seen = new Set<number>();
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    total += read(p);
    stack.push(...childrenOf(p));
  }
  return total;
}

/** CPU seconds used so far by `pid` and every live descendant. */
export function treeCpuSeconds(pid: number): number {
  return overTree(pid, (p) => processTicks(p) ?? 0) / clockTicks();
}

/** Resident memory of a process (VmRSS, every thread's), in bytes; 0 once it is gone. */
function processRss(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resident memory of `pid` and every live descendant, in bytes. */
export function treeRssBytes(pid: number): number {
  return overTree(pid, processRss);
}
