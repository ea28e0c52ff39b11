/**
 * Actor runtime micro-benchmarks (tinybench): tell and ask round trips main <-> worker
 * and worker <-> worker, messages per second, a 64 KiB record batch (transferred), and
 * msgpackr versus structured clone for a relay-state-sized message. Then the detection
 * latency of each crash kind (inject -> Crashed event), median over a few runs.
 *
 *   npx tsx bench/actors.bench.ts
 *
 * Environment: BENCH_TIME_MS (per task, default 500), CRASH_RUNS (default 5).
 */
import { MessageChannel } from 'node:worker_threads';
import { Bench, type Task } from 'tinybench';
import { ActorSystem, decodeValue, defineActor, encodeValue, FAULT_KINDS, type FaultKind, type SupervisorEvent } from '../src/actors/index.js';
import { fmt } from './micro-common.js';

const PROBE = new URL('../test/fixtures/actors/probe.ts', import.meta.url);
const TIME = Number(process.env.BENCH_TIME_MS ?? 500);
const CRASH_RUNS = Number(process.env.CRASH_RUNS ?? 5);
const BATCH = 1_000;

function row(t: Task, msgsPerOp = 1, bytes?: number): Record<string, string> {
  const r = t.result;
  if (r.state !== 'completed') throw new Error(`task ${t.name} did not complete (${r.state})`, { cause: (r as { error?: unknown }).error });
  const ops = 1000 / r.latency.mean;
  return {
    'ops/s': fmt(ops),
    'msgs/s': fmt(ops * msgsPerOp),
    ...(bytes !== undefined ? { 'MB/s': fmt((ops * bytes) / 1e6) } : {}),
    'mean µs': fmt(r.latency.mean * 1000),
    'p50 µs': fmt(r.latency.p50 * 1000),
    'p99 µs': fmt(r.latency.p99 * 1000),
    samples: String(r.latency.samplesCount),
  };
}

/** A message shaped like a relay's replicated connection state (a TLS engine snapshot). */
function relayState(): unknown {
  const b = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
  return {
    conn: 'V1StGXR8_Z5jdHi6B-myT',
    epoch: 3,
    kind: 'established',
    suite: 'TLS_AES_128_GCM_SHA256',
    read: { key: b(16, 1), iv: b(12, 2), seq: 123_456n, generation: 0 },
    write: { key: b(16, 3), iv: b(12, 4), seq: 654_321n, generation: 1 },
    secrets: { clientAppTraffic: b(32, 5), serverAppTraffic: b(32, 6), resumption: b(32, 7), exporter: b(32, 8) },
    transcriptHash: b(32, 9),
    offsets: { clientIn: 1_048_576, backendIn: 2_097_152, clientOut: 2_100_000, backendOut: 1_050_000 },
    alpn: 'http/1.1',
    sni: 'relay.example.test',
    tickets: Array.from({ length: 2 }, (_, i) => ({ id: b(16, 10 + i), ageAdd: 12345 + i, lifetime: 7200 })),
    pendingOut: b(2_048, 11),
    flags: { keyUpdatePending: false, closeNotifySent: false, earlyDataRejected: true },
  };
}

async function messaging(): Promise<void> {
  const sys = new ActorSystem();
  try {
    sys.on((e) => console.log('unexpected event', e));
    const a = await sys.spawnWorker({ module: PROBE, capacity: 100_000 });
    const b = await sys.spawnWorker({ module: PROBE, capacity: 100_000 });
    const local = await sys.spawnLocal(
      defineActor<{ v: unknown }, null, null>({ init: () => null, receive: (m, _s, ctx) => ctx.reply(m.v) }),
      null,
    );
    const batch = new Uint8Array(64 * 1024).fill(7);
    const state = relayState();
    const bench = new Bench({ time: TIME, warmupTime: 100 });
    bench
      .add('ask main→worker (echo)', async () => {
        await sys.ask(a, { type: 'echo', v: 1 });
      })
      .add('ask main→worker→worker (askOther)', async () => {
        await sys.ask(a, { type: 'askOther', to: b, msg: { type: 'echo', v: 1 } });
      })
      .add('ask main→main-thread actor', async () => {
        await sys.ask(local, { v: 1 });
      })
      .add(`tell main→worker ×${BATCH} + ask barrier`, async () => {
        for (let i = 0; i < BATCH; i++) sys.tell(a, { type: 'noop' });
        await sys.ask(a, { type: 'echo', v: 0 });
      })
      .add(`tell worker→worker ×${BATCH} (forward) + barrier`, async () => {
        for (let i = 0; i < BATCH; i++) sys.tell(a, { type: 'forward', to: b, msg: { type: 'noop' } });
        await sys.ask(a, { type: 'askOther', to: b, msg: { type: 'echo', v: 0 } });
      })
      .add('ask main→worker, relay-state payload', async () => {
        await sys.ask(a, { type: 'echo', v: state });
      })
      .add('ask main→worker, 64 KiB batch (transferred)', async () => {
        await sys.ask(a, { type: 'echo', v: batch });
      });
    await bench.run();
    const out: Record<string, Record<string, string>> = {};
    for (const t of bench.tasks) {
      const perOp = t.name.includes(`×${BATCH}`) ? BATCH + 1 : 1;
      out[t.name] = row(t, perOp, t.name.includes('64 KiB') ? 2 * 64 * 1024 : undefined);
    }
    console.log('\n## actors: messaging (main thread <-> workers; ask = round trip)');
    console.table(out);
  } finally {
    await sys.close();
  }
}

