import { describe, expect, it } from 'vitest';
import { systemRandom } from '../../src/util/random.js';

describe('systemRandom', () => {
  it('hands out fresh bytes of the asked length across pool refills, small and large', () => {
    const seen = new Set<string>();
    // 32-byte draws through several 4 KiB refills, then draws that straddle the pool's end.
    for (let i = 0; i < 400; i++) {
      const b = systemRandom.bytes(i % 3 === 0 ? 32 : 45);
      expect(b.length).toBe(i % 3 === 0 ? 32 : 45);
      seen.add(Buffer.from(b).toString('hex'));
    }
    expect(seen.size).toBe(400);
    const large = systemRandom.bytes(64 * 1024);
    expect(large.length).toBe(64 * 1024);
    expect(large.some((x) => x !== 0)).toBe(true);
    expect(systemRandom.bytes(0).length).toBe(0);
  });

  it('gives each caller its own copy: changing one draw changes no later one', () => {
    const a = systemRandom.bytes(32);
    const copy = Uint8Array.from(a);
    a.fill(7);
    const b = systemRandom.bytes(32);
    expect(b).not.toEqual(a);
    expect(Buffer.from(copy).equals(Buffer.from(b))).toBe(false);
  });
});
