/**
 * HKDF and HMAC built on one-shot hashes must give the bytes of `node:crypto`'s own
 * `createHmac` and `hkdfSync`, for every length the key schedule uses and beyond
 * (keys longer than a block, outputs of several blocks, empty salts and infos).
 */
import { createHmac, hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expandLabel, hkdfExpand, hkdfExtract, hkdfLabel, hmac, type HashName } from '../../src/tls/crypto/hkdf.js';

const hashes = fc.constantFrom<HashName>('sha256', 'sha384');
const bytes = (max: number) => fc.uint8Array({ minLength: 0, maxLength: max });

describe('hkdf on one-shot hashes', () => {
  it('HMAC equals createHmac for any key and message length', () => {
    fc.assert(
      fc.property(hashes, bytes(300), bytes(1500), (hash, key, data) => {
        expect(Buffer.from(hmac(hash, key, data))).toEqual(createHmac(hash, key).update(data).digest());
      }),
      { numRuns: 300 },
    );
  });

  it('Extract then Expand equals hkdfSync, outputs of one to many blocks', () => {
    fc.assert(
      fc.property(hashes, bytes(100), bytes(100), bytes(200), fc.integer({ min: 1, max: 600 }), (hash, salt, ikm, info, length) => {
        const ours = hkdfExpand(hash, hkdfExtract(hash, salt, ikm), info, length);
        expect(Buffer.from(ours)).toEqual(Buffer.from(hkdfSync(hash, ikm, salt, info, length)));
      }),
      { numRuns: 300 },
    );
  });

  it('Expand-Label written in place equals Expand over the HkdfLabel structure', () => {
    fc.assert(
      fc.property(hashes, bytes(48), fc.constantFrom('key', 'iv', 'finished', 'c hs traffic', 'x'.repeat(249)), bytes(255), fc.integer({ min: 1, max: 200 }), (hash, secret, label, context, length) => {
        const direct = hkdfExpand(hash, secret, hkdfLabel(label, context, length), length);
        expect(expandLabel(hash, secret, label, context, length)).toEqual(direct);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a label or context that does not fit its one-byte length', () => {
    expect(() => expandLabel('sha256', new Uint8Array(32), 'x'.repeat(250), new Uint8Array(0), 16)).toThrow(RangeError);
    expect(() => expandLabel('sha256', new Uint8Array(32), 'key', new Uint8Array(256), 16)).toThrow(RangeError);
  });
});
