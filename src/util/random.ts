import { createHash, randomBytes } from 'node:crypto';

/**
 * Where every random value comes from. Injected everywhere so that a run is
 * reproducible: tests pass a seeded or scripted source, production passes
 * {@link systemRandom}.
 */
export interface RandomSource {
  bytes(n: number): Uint8Array;
}

/** The operating system's CSPRNG. */
export const systemRandom: RandomSource = {
  bytes: (n) => new Uint8Array(randomBytes(n)),
};

/**
 * A deterministic source for tests and benchmarks: SHA-256 in counter mode over
 * a seed. Not for production keys.
 */
export function seededRandom(seed: string | Uint8Array): RandomSource {
  let counter = 0;
  let pool = new Uint8Array(0);
  return {
    bytes(n: number): Uint8Array {
      const out = new Uint8Array(n);
      let filled = 0;
      while (filled < n) {
        if (pool.length === 0) {
          pool = new Uint8Array(createHash('sha256').update(seed).update(String(counter++)).digest());
        }
        const take = Math.min(pool.length, n - filled);
        out.set(pool.subarray(0, take), filled);
        pool = pool.subarray(take);
        filled += take;
      }
      return out;
    },
  };
}
