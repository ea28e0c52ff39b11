/**
 * A client that connects while every relay is down (all crashed, none restarted yet)
 * waits, unread, for the first relay back instead of being reset at accept: the chaos
 * storm (bench/chaos-storm.ts) saw `openssl s_client` fail with `write:errno=104` and
 * `baton_connections_refused_total` 1 when its connect fell in such a window.
 */
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import type { SupervisorEvent } from '../../src/actors/index.js';
import { caPem } from '../helpers/interop.js';
import { startTestCluster, until, type TestCluster } from '../helpers/cluster.js';

describe('accepting while no relay is up', () => {
  let t: TestCluster | undefined;
  const sockets: tls.TLSSocket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await t?.close();
    t = undefined;
  });

  it('a client connecting while the only relay restarts is served once it is back', async () => {
    let client: tls.TLSSocket | null = null;
    let port = 0;
    let relayUpAtConnect: boolean | null = null;
    let error: Error | null = null;
    let secure = false;
    let got = '';
    const onEvent = (e: SupervisorEvent): void => {
      // The gateway has just marked the relay down (Crashed is handled before onEvent);
      // its next incarnation needs a new worker thread, far longer than this accept.
      if (e.type !== 'Crashed' || client !== null) return;
      relayUpAtConnect = [...t!.cluster.gateway.placement().values()].some((p) => p.up);
      client = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' });
      client.on('error', (err) => (error = err));
      client.once('secureConnect', () => (secure = true));
      client.on('data', (d: Buffer) => (got += d.toString('utf8')));
      sockets.push(client);
    };
    t = await startTestCluster({ relays: 1, onEvent });
    port = t.cluster.address.port;
    const cluster = t.cluster;
    cluster.inject(cluster.relayNames[0]!, 'exit');
    await until('the crash and the connect', () => client !== null, 20_000);
    expect(relayUpAtConnect).toBe(false);
    const c = client!;
    await until(() => `the handshake (error: ${String(error)})`, () => secure || error !== null, 30_000);
    expect(error).toBeNull();
    c.write('after the restart');
    await until('the echo', () => got.length >= 'after the restart'.length || error !== null, 20_000);
    expect(got).toBe('after the restart');
    expect(cluster.gateway.stats.connectionsRefused).toBe(0);
    expect(cluster.gateway.stats.connectionsQueued).toBe(1);
    expect(cluster.gateway.stats.connectionsWaiting).toBe(0);
  }, 90_000);
});
