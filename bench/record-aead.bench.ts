/**
 * Whole-record AEAD micro-benchmark: the native addon against the node:crypto
 * reference, sealing and opening one record per call into caller memory
 * (RecordAead.sealRecord / openRecord), per AEAD.
 *
 *   npx tsx bench/record-aead.bench.ts
 *
 * Environment: BENCH_TIME_MS (per task, default 400), BENCH_WARMUP_MS (default 100),
 * BENCH_SIZES (comma-separated record content sizes in bytes, default 16384,1024),
 * BENCH_CLOCK=cpu (time samples with process CPU time instead of wall time: use it on a
 * shared, loaded machine). BATON_NATIVE=0 leaves only the node:crypto rows.
 *
 * Reported: µs per record (mean and median), MB/s of content, and native/node:crypto
 * as a speed-up (node:crypto time / native time; > 1 means native is faster).
 */
import { aeadBackend, nativeAead } from '../src/tls/crypto/native-aead.js';
import { nodeCryptoAead, TAG_LEN, type AeadName, type RecordAead } from '../src/tls/crypto/record-aead.js';
import { seededRandom } from '../src/util/random.js';
import { completed, CPU_CLOCK, fmt, newBench } from './micro-common.js';

const SIZES = (process.env.BENCH_SIZES ?? '16384,1024').split(',').map((s) => Number(s.trim()));
const APPLICATION_DATA = 23;
const AEADS: readonly { name: AeadName; keyLen: number }[] = [
  { name: 'aes-128-gcm', keyLen: 16 },
  { name: 'aes-256-gcm', keyLen: 32 },
  { name: 'chacha20-poly1305', keyLen: 32 },
];
/** Records opened in turn (each under its own sequence number). */
const POOL = 64;

type Impl = 'native' | 'node:crypto';
let sink = 0;

async function main(): Promise<void> {
  const backend = aeadBackend();
  const impls: Impl[] = backend.mode === 'native' ? ['native', 'node:crypto'] : ['node:crypto'];
  console.log(`record AEAD backend: ${backend.mode}${backend.reason ? ` (${backend.reason})` : ''}; clock: ${CPU_CLOCK ? 'process CPU' : 'wall'}`);

  const bench = newBench();
  const make = (impl: Impl, aead: AeadName, key: Uint8Array, iv: Uint8Array, dir: 'seal' | 'open'): RecordAead =>
    impl === 'native' ? nativeAead(aead, key, iv, dir) : nodeCryptoAead(aead, key, iv);
  const cases: { label: string; op: 'seal' | 'open'; size: number; names: Partial<Record<Impl, string>> }[] = [];

  for (const { name, keyLen } of AEADS) {
    const r = seededRandom(`bench ${name}`);
    const key = r.bytes(keyLen);
    const iv = r.bytes(12);
    for (const size of SIZES) {
      const content = r.bytes(size);
      const total = 5 + size + 1 + TAG_LEN;
      const reference = nodeCryptoAead(name, key, iv);
      const pool = Array.from({ length: POOL }, (_, seq) => {
        const rec = new Uint8Array(total);
        reference.sealRecord(seq, APPLICATION_DATA, content, 0, rec, 0);
        return rec;
      });
      const label = `${name} ${size >= 1024 ? `${size / 1024} KiB` : `${size} B`}`;
      const seal: Case = { label, op: 'seal', size, names: {} };
      const open: Case = { label, op: 'open', size, names: {} };
      for (const impl of impls) {
        const sealer = make(impl, name, key, iv, 'seal');
        const out = new Uint8Array(total);
        let seq = 0;
        seal.names[impl] = `seal ${label} ${impl}`;
        bench.add(seal.names[impl], () => {
          sink += sealer.sealRecord(seq++, APPLICATION_DATA, content, 0, out, 0);
        });
        const opener = make(impl, name, key, iv, 'open');
        const plain = new Uint8Array(size + 1);
        let i = 0;
        open.names[impl] = `open ${label} ${impl}`;
        bench.add(open.names[impl], () => {
          const n = opener.openRecord(i, pool[i]!, plain, 0);
          if (n !== size + 1) throw new Error(`${impl} failed to open ${label} record ${i}`);
          sink += n;
          i = (i + 1) % POOL;
        });
      }
      cases.push(seal, open);
    }
  }
  type Case = (typeof cases)[number];

  await bench.run();

  const rows: Record<string, Record<string, string>> = {};
  for (const c of cases) {
    const row: Record<string, string> = {};
    const mean: Partial<Record<Impl, number>> = {};
    const p50: Partial<Record<Impl, number>> = {};
    for (const impl of impls) {
      const r = completed(bench.getTask(c.names[impl]!)!);
      mean[impl] = r.latency.mean * 1000;
      p50[impl] = r.latency.p50 * 1000;
      row[`${impl} µs`] = fmt(mean[impl]);
      row[`${impl} p50 µs`] = fmt(p50[impl]);
      row[`${impl} MB/s`] = fmt(c.size / mean[impl]);
    }
    if (mean.native !== undefined && mean['node:crypto'] !== undefined) {
      row['speed-up (mean)'] = `${(mean['node:crypto'] / mean.native).toFixed(2)}x`;
      row['speed-up (p50)'] = `${(p50['node:crypto']! / p50.native!).toFixed(2)}x`;
    }
    rows[`${c.op} ${c.label}`] = row;
  }
  console.log('\n## record AEAD: µs per record, native addon vs node:crypto (speed-up = node:crypto time / native time)');
  console.table(rows);
  if (sink === 0) console.log('(nothing sealed)');
}

await main();