async function codecs(): Promise<void> {
  const state = relayState();
  const encoded = encodeValue(state);
  const { port1, port2 } = new MessageChannel();
  let resolveNext: ((v: unknown) => void) | undefined;
  port2.on('message', (m) => resolveNext?.(m));
  const roundTrip = (v: unknown, transfer?: ArrayBuffer[]) =>
    new Promise((resolve) => {
      resolveNext = resolve;
      port1.postMessage(v, transfer ?? []);
    });
  const bench = new Bench({ time: TIME, warmupTime: 100 });
  bench
    .add('msgpackr encode+decode', () => {
      decodeValue(encodeValue(state));
    })
    .add('structuredClone', () => {
      structuredClone(state);
    })
    .add('port: msgpackr bytes (transferred)', async () => {
      const bytes = encodeValue(state);
      decodeValue((await roundTrip(bytes, [bytes.buffer as ArrayBuffer])) as Uint8Array);
    })
    .add('port: msgpackr bytes (cloned)', async () => {
      decodeValue((await roundTrip(encodeValue(state))) as Uint8Array);
    })
    .add('port: object (structured clone)', async () => {
      await roundTrip(state);
    });
  await bench.run();
  port1.close();
  const out: Record<string, Record<string, string>> = {};
  for (const t of bench.tasks) out[t.name] = row(t);
  console.log(`\n## actors: relay-state message (${encoded.length} bytes as msgpackr) — msgpackr vs structured clone`);
  console.table(out);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function detection(): Promise<void> {
  const sys = new ActorSystem();
  const rows: Record<string, Record<string, string>> = {};
  try {
    const spawnTimes: number[] = [];
    for (const kind of FAULT_KINDS) {
      const latencies: number[] = [];
      const restarts: number[] = [];
      for (let run = 0; run < CRASH_RUNS; run++) {
        let crashedAt = 0;
        let restartedAt = 0;
        const sup = await sys.supervise({
          strategy: 'one_for_one',
          intensity: 100,
          children: [
            {
              id: 'victim',
              start: {
                kind: 'worker',
                options: {
                  module: PROBE,
                  resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 8 },
                  watchdog: { deadlineMs: 300 },
                },
              },
            },
          ],
          listener: (e: SupervisorEvent) => {
            if (e.type === 'Crashed' && crashedAt === 0) crashedAt = performance.now();
            if (e.type === 'Restarted' && restartedAt === 0) restartedAt = performance.now();
          },
        });
        const ref = sup.childRef('victim');
        await sys.ask(ref, { type: 'echo', v: 0 });
        const t0 = performance.now();
        sys.inject(ref, kind as FaultKind);
        for (let i = 0; i < 3_000 && restartedAt === 0; i++) await new Promise((r) => setTimeout(r, 2));
        if (crashedAt > 0) latencies.push(crashedAt - t0);
        if (restartedAt > 0) {
          restarts.push(restartedAt - t0);
          spawnTimes.push(restartedAt - crashedAt);
        }
        await sys.stop(sup.ref);
      }
      rows[kind] = {
        'detect median ms': fmt(median(latencies)),
        'detect min ms': fmt(Math.min(...latencies)),
        'detect max ms': fmt(Math.max(...latencies)),
        'restarted (Ready) median ms': fmt(median(restarts)),
        runs: String(latencies.length),
      };
    }
    console.log(`\n## actors: crash detection latency (inject -> Crashed event; hang watchdog deadline 300 ms; ${CRASH_RUNS} runs)`);
    console.table(rows);
    console.log(`worker respawn (Crashed -> Restarted, tsx loader included): median ${fmt(median(spawnTimes))} ms`);
  } finally {
    await sys.close();
  }
}

await messaging();
await codecs();
await detection();
