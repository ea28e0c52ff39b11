/**
 * `baton demo` run as a user runs it (what `npm start` does), short: it reaches
 * its summary with relays crashed, takeovers done, and no byte lost; and as a soak
 * with a crash count as its stop condition.
 */
import { describe, expect, it } from 'vitest';
import { parseCrashInterval, parseCrashKinds } from '../../src/cli/demo-command.js';
import { CliError } from '../../src/cli/errors.js';
import { runDemo } from '../helpers/cli.js';

it('runs the demo to its summary with crashes and no byte lost', async () => {
  const { out, code } = await runDemo(['--duration', '7', '--crash-every', '2', '--clients', '4', '--no-live'], 90_000);
  expect(out).toMatch(/summary: OK/);
  expect(out).toMatch(/ 0 bytes lost, 0 connections lost/);
  const crashes = Number(/(\d+) relay crashes/.exec(out)?.[1] ?? 0);
  const takeovers = Number(/(\d+) connection takeovers/.exec(out)?.[1] ?? 0);
  expect(crashes).toBeGreaterThanOrEqual(1);
  expect(takeovers).toBeGreaterThanOrEqual(1);
  expect(code).toBe(0);
}, 120_000);

it('soaks until a crash count: 10 crashes of every kind, then a summary of what was injected and lost', async () => {
  const { out, code } = await runDemo(['--crashes', '10', '--clients', '4', '--crash-kinds', 'all', '--crash-interval', '0.3-1', '--no-live'], 200_000);
  expect(out, out).toMatch(/until 10 crashes/);
  expect(out, out).toMatch(/summary: OK/);
  const line = /(\d+) relay crashes \(([^)]*)\)/.exec(out);
  expect(line, out).not.toBeNull();
  const total = Number(line![1]);
  // The run stops at its count (an armed fault point may still fire while it winds down).
  expect(total).toBeGreaterThanOrEqual(10);
  const byKind = Object.fromEntries(line![2]!.split(', ').map((p) => [p.replace(/ \d+$/, ''), Number(/(\d+)$/.exec(p)![1])]));
  expect(Object.values(byKind).reduce((a, n) => a + n, 0)).toBe(total);
  // Every crash was one the run injected, of a kind it draws from.
  for (const kind of Object.keys(byKind)) expect(['throw', 'exit', 'terminate', 'oom', 'hang']).toContain(kind);
  const verified = Number(/MB verified \((\d+) bytes\)/.exec(out)?.[1] ?? 0);
  expect(verified).toBeGreaterThan(0);
  expect(out).toMatch(/, 0 bytes lost, 0 connections lost/);
  expect(out).toMatch(/ 0 client errors, 0 quarantined, 0 output gap bytes/);
  expect(code).toBe(0);
}, 240_000);

it('a soak stopped by SIGINT still ends with its summary', async () => {
  const { out, code } = await runDemo(['--crashes', '1000', '--clients', '2', '--crash-interval', '0.3-1', '--no-live'], 150_000, { interruptWhen: /crashes=[1-9]\d*\/1000/ });
  expect(out, out).toMatch(/summary: OK after [\d.]+ s, stopped early \(signal\) at \d+ of 1000 crashes/);
  expect(out).toMatch(/, 0 bytes lost, 0 connections lost/);
  expect(code).toBe(0);
}, 180_000);

describe('soak flags', () => {
  it('--crash-interval takes seconds or a range, in milliseconds', () => {
    expect(parseCrashInterval('0.3-1')).toEqual({ min: 300, max: 1000 });
    expect(parseCrashInterval('2')).toEqual({ min: 2000, max: 2000 });
    for (const bad of ['1-0.3', 'x', '0', '-1', '0.3-', '5000']) expect(() => parseCrashInterval(bad), bad).toThrow(CliError);
  });

  it('--crash-kinds takes all or a list of known kinds', () => {
    expect(parseCrashKinds('all')).toEqual(['throw', 'exit', 'terminate', 'oom', 'hang']);
    expect(parseCrashKinds('exit, hang,exit')).toEqual(['exit', 'hang']);
    expect(() => parseCrashKinds('exit,segfault')).toThrow(/segfault/);
  });
});
