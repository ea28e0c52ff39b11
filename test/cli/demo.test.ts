/**
 * `baton demo` run as a user runs it (what `npm start` does), short: it reaches
 * its summary with relays crashed, takeovers done, and no byte lost.
 */
import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';

it('runs the demo to its summary with crashes and no byte lost', async () => {
  const child = spawn(process.execPath, [BIN, 'demo', '--duration', '7', '--crash-every', '2', '--clients', '4', '--no-live'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  clearTimeout(timer);
  expect(out).toMatch(/summary: OK/);
  expect(out).toMatch(/ 0 bytes lost, 0 connections lost/);
  const crashes = Number(/(\d+) relay crashes/.exec(out)?.[1] ?? 0);
  const takeovers = Number(/(\d+) connection takeovers/.exec(out)?.[1] ?? 0);
  expect(crashes).toBeGreaterThanOrEqual(1);
  expect(takeovers).toBeGreaterThanOrEqual(1);
  expect(code).toBe(0);
}, 120_000);
