/** Ratios to Node's `tls`, the target verdicts, and the stdout table of a bench run. */
import type { IdleMemory, Measurement, TargetCheck } from './types.js';
import { unitOf, type Workload } from './workloads.js';

type Raw = Omit<Measurement, 'vsNode'>;

const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 && Number.isFinite(a) ? a / b : null);

/**
 * One measurement per terminator and workload: with several rounds, the round whose
 * figure per CPU-second is the median (the lower middle of an even count), carrying
 * every round's figure. A median of whole rounds keeps each row's figures consistent.
 */
export function medianRounds(raw: readonly Raw[]): Raw[] {
  const groups = new Map<string, Raw[]>();
  for (const m of raw) {
    const key = `${m.terminator}\0${m.workload}`;
    const g = groups.get(key);
    if (g) g.push(m);
    else groups.set(key, [m]);
  }
  return [...groups.values()].map((g) => {
    if (g.length === 1) return g[0]!;
    const sorted = [...g].sort((a, b) => a.perCpuSecond - b.perCpuSecond);
    return { ...sorted[(sorted.length - 1) >> 1]!, rounds: g.map((m) => m.perCpuSecond) };
  });
}

/** Adds each figure's ratio to node-tls's for the same workload. */
export function withRatios(raw: readonly Raw[]): Measurement[] {
  return raw.map((m) => {
    const node = raw.find((n) => n.spec.kind === 'node-tls' && n.workload === m.workload);
    return {
      ...m,
      vsNode: {
        perSecond: ratio(m.perSecond, node?.perSecond ?? null),
        perCpuSecond: ratio(m.perCpuSecond, node?.perCpuSecond ?? null),
        p50Us: ratio(m.p50Us, node?.p50Us ?? null),
        p99Us: ratio(m.p99Us, node?.p99Us ?? null),
      },
    };
  });
}

function check(name: string, goal: string, threshold: number, cases: TargetCheck['cases']): TargetCheck {
  const rs = cases.map((c) => c.ratio);
  const worst = rs.length ? Math.min(...rs) : null;
  return { name, goal, threshold, cases, worst, best: rs.length ? Math.max(...rs) : null, met: worst === null ? null : worst >= threshold };
}

/**
 * The targets of the hot-path issue, per CPU-second of the whole terminator process,
 * Baton with replication on beside node-tls in the same run: bulk bytes >= 0.9x with
 * the native record protection and >= 0.6x with node:crypto; handshakes (full and
 * resumed) >= 0.8x; echo CPU per round trip <= 2x (round trips per CPU-second >= 0.5x)
 * and p50 latency <= 1.5x; replication on / off >= 0.9x (bulk bytes per CPU-second).
 */
export function targets(ms: readonly Measurement[]): TargetCheck[] {
  const on = (protection: 'native' | 'node:crypto') =>
    ms.filter((m) => m.spec.kind === 'baton' && m.spec.replication && m.spec.protection === protection);
  const bulk = (w: Workload) => w === 'bulk-up' || w === 'bulk-down';
  const cases = (rows: readonly Measurement[], filter: (m: Measurement) => boolean, ratio: (m: Measurement) => number | null) =>
    rows.filter(filter).flatMap((m) => {
      const r = ratio(m);
      return r === null ? [] : [{ terminator: m.terminator, workload: m.workload, ratio: r }];
    });
  const perCpu = (m: Measurement) => m.vsNode.perCpuSecond;
  // Lower is better for latency: the check is on node's p50 over Baton's (>= 1/1.5).
  const p50 = (m: Measurement) => (m.vsNode.p50Us === null || m.vsNode.p50Us === 0 ? null : 1 / m.vsNode.p50Us);

  const repl: { terminator: string; workload: Workload; ratio: number }[] = [];
  for (const m of on('native')) {
    if (m.spec.kind !== 'baton' || !bulk(m.workload)) continue;
    const { relays } = m.spec;
    const off = ms.find((x) => x.spec.kind === 'baton' && !x.spec.replication && x.spec.protection === 'native' && x.spec.relays === relays && x.workload === m.workload);
    if (off && off.perCpuSecond > 0) repl.push({ terminator: `baton r${relays} on/off`, workload: m.workload, ratio: m.perCpuSecond / off.perCpuSecond });
  }
  return [
    check('bulk-per-cpu', 'bulk bytes per CPU-second, Baton (native) / node-tls', 0.9, cases(on('native'), (m) => bulk(m.workload), perCpu)),
    check('bulk-per-cpu-fallback', 'bulk bytes per CPU-second, Baton (node:crypto) / node-tls', 0.6, cases(on('node:crypto'), (m) => bulk(m.workload), perCpu)),
    check('handshakes-per-cpu', 'handshakes per CPU-second, Baton (native) / node-tls', 0.8, cases(on('native'), (m) => m.workload === 'handshake' || m.workload === 'resume', perCpu)),
    check('echo-cpu', 'echo round trips per CPU-second, Baton (native) / node-tls (CPU per round trip <= 2x)', 0.5, cases(on('native'), (m) => m.workload === 'echo', perCpu)),
    check('echo-p50', 'echo p50 latency, node-tls / Baton (native) (Baton <= 1.5x)', 1 / 1.5, cases(on('native'), (m) => m.workload === 'echo', p50)),
    check('replication-cost', 'bulk bytes per CPU-second, Baton replication on / off', 0.9, repl),
  ];
}

