/** The gateway's pure pieces: record framing and the retained input queue. */
import { describe, expect, it } from 'vitest';
import { RecordFramer } from '../../src/relay/framing.js';
import { RetainedQueue } from '../../src/relay/retained.js';

const record = (len: number, fill = 1) => Buffer.concat([Buffer.from([23, 3, 3, len >> 8, len & 0xff]), Buffer.alloc(len, fill)]);

describe('RecordFramer', () => {
  it('hands out whole records only, across any chunking', () => {
    const stream = Buffer.concat([record(10, 1), record(300, 2), record(0), record(16_400, 3)]);
    for (const size of [1, 3, 7, 64, 1000, stream.length]) {
      const f = new RecordFramer();
      const out: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size) {
        const got = f.push(stream.subarray(at, at + size));
        if (got) out.push(Buffer.concat(got));
      }
      expect(Buffer.concat(out).equals(stream)).toBe(true);
      expect(f.buffered).toBe(0);
      // Every batch ends on a record boundary.
      for (const b of out) {
        let at = 0;
        while (at < b.length) at += 5 + b.readUInt16BE(at + 3);
        expect(at).toBe(b.length);
      }
    }
  });

  it('passes an impossible length on at once, for the engine to answer with record_overflow', () => {
    const f = new RecordFramer();
    const bad = Buffer.from([23, 3, 3, 0xff, 0xff, 1, 2]);
    expect(Buffer.concat(f.push(bad) ?? []).equals(bad)).toBe(true);
  });
});

describe('RetainedQueue', () => {
  it('numbers inputs, finds them by number, frees them on acknowledgement and counts bytes', () => {
    const q = new RetainedQueue();
    for (let i = 1; i <= 100; i++) expect(q.push('client', [Buffer.alloc(i)]).seq).toBe(i);
    expect(q.next).toBe(101);
    expect(q.bytes).toBe(5050);
    expect(q.at(40)?.length).toBe(40);
    q.release(90);
    expect(q.length).toBe(10);
    expect(q.bytes).toBe(91 + 92 + 93 + 94 + 95 + 96 + 97 + 98 + 99 + 100);
    expect(q.at(90)).toBeUndefined();
    expect(q.at(91)?.seq).toBe(91);
    q.release(91);
    // Freed but not yet compacted away: still not found.
    expect(q.at(91)).toBeUndefined();
    q.push('backendEnd');
    q.release(1000);
    expect(q.length).toBe(0);
    expect(q.bytes).toBe(0);
    expect(q.next).toBe(102);
  });
});
