/**
 * `baton bench --quick` as a user runs it (`node bin/baton.mjs bench ...`): the
 * run finishes, and its JSON is well formed with positive figures for Node's tls
 * and Baton. No timing assertions: the figures are reported, never enforced.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBenchFlags } from '../../src/cli/bench-command.js';
import { medianRounds } from '../../src/bench/report.js';
import { configs } from '../../src/bench/run.js';
import { specLabel } from '../../src/bench/terminators.js';
import { CliError } from '../../src/cli/errors.js';
import { SOURCE_ENV } from '../helpers/cli.js';
import type { BenchReport, Measurement } from '../../src/bench/types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/baton.mjs');
const outDir = mkdtempSync(join(os.tmpdir(), 'baton-bench-test-'));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

function run(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...SOURCE_ENV } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('parseBenchFlags', () => {
  it('takes ranges and lists and rejects bad values', () => {
    expect(parseBenchFlags({ relays: '1..3' }).relays).toEqual([1, 2, 3]);
    expect(parseBenchFlags({ relays: '4,1,2' }).relays).toEqual([1, 2, 4]);
    expect(parseBenchFlags({ maxRelays: '2', replication: 'on' })).toMatchObject({ relays: [1, 2], replication: [true] });
    expect(() => parseBenchFlags({ workloads: 'bulk-up,nope' })).toThrow(CliError);
    expect(() => parseBenchFlags({ seconds: '0' })).toThrow(CliError);
    expect(() => parseBenchFlags({ external: 'haproxy -f x.cfg' })).toThrow(/\{port\}/);
    expect(parseBenchFlags({}).protection).toEqual(['native', 'node:crypto']);
    expect(parseBenchFlags({}).connections).toBe(16);
    expect(parseBenchFlags({ recordProtection: 'node:crypto' }).protection).toEqual(['node:crypto']);
    expect(() => parseBenchFlags({ recordProtection: 'openssl' })).toThrow(/--record-protection/);
  });

  it('takes --tickets stateless, stateful or both, and runs a Baton per mode', () => {
    expect(parseBenchFlags({}).tickets).toBeUndefined();
    const flags = parseBenchFlags({ relays: '2', replication: 'on', recordProtection: 'native', tickets: 'stateless,stateful' });
    expect(flags.tickets).toEqual(['stateless', 'stateful']);
    expect(configs(flags).map(specLabel)).toEqual(['node-tls', 'baton r2 repl-on', 'baton r2 repl-on stateful']);
    expect(() => parseBenchFlags({ tickets: 'sticky' })).toThrow(/--tickets/);
  });
});

describe('--rounds', () => {
  it('takes 1 to 9 rounds, 1 by default', () => {
    expect(parseBenchFlags({}).rounds).toBe(1);
    expect(parseBenchFlags({ rounds: '3' }).rounds).toBe(3);
    expect(() => parseBenchFlags({ rounds: '0' })).toThrow(/--rounds/);
    expect(() => parseBenchFlags({ rounds: 'x' })).toThrow(/--rounds/);
  });

  it('keeps, per terminator and workload, the median round whole, with every round figure', () => {
    const m = (terminator: string, workload: 'bulk-up' | 'echo', perCpuSecond: number, p50Us: number) =>
      ({ terminator, workload, perCpuSecond, p50Us }) as unknown as Omit<Measurement, 'vsNode'>;
    const out = medianRounds([m('node-tls', 'echo', 30, 1), m('baton', 'echo', 10, 2), m('node-tls', 'echo', 10, 3), m('baton', 'echo', 20, 4), m('node-tls', 'echo', 20, 5), m('baton', 'echo', 30, 6), m('baton', 'bulk-up', 7, 7)]);
    expect(out.map((x) => [x.terminator, x.workload, x.perCpuSecond, x.p50Us, x.rounds])).toEqual([
      ['node-tls', 'echo', 20, 5, [30, 10, 20]],
      ['baton', 'echo', 20, 4, [10, 20, 30]],
      // One round: the measurement as it was.
      ['baton', 'bulk-up', 7, 7, undefined],
    ]);
    // An even count takes the lower middle.
    expect(medianRounds([m('a', 'echo', 4, 0), m('a', 'echo', 1, 0)])[0]!.perCpuSecond).toBe(1);
  });
});

describe('baton bench --quick', () => {
  it('measures node-tls and Baton and writes a well-formed report', { timeout: 120_000 }, async () => {
    const { code, stdout, stderr } = await run(['bench', '--quick', '--out-dir', outDir]);
    expect(code, stderr).toBe(0);
    const jsonLine = /^json: (.+)$/m.exec(stdout);
    const svgLine = /^chart: (.+)$/m.exec(stdout);
    expect(jsonLine, stdout).not.toBeNull();
    expect(svgLine, stdout).not.toBeNull();
    const report = JSON.parse(readFileSync(join(ROOT, jsonLine![1]!), 'utf8')) as BenchReport;

    expect(report.failures).toEqual([]);
    const terminators = [...new Set(report.measurements.map((m) => m.terminator))];
    expect(terminators).toEqual(['node-tls', 'baton r1 repl-on']);
    const workloads = [...new Set(report.measurements.map((m) => m.workload))];
    expect(workloads).toEqual(['bulk-up', 'handshake']);
    expect(report.measurements).toHaveLength(4);
    for (const m of report.measurements) {
      expect(m.seconds).toBeGreaterThan(0);
      expect(m.terminatorCpuSeconds).toBeGreaterThan(0);
      expect(m.perSecond).toBeGreaterThan(0);
      expect(m.perCpuSecond).toBeGreaterThan(0);
      expect(m.vsNode.perCpuSecond).toBeGreaterThan(0);
      expect(m.errors).toBe(0);
      if (m.workload === 'bulk-up') expect(m.bytes).toBeGreaterThan(0);
      else {
        expect(m.handshakes).toBeGreaterThan(0);
        expect(m.p50Us).toBeGreaterThan(0);
        expect(m.p99Us).toBeGreaterThanOrEqual(m.p50Us!);
      }
    }
    // Each Baton run says how it protected records (npm install builds the native addon).
    const expected = process.env.BATON_NATIVE === '0' ? 'node:crypto' : 'native';
    for (const m of report.measurements.filter((x) => x.spec.kind === 'baton')) expect(m.recordProtection?.startsWith(expected)).toBe(true);
    expect(stdout).toMatch(new RegExp(`^record protection \\(from each Baton's start line\\): baton r1 repl-on: ${expected}`, 'm'));
    // Memory per idle connection was read for each terminator.
    expect(report.memory.map((m) => [m.terminator, m.connections])).toEqual([['node-tls', 20], ['baton r1 repl-on', 20]]);
    for (const m of report.memory) expect(m.rssIdleBytes).toBeGreaterThan(0);
    expect(stdout).toMatch(/^memory per idle connection/m);
    const node = report.measurements.filter((m) => m.terminator === 'node-tls');
    for (const m of node) expect(m.vsNode.perCpuSecond).toBe(1);
    expect(report.targets.map((t) => t.name)).toEqual(['bulk-per-cpu', 'bulk-per-cpu-fallback', 'handshakes-per-cpu', 'echo-cpu', 'echo-p50', 'replication-cost']);

    // The table names every configuration and workload with its ratio to node-tls.
    expect(stdout).toMatch(/bulk-up\s+baton r1 repl-on\s+[\d.]+ MB\/s\s+[\d.]+x/);
    expect(stdout).toMatch(/handshake\s+node-tls\s+[\d.]+ hs\/s\s+1\.00x/);

    const svg = readFileSync(join(ROOT, svgLine![1]!), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('<rect');
  });
});
