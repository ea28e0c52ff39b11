/**
 * A crashed relay starts again only once its siblings have restored its connections (a
 * starting relay thread takes a core for about a second, which the takeover needs first):
 * the cluster holds the restart on `gateway.restored()` (the supervisor's side of the
 * hold is in test/actors/supervisor.test.ts). Here: it resolves once every connection of
 * the dead relay is restored, not before, and the connections carry on.
 */
import tls from 'node:tls';
import { afterEach, expect, it } from 'vitest';
import { caPem } from '../helpers/interop.js';
import { startTestCluster, until, type TestCluster } from '../helpers/cluster.js';

let t: TestCluster | undefined;
const sockets: tls.TLSSocket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await t?.close();
  t = undefined;
});

async function connect(port: number): Promise<tls.TLSSocket> {
  const s = tls.connect({ host: '127.0.0.1', port, ca: caPem, servername: 'localhost' });
  sockets.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', () => resolve());
    s.once('error', reject);
  });
  s.write('x');
  await new Promise((r) => s.once('data', r));
  return s;
}

it('gateway.restored() resolves once the dead relay\'s connections are restored on its siblings', async () => {
  const order: string[] = [];
  // A hold far longer than any restore here: what resolves it is the restores.
  t = await startTestCluster({
    relays: 2,
    restartHoldMs: 60_000,
    onEvent: (e) => {
      // Crashed comes once the gateway has handed the connections on.
      if (e.type === 'Crashed') void t!.cluster.gateway.restored(60_000).then(() => order.push('restored'));
      if (e.type === 'Restarted') order.push(`restarted ${e.child}`);
    },
  });
  const cluster = t.cluster;
  cluster.gateway.on('takeover', (s) => order.push(`takeover ${s.conn}`));
  const clients = [];
  for (let i = 0; i < 4; i++) clients.push(await connect(cluster.address.port));
  const victim = 'relay-0';
  const moved = cluster.gateway
    .connections()
    .filter((c) => c.owner === victim)
    .map((c) => c.id);
  expect(moved.length).toBeGreaterThan(0);
  cluster.inject(victim, 'throw');
  await until('the restart of the victim', () => order.includes(`restarted ${victim}`), 30_000);
  const restoredAt = order.indexOf('restored');
  expect(restoredAt, order.join(', ')).toBeGreaterThanOrEqual(0);
  expect(restoredAt).toBeLessThan(order.indexOf(`restarted ${victim}`));
  for (const id of moved) {
    const at = order.indexOf(`takeover ${id}`);
    expect(at, `takeover of ${id} in ${order.join(', ')}`).toBeGreaterThanOrEqual(0);
    expect(at).toBeLessThan(restoredAt);
  }
  // The connections carry on.
  for (const s of clients) {
    s.write('y');
    await new Promise((r) => s.once('data', r));
  }
}, 60_000);
