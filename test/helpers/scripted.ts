/** Injected dependencies for deterministic engine tests. */
import type { RandomSource } from '../../src/util/random.js';

/** A random source that hands out the given byte strings in order, each exactly once. */
export function scriptedRandom(values: readonly Uint8Array[]): RandomSource & { readonly drawn: number } {
  let i = 0;
  return {
    get drawn() {
      return i;
    },
    bytes(n: number): Uint8Array {
      const v = values[i++];
      if (!v) throw new Error(`scripted random source exhausted at draw ${i}`);
      if (v.length !== n) throw new Error(`scripted draw ${i} has ${v.length} bytes, engine asked for ${n}`);
      return v;
    },
  };
}
