/**
 * Stateful session tickets (`ticketMode: 'stateful'`) through a real cluster and
 * Node's tls client: a ticket is an opaque id whose sealed state waits in the store;
 * it resumes once, a replay of it gets a full handshake, and so does a ticket whose
 * stored entry was tampered with or is gone.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MemoryKvStore } from '../../src/cluster/memory-kv.js';
import { ClusterMetrics } from '../../src/cluster/metrics.js';
import { SESSION_ID_LEN } from '../../src/tls/index.js';
import { startTestCluster, until, visit, type TestCluster } from '../helpers/cluster.js';
import { certDir } from '../helpers/interop.js';

let test: TestCluster;
const kv = new MemoryKvStore();

beforeAll(async () => {
  test = await startTestCluster({ relays: 2, ticketMode: 'stateful', sessionKv: kv });
}, 60_000);

afterAll(async () => {
  await test?.close();
});

/** The stateful ticket id inside a Node TLS session blob: the stored key it names. */
async function storedKeys(): Promise<string[]> {
  return kv.keys('session.');
}

it('a stateful ticket is an id whose sealed state is in the store, and resumes once', async () => {
  const before = new Set(await storedKeys());
  const first = await visit(test.cluster);
  expect(first.reused).toBe(false);
  expect(first.session).toBeDefined();
  const issued = (await storedKeys()).filter((k) => !before.has(k));
  // Two tickets per connection, each stored under its id (hex), sealed: no id in clear inside.
  expect(issued).toHaveLength(2);
  for (const key of issued) {
    const id = Buffer.from(key.slice('session.'.length), 'hex');
    expect(id.length).toBe(SESSION_ID_LEN);
    const entry = (await kv.get(key))!.value;
    expect(Buffer.from(entry).includes(id)).toBe(false);
  }
  const again = await visit(test.cluster, first.session);
  expect(again.reused).toBe(true);
  // The resumption took its entry: one of the two is gone.
  expect((await storedKeys()).filter((k) => issued.includes(k))).toHaveLength(1);
  const replay = await visit(test.cluster, first.session);
  expect(replay.reused).toBe(false);
  // Both offered the ticket; only the first found its session.
  const metrics = new ClusterMetrics();
  metrics.attach(test.cluster);
  try {
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^baton_session_lookups_total 2$/m);
    expect(text).toMatch(/^baton_sessions_found_total 1$/m);
  } finally {
    metrics.detach();
  }
});

it('a ticket from the resumed connection resumes once in turn', async () => {
  const first = await visit(test.cluster);
  const second = await visit(test.cluster, first.session);
  expect(second.reused).toBe(true);
  expect(second.session).toBeDefined();
  expect((await visit(test.cluster, second.session)).reused).toBe(true);
  expect((await visit(test.cluster, second.session)).reused).toBe(false);
});

it('a tampered stored entry gives a full handshake, not an error', async () => {
  const before = new Set(await storedKeys());
  const first = await visit(test.cluster);
  const issued = (await storedKeys()).filter((k) => !before.has(k));
  expect(issued).toHaveLength(2);
  for (const key of issued) {
    const value = new Uint8Array((await kv.get(key))!.value);
    value[value.length - 20]! ^= 1;
    await kv.put(key, value);
  }
  const again = await visit(test.cluster, first.session);
  expect(again.reused).toBe(false);
});

it('an entry moved to another id does not open (the id is bound to it)', async () => {
  const before = new Set(await storedKeys());
  const first = await visit(test.cluster);
  const issued = (await storedKeys()).filter((k) => !before.has(k));
  const other = await visit(test.cluster);
  const otherIssued = (await storedKeys()).filter((k) => !before.has(k) && !issued.includes(k));
  expect(otherIssued).toHaveLength(2);
  // The first connection's ids now hold the other connection's entries.
  for (let i = 0; i < 2; i++) await kv.put(issued[i]!, (await kv.get(otherIssued[i]!))!.value);
  expect((await visit(test.cluster, first.session)).reused).toBe(false);
  expect((await visit(test.cluster, other.session)).reused).toBe(true);
});

it('an unreachable store means full handshakes, and resumption comes back with it', async () => {
  const first = await visit(test.cluster);
  kv.setReachable(false);
  try {
    expect((await visit(test.cluster, first.session)).reused).toBe(false);
  } finally {
    kv.setReachable(true);
  }
  // The lookup failed without taking the entry: the ticket still resumes, once.
  expect((await visit(test.cluster, first.session)).reused).toBe(true);
});

const noOpenssl = spawnSync('openssl', ['version'], { timeout: 5_000 }).status !== 0;

/** `openssl s_client` against the cluster until its session line shows (and, with -sess_out, the ticket is saved); that line. */
async function sClient(args: string[], sessOut?: string): Promise<string> {
  const proc = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${test.cluster.address.port}`, '-tls1_3', '-CAfile', join(certDir, 'ca.pem'), '-servername', 'localhost', ...args], { stdio: 'pipe' });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
  proc.stdin.on('error', () => {});
  try {
    await until('the session line of s_client', () => /(New|Reused), TLSv1\.3/.test(out) && (!sessOut || (existsSync(sessOut) && statSync(sessOut).size > 0)), 10_000);
    return /(New|Reused), TLSv1\.3/.exec(out)![0];
  } finally {
    proc.kill('SIGKILL');
  }
}

it.skipIf(noOpenssl)('openssl s_client: -sess_out, then -sess_in resumes once, then gets a full handshake', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-stateful-'));
  try {
    const sess = join(dir, 'session.pem');
    expect(await sClient(['-sess_out', sess], sess)).toBe('New, TLSv1.3');
    expect(await sClient(['-sess_in', sess])).toBe('Reused, TLSv1.3');
    expect(await sClient(['-sess_in', sess])).toBe('New, TLSv1.3');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 40_000);
