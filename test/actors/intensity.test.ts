import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF, recordRestart } from '../../src/actors/index.js';
import { arm, hit, type ArmedTable } from '../../src/actors/faults.js';
import { Mailbox } from '../../src/actors/mailbox.js';
import { waitFor } from './helpers.js';
import { decodeHeader, decodePayload, encodeFrame, rawPayload } from '../../src/actors/protocol.js';

describe('restart intensity (pure)', () => {
  it('allows `intensity` restarts inside the period and refuses the next', () => {
    const limit = { intensity: 2, periodMs: 1_000 };
    let h: readonly number[] = [];
    for (const [t, ok] of [
      [0, true],
      [100, true],
      [200, false],
    ] as const) {
      const d = recordRestart(h, t, limit);
      expect(d.allowed).toBe(ok);
      h = d.history;
    }
    // Old restarts age out of the window.
    expect(recordRestart([0, 100], 1_150, limit)).toEqual({ history: [1_150], allowed: true });
  });

  it('never keeps restarts older than the period, and allows iff the window holds at most `intensity`', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(10_000), { maxLength: 20 }), fc.nat(5), fc.integer({ min: 1, max: 5_000 }), (ts, n, period) => {
        const sorted = [...ts].sort((a, b) => a - b);
        const now = (sorted.at(-1) ?? 0) + 1;
        const d = recordRestart(sorted, now, { intensity: n, periodMs: period });
        expect(d.history.every((t) => now - t < period)).toBe(true);
        expect(d.allowed).toBe(d.history.length <= n);
      }),
    );
  });

  it('backs off exponentially, capped, and never restarts a start failure at once', () => {
    expect(backoffDelay(0, false, DEFAULT_BACKOFF)).toBe(0);
    expect(backoffDelay(0, true, DEFAULT_BACKOFF)).toBe(DEFAULT_BACKOFF.initialMs);
    expect(backoffDelay(1, false, DEFAULT_BACKOFF)).toBe(50);
    expect(backoffDelay(2, false, DEFAULT_BACKOFF)).toBe(100);
    expect(backoffDelay(30, false, DEFAULT_BACKOFF)).toBe(DEFAULT_BACKOFF.maxMs);
  });
});

describe('fault point table (pure)', () => {
  it('skips, then fires `times` times, then disarms', () => {
    const t: ArmedTable = new Map();
    arm(t, 'p', 'exit', { skip: 1, times: 2 });
    expect([hit(t, 'q'), hit(t, 'p'), hit(t, 'p'), hit(t, 'p'), hit(t, 'p')]).toEqual([undefined, undefined, 'exit', 'exit', undefined]);
    expect(t.size).toBe(0);
  });
});

describe('frames', () => {
  it('decodes the header alone and forwards the payload bytes untouched', () => {
    const f = encodeFrame({ t: 'Deliver', to: 'a', from: 'b' }, { big: 2n ** 64n, b: new Uint8Array([9]) });
    const { header, payloadAt } = decodeHeader(f);
    expect(header).toEqual({ t: 'Deliver', to: 'a', from: 'b' });
    const raw = rawPayload(f, payloadAt)!;
    const again = encodeFrame({ t: 'Bounced', to: 'b', target: 'a', code: 'X' }, undefined, raw);
    const d = decodeHeader(again);
    expect(decodePayload(again, d.payloadAt)).toEqual({ big: 2n ** 64n, b: new Uint8Array([9]) });
    expect(f.byteOffset).toBe(0);
    expect(f.byteLength).toBe(f.buffer.byteLength);
  });
});

describe('mailbox', () => {
  it('refuses past capacity and processes in order, one at a time', async () => {
    const seen: number[] = [];
    let active = 0;
    let maxActive = 0;
    const mb = new Mailbox<number>(
      3,
      async (n) => {
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise((r) => setTimeout(r, 1));
        seen.push(n);
        active--;
      },
      { onError: (e) => { throw e; } },
    );
    expect([mb.offer(1), mb.offer(2), mb.offer(3), mb.offer(4)]).toEqual([true, true, true, false]);
    await waitFor(() => seen.length >= 3, 'three messages processed');
    expect(seen).toEqual([1, 2, 3]);
    expect(maxActive).toBe(1);
  });
});
