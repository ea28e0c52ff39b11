/**
 * Data channel versus messages: CPU per entry for a main → worker → main echo of the
 * same payloads, once through the actor's data channel (shared rings, no codec, no
 * postMessage) and once through `system.tell` (msgpackr frames over postMessage, the
 * worker telling each payload back to a main-thread actor). CPU is the whole process
 * (every thread: main, the worker, GC) from `process.cpuUsage()`, so a wake-up's cost
 * counts wherever it lands.
 *
 *   npx tsx bench/data-channel.bench.ts
 *
 * Environment: BENCH_TIME_MS (per case, default 2000), CHANNEL_BYTES (each ring,
 * default 1 MiB).
 */
import { ActorSystem, defineActor, type ActorRef, type ChannelEnd } from '../src/actors/index.js';
import type { DataEchoMsg } from '../test/fixtures/actors/data-echo.js';
import { cpuNow, fmt } from './micro-common.js';

const DATA_ECHO = new URL('../test/fixtures/actors/data-echo.ts', import.meta.url);
const TIME = Number(process.env.BENCH_TIME_MS ?? 2_000);
const CHANNEL_BYTES = Number(process.env.CHANNEL_BYTES ?? 1 << 20);

interface Result {
  readonly entries: number;
  readonly cpuMs: number;
  readonly wallMs: number;
  /** Sleep/wake hand-overs, where the path reports them. */
  readonly wakeups?: number;
}

/** Runs `step` (which does some entries and returns how many) for TIME ms after a short warm-up. */
async function measure(step: () => Promise<number>, wakeups?: () => number): Promise<Result> {
  const warmEnd = performance.now() + Math.min(300, TIME / 4);
  while (performance.now() < warmEnd) await step();
  const c0 = cpuNow();
  const t0 = performance.now();
  const w0 = wakeups?.() ?? 0;
  let entries = 0;
  while (performance.now() - t0 < TIME) entries += await step();
  return {
    entries,
    cpuMs: cpuNow() - c0,
    wallMs: performance.now() - t0,
    ...(wakeups ? { wakeups: wakeups() - w0 } : {}),
  };
}

const immediate = () => new Promise<void>((r) => setImmediate(r));
const NEVER = new Promise<never>(() => {});

/**
 * One step of the channel echo: `count` entries of `size` bytes, published every
 * `batch`, all echoes read back before returning.
 */
function channelStep(ch: ChannelEnd, size: number, batch: number, count: number): () => Promise<number> {
  const { writer, reader } = ch;
  const src = new Uint8Array(size).fill(0x61);
  let sink = 0;
  return async () => {
    let sent = 0;
    let got = 0;
    let turns = 0;
    while (got < count) {
      let progressed = false;
      while (sent < count) {
        const at = writer.reserve(size);
        if (at < 0) break;
        writer.bytes.set(src, at);
        writer.commit(size);
        progressed = true;
        if (++sent % batch === 0) writer.publish();
      }
      writer.publish();
      while (reader.next() >= 0) {
        sink += reader.length;
        got++;
        progressed = true;
      }
      reader.release();
      if (!progressed) await Promise.race([reader.wait(), sent < count ? writer.waitForRoom() : NEVER]);
      else if (++turns % 64 === 0) await immediate();
    }
    if (sink < 0) console.log(sink);
    return count;
  };
}

/**
 * One step of the message echo: `count` tells of `size` bytes (or `count / perMsg`
 * tells carrying `perMsg` payloads each), at most `window` in flight, every bounce
 * received by a main-thread actor before returning.
 */
function tellStep(
  sys: ActorSystem,
  echo: ActorRef<DataEchoMsg>,
  sinkRef: ActorRef,
  sink: { got: number; want: number; done: (() => void) | undefined },
  size: number,
  count: number,
  window: number,
  perMsg = 1,
): () => Promise<number> {
  const one = new Uint8Array(size).fill(0x61);
  const data: unknown = perMsg === 1 ? one : Array.from({ length: perMsg }, () => new Uint8Array(size).fill(0x62));
  const msgs = Math.ceil(count / perMsg);
  return async () => {
    sink.got = 0;
    let sent = 0;
    while (sink.got < msgs) {
      while (sent < msgs && sent - sink.got < window) {
        sys.tell(echo, { type: 'bounce', to: sinkRef, data });
        sent++;
      }
      sink.want = Math.min(msgs, sink.got + Math.max(1, window >> 1));
      if (sink.got < sink.want) await new Promise<void>((r) => (sink.done = r));
    }
    return msgs * perMsg;
  };
}

async function main(): Promise<void> {
  const sys = new ActorSystem();
  try {
    sys.on((e) => console.log('unexpected event', e));
    const echo = await sys.spawnWorker<DataEchoMsg>({
      module: DATA_ECHO,
      channel: { bytes: CHANNEL_BYTES },
      args: { xor: 0 },
      capacity: 100_000,
    });
    const sink = { got: 0, want: 0, done: undefined as (() => void) | undefined };
    const sinkRef = await sys.spawnLocal(
      defineActor<unknown, null, null>({
        init: () => null,
        receive() {
          if (++sink.got >= sink.want && sink.done) {
            const d = sink.done;
            sink.done = undefined;
            d();
          }
        },
      }),
      null,
      { capacity: 100_000 },
    );
    const ch = sys.channelOf(echo)!;
    const chWakeups = () => ch.writer.wakeups + ch.reader.wakeups;
    const cases: Array<{ name: string; size: number; run: () => Promise<Result> }> = [
      { name: 'channel, 16 KiB entries, publish every 8', size: 16 * 1024, run: () => measure(channelStep(ch, 16 * 1024, 8, 512), chWakeups) },
      { name: 'tell, 16 KiB per message', size: 16 * 1024, run: () => measure(tellStep(sys, echo, sinkRef, sink, 16 * 1024, 512, 64)) },
      { name: 'channel, 64 B entries, publish every 64', size: 64, run: () => measure(channelStep(ch, 64, 64, 8192), chWakeups) },
      { name: 'tell, 64 B per message', size: 64, run: () => measure(tellStep(sys, echo, sinkRef, sink, 64, 8192, 1024)) },
      { name: 'tell, 64 × 64 B per message', size: 64, run: () => measure(tellStep(sys, echo, sinkRef, sink, 64, 8192, 32, 64)) },
    ];
    const rows: Record<string, Record<string, string>> = {};
    for (const c of cases) {
      const r = await c.run();
      const mb = (r.entries * c.size) / 1e6;
      rows[c.name] = {
        'CPU µs/entry': fmt((r.cpuMs * 1000) / r.entries),
        'MB/CPU-s': fmt(mb / (r.cpuMs / 1000)),
        'entries/s': fmt(r.entries / (r.wallMs / 1000)),
        'MB/s': fmt(mb / (r.wallMs / 1000)),
        'CPU cores': fmt(r.cpuMs / r.wallMs, 2),
        'wakes/1k entries': r.wakeups === undefined ? '—' : fmt((r.wakeups * 1000) / r.entries),
        entries: String(r.entries),
      };
      await immediate();
    }
    console.log(
      `\n## data channel vs tell: main → worker → main echo (CPU = whole process, all threads; MB = payload one way; rings of ${CHANNEL_BYTES} bytes)`,
    );
    console.table(rows);
  } finally {
    await sys.close();
  }
}

await main();
