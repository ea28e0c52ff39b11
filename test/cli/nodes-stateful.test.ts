/**
 * Single-use sessions across `baton cluster --join` processes on one real nats-server
 * (`tickets: { mode: stateful }` in each node's configuration file): a ticket issued by
 * node a is an opaque id; it resumes once on node b (the session taken from the shared
 * bucket), and replayed on either node gets a full handshake.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { baton, killAll, waitForMatch } from '../helpers/cli.js';
import { caPem, certDir } from '../helpers/interop.js';
import { startNatsServer, type NatsServer } from '../helpers/nats-server.js';

const START_LINE = /^baton: \d+ relays? on 127\.0\.0\.1:(\d+) -> .*; node (\S+) of cluster \S+ on nats:\/\/[^;]+;/m;
const FAST = { BATON_TEST_HEARTBEAT_MS: '200', BATON_TEST_MEMBER_TTL_MS: '1500' };

let nats: NatsServer;
let backend: EchoBackend;
let dir: string;

beforeAll(async () => {
  nats = await startNatsServer();
  backend = await startEchoBackend('127.0.0.1', 0);
  dir = await mkdtemp(path.join(os.tmpdir(), 'baton-nodes-stateful-'));
}, 30_000);

afterEach(() => killAll());

afterAll(async () => {
  await backend?.close();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Starts node `name` from a configuration file with stateful tickets; its TLS port. */
async function node(name: string): Promise<number> {
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(
    file,
    [
      'listeners:',
      '  - address: 127.0.0.1:0',
      `    certificates: [{ cert: ${path.join(certDir, 'ecdsa-p256.pem')}, key: ${path.join(certDir, 'ecdsa-p256-key.pem')} }]`,
      `backend: 127.0.0.1:${backend.port}`,
      'relays: 2',
      'tickets: { mode: stateful }',
      `admin: { address: 127.0.0.1:0, tokenFile: ${path.join(dir, `${name}.token`)} }`,
      `nats: { join: ${nats.url}, node: ${name}, cluster: st }`,
      '',
    ].join('\n'),
  );
  const run = baton(['cluster', '--config', file, '--drain-timeout', '0'], FAST);
  const m = await waitForMatch(run, START_LINE, 60_000, `the start line of node ${name}`);
  expect(m[2]).toBe(name);
  return Number(m[1]);
}

/** One short connection: whether `session` resumed, and the first ticket it got. */
async function visit(port: number, session?: Buffer): Promise<{ reused: boolean; session: Buffer | undefined }> {
  const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost', ...(session ? { session } : {}) });
  try {
    let ticket: Buffer | undefined;
    const gotTicket = new Promise<void>((resolve) => s.on('session', (t: Buffer) => ((ticket ??= t), resolve())));
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    s.write('x');
    await new Promise((r) => s.once('data', r));
    await Promise.race([gotTicket, new Promise((r) => setTimeout(r, 5_000))]);
    return { reused: s.isSessionReused(), session: ticket };
  } finally {
    s.end();
    s.destroy();
  }
}

it('a stateful ticket from node a resumes once on node b, then gets a full handshake on either', async () => {
  const [a, b] = await Promise.all([node('a'), node('b')]);
  const first = await visit(a);
  expect(first.reused).toBe(false);
  expect(first.session).toBeDefined();
  const onB = await visit(b, first.session);
  expect(onB.reused).toBe(true);
  expect((await visit(a, first.session)).reused).toBe(false);
  expect((await visit(b, first.session)).reused).toBe(false);
  // b's ticket from the resumed connection resumes once on a.
  expect((await visit(a, onB.session)).reused).toBe(true);
}, 120_000);
