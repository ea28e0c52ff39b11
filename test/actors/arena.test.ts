/**
 * The shared arena: chunks are handed out once each, come back, and the lock-free
 * stack stays sound while several threads take and give at once.
 */
import { describe, expect, it } from 'vitest';
import { ActorSystem, Arena, createArena } from '../../src/actors/index.js';
import type { ArenaChurnMsg, ArenaChurnResult } from '../fixtures/actors/arena-churn.js';

const CHURN = new URL('../fixtures/actors/arena-churn.ts', import.meta.url);

describe('arena', () => {
  it('hands every chunk out once, records who took it, and takes it back', () => {
    const a = new Arena(createArena(5, 4096));
    expect(a.free).toBe(5);
    const got = Array.from({ length: 5 }, () => a.take(7));
    expect(new Set(got).size).toBe(5);
    expect(got.every((c) => c >= 0 && c < 5 && a.owner(c) === 7)).toBe(true);
    expect(a.take(7)).toBe(-1);
    expect(a.free).toBe(0);
    a.give(got[2]!);
    expect(a.owner(got[2]!)).toBe(0);
    expect(a.take(8)).toBe(got[2]);
    expect(() => a.give(5)).toThrow(RangeError);
    // Chunks do not overlap and lie inside the buffer.
    const offsets = got.map((c) => a.offset(c)).sort((x, y) => x - y);
    for (let i = 1; i < offsets.length; i++) expect(offsets[i]! - offsets[i - 1]!).toBe(4096);
    expect(offsets.at(-1)! + 4096).toBeLessThanOrEqual(a.bytes.length);
  });

  it('waitForChunk resolves once a chunk is given back', async () => {
    const a = new Arena(createArena(1, 4096));
    const c = a.take(2);
    let woke = false;
    const p = a.waitForChunk().then(() => (woke = true));
    await Promise.resolve();
    expect(woke).toBe(false);
    a.give(c);
    await p;
    expect(woke).toBe(true);
  });

  it('stays sound while three threads take and give at once: no chunk has two holders, none is lost', async () => {
    const buffers = createArena(16, 4096);
    const system = new ActorSystem();
    try {
      const refs = await Promise.all([2, 3].map((owner) => system.spawnWorker<ArenaChurnMsg>({ module: CHURN, args: { owner }, shared: buffers })));
      const main = new Arena(buffers);
      const results = refs.map((r) => system.ask<ArenaChurnResult>(r, { type: 'churn', rounds: 200_000 }, 60_000));
      // The main thread churns too, meanwhile.
      let mainClobbered = 0;
      const words = new Int32Array(buffers.buffer);
      for (let i = 0; i < 20_000; i++) {
        const c = main.take(1);
        if (c < 0) continue;
        Atomics.store(words, main.offset(c) / 4, -i - 1);
        for (let k = 0; k < 20; k++) Atomics.load(words, 0);
        if (Atomics.load(words, main.offset(c) / 4) !== -i - 1) mainClobbered++;
        main.give(c);
        if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
      }
      const all = await Promise.all(results);
      for (const r of all) {
        expect(r.clobbered).toBe(0);
        expect(r.taken).toBeGreaterThan(10_000);
      }
      expect(mainClobbered).toBe(0);
      expect(main.free).toBe(16);
      const back = Array.from({ length: 16 }, () => main.take(1));
      expect(new Set(back).size).toBe(16);
      expect(back.every((c) => c >= 0)).toBe(true);
    } finally {
      await system.close();
    }
  }, 90_000);
});
