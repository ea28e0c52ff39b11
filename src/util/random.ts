import { createCipheriv, createHash, randomFillSync } from 'node:crypto';

/**
 * Where every random value comes from. Injected everywhere so that a run is
 * reproducible: tests pass a seeded or scripted source, production passes
 * {@link systemRandom}.
 */
export interface RandomSource {
  bytes(n: number): Uint8Array;
}

/** Bytes drawn from the CSPRNG ahead of use: one `randomFillSync` per 4 KiB, not per draw. */
const POOL_SIZE = 4096;
const pool = new Uint8Array(POOL_SIZE);
let poolAt = POOL_SIZE;

/**
 * The operating system's CSPRNG (OpenSSL's DRBG, through node:crypto). A handshake draws
 * three small values, and each `randomBytes` call costs about 4 µs of fixed overhead, so
 * draws come out of a per-thread pool; each is zeroed in the pool once handed out, so the
 * pool never holds a value already in use (a key share, a ticket seed).
 */
export const systemRandom: RandomSource = {
  bytes(n) {
    if (n > POOL_SIZE / 4) return new Uint8Array(randomFillSync(new Uint8Array(n)));
    if (poolAt + n > POOL_SIZE) {
      randomFillSync(pool);
      poolAt = 0;
    }
    const out = pool.slice(poolAt, poolAt + n);
    pool.fill(0, poolAt, poolAt + n);
    poolAt += n;
    return out;
  },
};

/**
 * A deterministic source for tests, benchmarks and the demo's traffic: the
 * AES-128-CTR keystream under a key hashed from the seed. Not for production keys.
 */
export function seededRandom(seed: string | Uint8Array): RandomSource {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const stream = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return {
    bytes: (n: number) => new Uint8Array(stream.update(Buffer.alloc(n))),
  };
}
