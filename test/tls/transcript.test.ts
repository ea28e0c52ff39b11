import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Transcript } from '../../src/tls/crypto/transcript.js';
import { seededRandom } from '../../src/util/random.js';

const sha = (alg: string, parts: Uint8Array[]) => {
  const h = createHash(alg);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

describe('Transcript', () => {
  it('digests what it was given so far, as a streaming hash does, and goes on (past its first scratch size)', () => {
    const random = seededRandom('transcript');
    for (const alg of ['sha256', 'sha384'] as const) {
      const t = new Transcript(alg);
      const parts: Uint8Array[] = [];
      for (const n of [0, 90, 512, 3000, 7000, 1]) {
        const m = random.bytes(n);
        parts.push(m);
        t.update(m);
        expect(t.digest()).toEqual(sha(alg, parts));
      }
    }
  });

  it('refuses to be used once a newer transcript owns the scratch buffer', () => {
    const old = new Transcript('sha256').update(Uint8Array.of(1, 2, 3));
    const fresh = new Transcript('sha256').update(Uint8Array.of(9));
    expect(() => old.digest()).toThrow(/newer one/);
    expect(() => old.update(Uint8Array.of(4))).toThrow(/newer one/);
    expect(fresh.digest()).toEqual(sha('sha256', [Uint8Array.of(9)]));
  });
});
