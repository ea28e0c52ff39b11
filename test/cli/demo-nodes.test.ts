/**
 * `baton demo --nodes 3` run as a user runs it, short, on a real nats-server on
 * loopback: one whole node is killed half way, its clients come back on the other
 * nodes with their sessions resumed, the bytes in flight on the killed node are
 * reported lost and nothing else is, and afterwards none of the demo's processes (the
 * nodes, the nats-server) nor its folder is left; also when the run is stopped by
 * SIGINT. Out-of-range --nodes, relay-crash flags with --nodes and a missing
 * nats-server are refused with a clear error.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BIN, runDemo, SOURCE_ENV } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

/** The processes and the folder the demo announced: the nats-server, then each node. */
function announced(out: string): { pids: number[]; folder: string } {
  const head = /nats-server pid (\d+), folder (\S+)\)/.exec(out);
  expect(head, out).not.toBeNull();
  const nodes = [...out.matchAll(/^ {2}node-\d pid (\d+) on 127\.0\.0\.1:\d+$/gm)].map((m) => Number(m[1]));
  return { pids: [Number(head![1]), ...nodes], folder: head![2]! };
}

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Everything the demo started is gone (its children are reaped before it exits; the bound is for a slow machine). */
async function expectCleanedUp(out: string, nodes: number): Promise<void> {
  const { pids, folder } = announced(out);
  expect(pids).toHaveLength(1 + nodes);
  await until(() => `processes ${pids.filter(isRunning).join(', ')} to be gone`, () => !pids.some(isRunning), 5_000, 50);
  expect(existsSync(folder), folder).toBe(false);
}

describe('baton demo --nodes', () => {
  it('kills one of three nodes; its clients resume on the others, and only its in-flight bytes are lost', async () => {
    const { out, code } = await runDemo(['--nodes', '3', '--duration', '8', '--clients', '6'], 200_000);
    expect(out, out).toMatch(/^summary: OK after [\d.]+ s, 3 nodes$/m);
    const killed = /killed (node-\d) at [\d.]+ s: its (\d+) live TCP connections died with it; (\d+) reconnects to the surviving nodes, (\d+) resumed their session, (\d+) full handshakes/.exec(out);
    expect(killed, out).not.toBeNull();
    const [, , lostConnections, reconnects, resumed, full] = killed!.map(Number);
    // Six clients over three nodes: the killed node held two, and both came back resumed.
    expect(lostConnections).toBe(2);
    expect(reconnects).toBe(lostConnections);
    expect(resumed).toBeGreaterThan(0);
    expect(resumed).toBe(reconnects);
    expect(full).toBe(0);
    expect(out).toMatch(/; the last back \d+ ms after the kill$/m);
    const connections = /(\d+) connections from 6 clients: (\d+) full handshakes, (\d+) resumptions/.exec(out);
    expect(connections, out).not.toBeNull();
    expect(connections!.slice(1).map(Number)).toEqual([6 + reconnects!, 6, resumed]);
    const bytes = /MB verified \((\d+) bytes\), (\d+) bytes lost \((\d+) in flight on the killed node's connections, (\d+) elsewhere\)/.exec(out);
    expect(bytes, out).not.toBeNull();
    const [, verified, lost, withNode, elsewhere] = bytes!.map(Number);
    expect(verified).toBeGreaterThan(0);
    expect(lost).toBe(withNode);
    expect(elsewhere).toBe(0);
    expect(out).toMatch(new RegExp(`^ {2}0 errors \\(besides the 2 connections lost with ${killed![1]}\\)$`, 'm'));
    expect(code).toBe(0);
    await expectCleanedUp(out, 3);
  }, 240_000);

  it('stopped by SIGINT, it still prints its summary and leaves nothing behind', async () => {
    const { out, code } = await runDemo(['--nodes', '2', '--duration', '60', '--clients', '2'], 200_000, { interruptWhen: /^ {2}t=[\d.]+s nodes up/m });
    expect(out, out).toMatch(/^summary: OK after [\d.]+ s, 2 nodes, stopped early \(signal\)$/m);
    expect(out).toMatch(/no node killed \(the run ended first\)/);
    expect(code).toBe(0);
    await expectCleanedUp(out, 2);
  }, 240_000);

  it('a second SIGINT exits at once, and still leaves nothing behind', async () => {
    const child = spawn(process.execPath, [BIN, 'demo', '--nodes', '2', '--duration', '60', '--clients', '2'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...SOURCE_ENV } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    const timer = setTimeout(() => child.kill('SIGKILL'), 200_000);
    try {
      await until(() => `the demo to stream (output: ${out})`, () => /^ {2}t=[\d.]+s nodes up/m.test(out), 180_000, 50);
      child.kill('SIGINT');
      // The second once the first was seen (two signals sent at once may arrive as one).
      await until(() => `the demo to see the first SIGINT (output: ${out})`, () => /stopping \(signal\)/.test(out), 30_000, 20);
      child.kill('SIGINT');
      expect(await exited).toBe(130);
    } finally {
      clearTimeout(timer);
    }
    expect(out).toMatch(/stopped at once \(second signal\)/);
    await expectCleanedUp(out, 2);
  }, 240_000);

  it('refuses --nodes out of range, relay-crash flags with --nodes, and a missing nats-server', async () => {
    for (const n of ['1', '6', 'x']) {
      const r = await runDemo(['--nodes', n], 30_000);
      expect(r.code).toBe(2);
      expect(r.out).toMatch(new RegExp(`--nodes must be a whole number from 2 to 5, got "${n}"`));
    }
    const crashes = await runDemo(['--nodes', '3', '--crashes', '5'], 30_000);
    expect(crashes.code).toBe(2);
    expect(crashes.out).toMatch(/--crashes injects relay crashes in the single-node demo; with --nodes the demo kills a whole node instead/);
    const missing = await runDemo(['--nodes', '3'], 30_000, { env: { NATS_SERVER: '/nonexistent/nats-server' } });
    expect(missing.code).toBe(2);
    expect(missing.out).toMatch(/--nodes needs nats-server \(NATS with JetStream\) and NATS_SERVER names \/nonexistent\/nats-server, which does not exist: install it \(e\.g\. apt-get install nats-server\)/);
  }, 120_000);
});
