/**
 * The gateway's drain steps on a real cluster (loopback): stopAccepting() closes the
 * listener and turns away connections waiting for room, while live ones carry on;
 * closeAllWithNotify() closes a connection still in its handshake (it has nothing to
 * notify), ends an established one with close_notify and FIN, and resolves once they
 * are written. Waits are on events, bounded.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { caPem } from '../helpers/interop.js';
import { startTestCluster, until, type TestCluster } from '../helpers/cluster.js';
import { withTimeout } from '../helpers/cli.js';

describe('Gateway drain steps', () => {
  let t: TestCluster | null = null;
  const sockets: net.Socket[] = [];

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await t?.close();
    t = null;
  });

  it('stopAccepting refuses new and waiting connections; closeAllWithNotify ends the live ones', async () => {
    t = await startTestCluster({ relays: 2, maxConnections: 1 });
    const { gateway, address } = t.cluster;
    const live = tls.connect({ host: '127.0.0.1', port: address.port, ca: caPem, servername: 'localhost' });
    sockets.push(live);
    await withTimeout(new Promise((r) => live.once('secureConnect', r)), 20_000, 'the handshake');
    // Past maxConnections, a second connection waits for room, unread.
    const waiting = net.connect(address.port, '127.0.0.1');
    sockets.push(waiting);
    waiting.on('error', () => {});
    await until('a connection waiting for room', () => gateway.stats.connectionsWaiting === 1);
    expect(gateway.openConnections).toBe(2);

    gateway.stopAccepting();
    await withTimeout(new Promise((r) => waiting.once('close', r)), 10_000, 'the waiting connection to be closed');
    expect(gateway.openConnections).toBe(1);
    const refused = await withTimeout(
      new Promise<string | undefined>((resolve) => {
        const s = net.connect(address.port, '127.0.0.1');
        s.once('connect', () => (s.destroy(), resolve(undefined)));
        s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
      }),
      10_000,
      'a connect after stopAccepting',
    );
    expect(refused).toBe('ECONNREFUSED');

    // The live one still echoes.
    live.write('still here');
    await withTimeout(new Promise((r) => live.once('data', r)), 10_000, 'the echo');

    const ended = new Promise<void>((r) => live.once('end', () => r()));
    await withTimeout(gateway.closeAllWithNotify(), 10_000, 'closeAllWithNotify');
    await withTimeout(ended, 10_000, 'the client to see the end');
    expect(gateway.openConnections).toBe(0);
  });

  it('closeAllWithNotify closes a connection still in its handshake', async () => {
    t = await startTestCluster({ relays: 2 });
    const { gateway, address } = t.cluster;
    const half = net.connect(address.port, '127.0.0.1');
    sockets.push(half);
    half.on('error', () => {});
    await withTimeout(new Promise((r) => half.once('connect', r)), 10_000, 'the connect');
    await until('the gateway to serve it', () => gateway.openConnections === 1);
    const closed = new Promise((r) => half.once('close', r));
    await withTimeout(gateway.closeAllWithNotify(), 10_000, 'closeAllWithNotify');
    await withTimeout(closed, 10_000, 'the half-open handshake to be closed');
    expect(gateway.openConnections).toBe(0);
  });
});