// ---------------------------------------------------------------------------------

function si(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}
const times = (r: number | null) => (r === null ? '' : `${r.toFixed(2)}x`);
const us = (x: number | null) => (x === null ? '-' : x >= 1000 ? `${(x / 1000).toFixed(1)}ms` : `${x.toFixed(0)}us`);

function rate(m: Measurement, perCpu: boolean): string {
  const v = perCpu ? m.perCpuSecond : m.perSecond;
  const per = perCpu ? '/cpu-s' : '/s';
  switch (unitOf(m.workload)) {
    case 'bytes':
      return `${si(v / 1e6)} MB${per}`;
    case 'roundTrips':
      return `${si(v)} rt${per}`;
    case 'handshakes':
      return `${si(v)} hs${per}`;
  }
}

/** The rounds' lowest and highest figure per CPU-second, in the row's unit (bytes in MB). */
function spread(m: Measurement): string {
  const scale = unitOf(m.workload) === 'bytes' ? 1e-6 : 1;
  return `${si(Math.min(...m.rounds!) * scale)} to ${si(Math.max(...m.rounds!) * scale)}`;
}

/** The result table, one row per workload and terminator, ratios to node-tls beside each figure. */
export function formatTable(ms: readonly Measurement[]): string[] {
  const order = [...new Set(ms.map((m) => m.workload))];
  const sorted = [...ms].sort((a, b) => order.indexOf(a.workload) - order.indexOf(b.workload));
  const rows = sorted.map((m) => ({
    workload: m.workload,
    terminator: m.terminator,
    'wall rate': rate(m, false),
    'x node': times(m.vsNode.perSecond),
    'cpu cores': m.terminatorCores.toFixed(2),
    'per cpu-second': rate(m, true),
    'x node ': times(m.vsNode.perCpuSecond),
    p50: us(m.p50Us),
    'x node  ': times(m.vsNode.p50Us),
    p99: us(m.p99Us),
    'x node   ': times(m.vsNode.p99Us),
    note: [
      m.rounds ? `median of ${m.rounds.length}, ${spread(m)}` : '',
      m.errors ? `${m.errors} errors` : '',
      m.workload === 'resume' && m.resumedFraction < 0.99 ? `${(m.resumedFraction * 100).toFixed(0)}% resumed` : '',
    ]
      .filter(Boolean)
      .join(', '),
  }));
  if (rows.length === 0) return ['(no measurements)'];
  const cols = Object.keys(rows[0]!) as (keyof (typeof rows)[number])[];
  const width = cols.map((c) => Math.max(c.trim().length, ...rows.map((r) => r[c].length)));
  const left = new Set(['workload', 'terminator', 'note']);
  const line = (cells: string[]) =>
    cells
      .map((s, i) => (left.has(cols[i]!) ? s.padEnd(width[i]!) : s.padStart(width[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(cols.map((c) => c.trim())), line(width.map((w) => '-'.repeat(w)))];
  let last = '';
  for (const r of rows) {
    if (last && r.workload !== last) out.push('');
    last = r.workload;
    out.push(line(cols.map((c) => r[c])));
  }
  return out;
}

/** One line per target: verdict, worst and best ratio, and the margin. */
export function formatTargets(ts: readonly TargetCheck[]): string[] {
  return ts.map((t) => {
    if (t.worst === null) return `  n/a   ${t.goal} >= ${t.threshold.toFixed(2)}x: not measured in this run`;
    const worstCase = t.cases.find((c) => c.ratio === t.worst)!;
    const margin = ((t.worst / t.threshold - 1) * 100).toFixed(0);
    return (
      `  ${t.met ? 'MET ' : 'MISS'}  ${t.goal} >= ${t.threshold.toFixed(2)}x: worst ${t.worst.toFixed(2)}x ` +
      `(${worstCase.terminator}, ${worstCase.workload}), best ${t.best!.toFixed(2)}x; ` +
      `${t.met ? `${margin}% above` : `${margin.replace('-', '')}% short of`} the target`
    );
  });
}

/** The idle-memory lines: KiB per connection, Baton (native, replication on) against the 32 KiB target. */
export function formatMemory(ms: readonly IdleMemory[]): string[] {
  const node = ms.find((m) => m.terminator === 'node-tls');
  return ms.map((m) => {
    const kib = m.bytesPerConnection / 1024;
    const vs = node && node.bytesPerConnection > 0 && m !== node ? ` (${(m.bytesPerConnection / node.bytesPerConnection).toFixed(2)}x node-tls)` : '';
    const verdict = m.terminator.startsWith('baton') && !m.terminator.includes('node:crypto') ? (kib <= 32 ? '  MET <= 32 KiB' : '  MISS > 32 KiB') : '';
    return `  ${m.terminator.padEnd(30)} ${kib.toFixed(1).padStart(7)} KiB per connection over ${m.connections}${vs}${verdict}`;
  });
}
