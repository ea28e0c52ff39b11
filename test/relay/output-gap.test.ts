/**
 * The gateway never writes past a gap in a connection's output (DESIGN.md,
 * "Replication and takeover"): an output entry that starts past what was written is
 * not written, the connection is reset (a TCP RST toward the client, who sees
 * ECONNRESET, never a record out of sequence) and counted. No relay makes such an
 * entry on purpose, so the test hands one to the gateway's entry path as its owner's
 * data channel would.
 */
import tls from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Gateway } from '../../src/relay/gateway.js';
import { FromRelay, HEADER_BYTES, writeHeader } from '../../src/relay/wire.js';
import { startTestCluster, until, type TestCluster } from '../helpers/cluster.js';
import { caPem } from '../helpers/interop.js';

let test: TestCluster;
beforeAll(async () => {
  test = await startTestCluster({ relays: 2 });
}, 60_000);
afterAll(async () => test?.close(), 30_000);

/** The gateway's private view of one connection and its owner, as far as this test needs it. */
interface Inside {
  readonly conns: Map<number, { num: number; epoch: number; owner: { name: string }; clientWritten: number; backendWritten: number; answeredUpTo: number; id: string }>;
  onEntry(relay: unknown, view: DataView, bytes: Uint8Array, at: number, length: number): void;
}

it('output past a gap is not written: the client connection is reset and counted', { timeout: 60_000 }, async () => {
  const gateway: Gateway = test.cluster.gateway;
  const inside = gateway as unknown as Inside;
  const client = tls.connect({ host: '127.0.0.1', port: test.cluster.address.port, ca: caPem, servername: 'localhost' });
  const errors: (Error & { code?: string })[] = [];
  client.on('error', (e) => errors.push(e));
  const received: Buffer[] = [];
  client.on('data', (d: Buffer) => received.push(d));
  await new Promise<void>((resolve, reject) => {
    client.once('secureConnect', resolve);
    client.once('error', reject);
  });
  client.write('hello');
  await until('the echo', () => Buffer.concat(received).toString() === 'hello');
  const c = [...inside.conns.values()][0]!;
  expect(c.clientWritten).toBeGreaterThan(0);
  const lost: string[] = [];
  gateway.on('connectionLost', (e) => lost.push(e.reason));
  const before = { ...gateway.stats, takeoverSamples: [] };

  // A record toward the client that starts 100 bytes past what was written.
  const entry = new Uint8Array(HEADER_BYTES);
  const view = new DataView(entry.buffer);
  writeHeader(view, 0, FromRelay.ToClient, 0, 0, c.num, c.epoch, c.answeredUpTo + 1, c.clientWritten + 100, 0, 0, 30);
  const written = c.clientWritten;
  const owner = (gateway as unknown as { relays: Map<string, unknown> }).relays.get(c.owner.name);
  inside.onEntry(owner, view, entry, 0, HEADER_BYTES);

  expect(c.clientWritten).toBe(written);
  expect(gateway.stats.outputGaps - before.outputGaps).toBe(100);
  expect(gateway.stats.gapResets - before.gapResets).toBe(1);
  expect(gateway.stats.connectionsLost - before.connectionsLost).toBe(1);
  expect(lost).toHaveLength(1);
  expect(lost[0]).toMatch(/gap \(100 bytes toward the client\): reset/);
  // The client sees a reset, not a clean end nor a record it cannot decrypt.
  await until('the reset', () => client.destroyed);
  expect(errors.map((e) => e.code)).toEqual(['ECONNRESET']);
  expect(Buffer.concat(received).toString()).toBe('hello');
  // The other connections carry on: a new one works.
  const next = tls.connect({ host: '127.0.0.1', port: test.cluster.address.port, ca: caPem, servername: 'localhost' });
  const echoed: Buffer[] = [];
  next.on('data', (d: Buffer) => echoed.push(d));
  await new Promise<void>((resolve, reject) => {
    next.once('secureConnect', resolve);
    next.once('error', reject);
  });
  next.write('still here');
  await until('the second echo', () => Buffer.concat(echoed).toString() === 'still here');
  next.destroy();
});
