/**
 * Handshake-message reassembly stays linear through the relay, not only in the engine
 * (test/tls/linear-cost.test.ts): while a message too large for a state slot is still
 * arriving, a relay does not encode the whole engine state (everything pending) after
 * each fragment only to find it does not fit. Counted, not timed: the relay's commit
 * path passes the `relay.duringReplication` fault point once per attempt, and that point
 * is armed to crash the relay past a small number of passes.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ExtensionType } from '../../src/tls/wire/constants.js';
import { startTestCluster, until, type TestCluster } from '../helpers/cluster.js';
import { helloMessage, parseHelloRecord, plainRecord, withExtensions } from '../helpers/hello-editor.js';
import { deterministicServer, recordSession, toRecordSteps } from '../helpers/recorded-session.js';

const recorded = toRecordSteps((await recordSession(deterministicServer())).steps);
const nodeHello = parseHelloRecord((recorded.find((s) => s.kind === 'client') as { bytes: Uint8Array }).bytes);

let running: TestCluster | undefined;
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await running?.close();
  running = undefined;
});

describe('a large handshake message in many records, through a relay', () => {
  it('is reassembled without encoding the pending bytes once per fragment', async () => {
    running = await startTestCluster({ relays: 1, deadlines: { handshakeTimeoutMs: 120_000 } });
    const c = running.cluster;
    // A 12 KB ClientHello (padding): its first 4 KB in one record, larger than any
    // state slot; then 300 one-byte records, each its own input; then the rest.
    const message = helloMessage(withExtensions(nodeHello, [...nodeHello.extensions, { type: ExtensionType.padding, data: new Uint8Array(12_000) }]));
    const FRAGMENTS = 300;
    // More passes than this through the commit path crash the relay (a Crashed event).
    await c.arm('relay-0', 'relay.duringReplication', 'throw', { skip: 40 });
    const socket = net.connect(c.address.port, '127.0.0.1');
    sockets.push(socket);
    socket.on('error', () => {});
    let received = 0;
    socket.on('data', (d: Buffer) => (received += d.length));
    await new Promise((r, j) => socket.once('connect', r).once('error', j));
    const inputs = () => c.gateway.connections()[0]?.heldOutputs ?? 0;
    socket.write(plainRecord(22, message.subarray(0, 4096)));
    await until('the first piece answered', () => inputs() >= 1);
    for (let i = 0; i < FRAGMENTS; i++) {
      const before = inputs();
      socket.write(plainRecord(22, message.subarray(4096 + i, 4097 + i)));
      // Each fragment is answered before the next is sent: one input, one relay batch.
      await until(`fragment ${i} answered`, () => inputs() > before);
    }
    socket.write(plainRecord(22, message.subarray(4096 + FRAGMENTS)));
    await until('the server flight', () => received > 100);
    expect(running.events.filter((e) => e.type === 'Crashed')).toEqual([]);
    expect(c.gateway.stats.connectionsLost).toBe(0);
  }, 120_000);
});
