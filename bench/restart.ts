/**
 * A relay restart, crash to ready: starts a one-relay cluster, crashes its relay (an
 * injected throw) and times the supervisor's Crashed event to its Restarted event (the
 * new incarnation posted Ready). Each sample is a fresh cluster, so no restart backoff
 * is in the figure (the first restart in a period has none).
 *
 *   node --import tsx bench/restart.ts [--from src|dist] [--runs 10]
 *
 * `--from dist` loads the compiled cluster (`npm run build` first): its workers load
 * compiled JavaScript; `--from src` (the default) loads the TypeScript through tsx,
 * as the tests do.
 */
import { parseArgs } from 'node:util';
import type { SupervisorEvent } from '../src/actors/index.js';
import type * as ClusterModule from '../src/cluster/cluster.js';
import type * as SelfSignedModule from '../src/cli/self-signed.js';

const { values } = parseArgs({ options: { from: { type: 'string', default: 'src' }, runs: { type: 'string', default: '10' } } });
const from = values.from === 'dist' ? 'dist' : 'src';
const ext = from === 'dist' ? 'js' : 'ts';
const runs = Number(values.runs);
const { Cluster } = (await import(new URL(`../${from}/cluster/cluster.${ext}`, import.meta.url).href)) as typeof ClusterModule;
const { makeSelfSigned } = (await import(new URL(`../${from}/cli/self-signed.${ext}`, import.meta.url).href)) as typeof SelfSignedModule;

const cert = await makeSelfSigned();
const samples: number[] = [];
for (let i = 0; i < runs; i++) {
  let crashedAt = 0;
  let resolveRestart!: (ms: number) => void;
  const restarted = new Promise<number>((r) => (resolveRestart = r));
  const cluster = await Cluster.start({
    relays: 1,
    listen: { host: '127.0.0.1', port: 0 },
    backend: { host: '127.0.0.1', port: 9 },
    certificates: [{ cert: cert.cert, key: cert.key }],
    relayHeapMb: 128,
    onEvent: (e: SupervisorEvent) => {
      if (e.type === 'Crashed') crashedAt = performance.now();
      if (e.type === 'Restarted') resolveRestart(performance.now() - crashedAt);
    },
  });
  cluster.inject(cluster.relayNames[0]!, 'throw');
  const timeout = setTimeout(() => resolveRestart(NaN), 15_000);
  samples.push(await restarted);
  clearTimeout(timeout);
  await cluster.close();
}
const sorted = [...samples].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)]!;
console.log(
  `relay restart (crash to ready), from ${from}, ${runs} runs: median ${median.toFixed(0)} ms, ` +
    `min ${sorted[0]!.toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms`,
);
