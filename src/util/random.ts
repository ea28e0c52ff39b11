import { createCipheriv, createHash, randomBytes } from 'node:crypto';

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
