import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { adoptFrame, decodeHeader, decodePayload, encodeFrame, TRANSFER_MIN_BYTES } from '../../src/actors/protocol.js';

describe('frame codec, large payloads packed in place', () => {
  it('round-trips a large payload, header decodable alone, binary fields as views of the frame', () => {
    const bytes = new Uint8Array(3 * TRANSFER_MIN_BYTES).map((_, i) => i & 0xff);
    const f = encodeFrame({ t: 'Deliver', to: 'a', from: 'b' }, { t: 'Output', pieces: [bytes, bytes.subarray(7)], n: 2n ** 64n });
    const { header, payloadAt } = decodeHeader(f);
    expect(header).toEqual({ t: 'Deliver', to: 'a', from: 'b' });
    const p = decodePayload<{ pieces: Uint8Array[]; n: bigint }>(f, payloadAt);
    expect(Buffer.compare(p.pieces[0]!, bytes)).toBe(0);
    expect(Buffer.compare(p.pieces[1]!, bytes.subarray(7))).toBe(0);
    expect(p.pieces[0]!.buffer).toBe(f.buffer);
    expect(p.n).toBe(2n ** 64n);
    // The frame's buffer holds nothing but the frame (zeros after it).
    expect(new Uint8Array(f.buffer, f.byteOffset + f.length).every((b) => b === 0)).toBe(true);
    adoptFrame(f);
  });

  it('leaves what other Packr instances packed earlier intact (msgpackr shares its buffer)', () => {
    const other = new Packr({ useRecords: false });
    for (let i = 0; i < 500; i++) {
      const earlier = [0, 1, 2].map((k) => other.pack({ i, k, data: new Uint8Array(400 + k).fill(i & 0xff) }));
      encodeFrame({ t: 'Deliver', to: 'x' }, { msgs: earlier, pad: new Uint8Array(TRANSFER_MIN_BYTES) });
      encodeFrame({ t: 'Deliver', to: 'x' }, { small: 1 });
      earlier.forEach((e, k) => expect(other.unpack(e)).toMatchObject({ i, k }));
    }
  });
});
