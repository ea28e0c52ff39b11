/**
 * Remote actors over NATS: the round trip of an `ask` from one node's system to a
 * main-thread actor on another (p50/p99, one at a time), asks per second with many
 * in flight, and tells per second. Two actor systems in this process, each with its own
 * NATS connection, as two nodes on one host; a local ask is timed beside them.
 *
 *   npx tsx bench/remote-ask.ts [--nats nats://127.0.0.1:4222] [--asks 5000] [--inflight 64] [--tells 50000]
 *
 * Without --nats it starts `nats-server -js` on a free loopback port with a temporary
 * store folder (the Debian package's binary) and stops it at the end.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ActorSystem, defineActor, type ActorRef } from '../src/actors/index.js';
import { RemoteTransport } from '../src/actors/remote.js';
import { connectNats, parseNatsUrl, type NatsUrl } from '../src/cluster/nats-connection.js';
import { silentLogger } from '../src/util/log.js';

const { values } = parseArgs({
  options: {
    nats: { type: 'string' },
    asks: { type: 'string', default: '5000' },
    inflight: { type: 'string', default: '64' },
    tells: { type: 'string', default: '50000' },
  },
});
const asks = Number(values.asks);
const inflight = Number(values.inflight);
const tells = Number(values.tells);

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Our own nats-server, ready once it says so (bounded), or the one --nats names. */
async function natsServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (values.nats) return { url: values.nats, stop: async () => undefined };
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-nats-'));
  const child = spawn(process.env.NATS_SERVER ?? '/usr/sbin/nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`nats-server not ready in 15 s: ${out}`)), 15_000);
    const on = (d: Buffer) => {
      out += d.toString();
      if (out.includes('Server is ready')) (clearTimeout(t), resolve());
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('error', (e) => (clearTimeout(t), reject(e)));
    child.once('exit', (c) => (clearTimeout(t), reject(new Error(`nats-server exited ${c}: ${out}`))));
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    stop: async () => {
      child.removeAllListeners('exit');
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

type Msg = { readonly type: 'echo'; readonly v: unknown } | { readonly type: 'count' } | { readonly type: 'tally' };
const counter = defineActor<Msg, { n: number }>({
  name: 'counter',
  init: () => ({ n: 0 }),
  receive(msg, state, ctx) {
    if (msg.type === 'echo') ctx.reply(msg.v);
    else if (msg.type === 'count') state.n++;
    else ctx.reply(state.n);
  },
});

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const us = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;

const server = await natsServer();
const url = parseNatsUrl(server.url) as NatsUrl;
const ncA = await connectNats({ url, name: 'bench-a', log: silentLogger });
const ncB = await connectNats({ url, name: 'bench-b', log: silentLogger });
const a = new ActorSystem();
const b = new ActorSystem();
const ta = await RemoteTransport.start(a, { nc: ncA, cluster: 'bench', node: 'a' });
const tb = await RemoteTransport.start(b, { nc: ncB, cluster: 'bench', node: 'b' });
const remote: ActorRef<Msg> = b.publicRef(await b.spawnLocal(counter, undefined, { capacity: 1 << 20 }));
const local: ActorRef<Msg> = await a.spawnLocal(counter, undefined);
const payload = { seq: 0, body: 'x'.repeat(64) };

async function roundTrips(sys: ActorSystem, to: ActorRef<Msg>, n: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await sys.ask(to, { type: 'echo', v: payload });
    samples.push(performance.now() - t0);
  }
  return samples.sort((x, y) => x - y);
}

// Warm up both paths (JIT, NATS subscriptions, msgpackr records).
await roundTrips(a, remote, 500);
await roundTrips(a, local, 500);
const rt = await roundTrips(a, remote, asks);
const lrt = await roundTrips(a, local, asks);

// Many asks in flight: `inflight` loops, each waiting for its answer before the next.
let done = 0;
const t0 = performance.now();
await Promise.all(
  Array.from({ length: inflight }, async () => {
    while (done < asks * 2) {
      done++;
      await a.ask(remote, { type: 'echo', v: payload });
    }
  }),
);
const askRate = (done / (performance.now() - t0)) * 1000;

// Tells: fire them all, then wait (bounded) until the counter on b has them.
const t1 = performance.now();
for (let i = 0; i < tells; i++) a.tell(remote, { type: 'count' });
const deadline = Date.now() + 60_000;
let seen = 0;
while ((seen = await a.ask<number>(remote, { type: 'tally' })) < tells && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
const tellRate = (seen / (performance.now() - t1)) * 1000;

console.log(`remote actors over NATS (nats-server on loopback, two systems in one process, ${asks} asks, 64-byte payload)`);
console.log(`  remote ask round trip   p50 ${us(quantile(rt, 0.5))}   p99 ${us(quantile(rt, 0.99))}   (one at a time)`);
console.log(`  local ask round trip    p50 ${us(quantile(lrt, 0.5))}   p99 ${us(quantile(lrt, 0.99))}   (main-thread actor, same system)`);
console.log(`  remote asks per second  ${askRate.toFixed(0)}   (${inflight} in flight)`);
console.log(`  remote tells per second ${tellRate.toFixed(0)}   (${seen}/${tells} delivered)`);

await ta.close();
await tb.close();
await a.close();
await b.close();
await ncA.close();
await ncB.close();
await server.stop();
