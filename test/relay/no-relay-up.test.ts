/**
 * While every relay is down (all crashed, none restarted yet) the wait is Baton's, not
 * the client's, so it never ends a connection: a client that connects then waits,
 * unread, for the first relay back instead of being reset at accept; a handshake in
 * progress is not timed out by the handshake deadline (its clock stops while no relay
 * holds the connection, and starts again at each takeover). The chaos storm
 * (bench/chaos-storm.ts) saw both: `openssl s_client` failing with `write:errno=104`
 * (`baton_connections_refused_total` 1), and, on a busy machine with relays down for
 * seconds, 10 clients reset mid-handshake (`baton_deadline_closes_total{deadline="handshake"}` 10).
 */
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import type { SupervisorEvent } from '../../src/actors/index.js';
import { caPem } from '../helpers/interop.js';
import { startTestCluster, until, type TestCluster } from '../helpers/cluster.js';

describe('while no relay is up', () => {
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

  it('a handshake is not timed out while no relay holds its connection', async () => {
    // The gateway's deadlines read this clock; the crash moves it 10 s on, past the 2 s
    // handshake deadline, and sweeps, while the connection has no owner.
    let now = 1_000_000;
    const clock = { now: () => now };
    let swept = false;
    const onEvent = (e: SupervisorEvent): void => {
      if (e.type !== 'Crashed' || swept) return;
      swept = true;
      now += 10_000;
      t!.cluster.gateway.sweep();
    };
    t = await startTestCluster({ relays: 1, clock, deadlines: { handshakeTimeoutMs: 2000 }, onEvent });
    const cluster = t.cluster;
    // Hung before it reads the ClientHello (the hang is first in its mailbox).
    cluster.inject(cluster.relayNames[0]!, 'hang');
    let error: Error | null = null;
    let secure = false;
    let got = '';
    const c = tls.connect({ host: '127.0.0.1', port: cluster.address.port, ca: caPem, servername: 'localhost' });
    sockets.push(c);
    c.on('error', (err) => (error = err));
    c.once('secureConnect', () => (secure = true));
    c.on('data', (d: Buffer) => (got += d.toString('utf8')));
    await until('the hang to be caught and swept', () => swept, 30_000);
    await until(() => `the handshake after the restart (error: ${String(error)})`, () => secure || error !== null, 30_000);
    expect(error).toBeNull();
    c.write('still here');
    await until('the echo', () => got.length >= 'still here'.length || error !== null, 20_000);
    expect(got).toBe('still here');
    expect(cluster.gateway.stats.handshakeTimeouts).toBe(0);
    expect(cluster.gateway.stats.takeovers).toBe(1);
  }, 90_000);
});
