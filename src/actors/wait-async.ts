/**
 * `Atomics.waitAsync`, typed: it is in Node 20 (V8) but not in the ES2022 lib this
 * project compiles against. Resolves when another thread notifies the word while it
 * still holds `value`; returns at once (`async: false`) when it does not.
 */
export type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };

export const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): WaitAsyncResult }).waitAsync;

/** What a wait that need not sleep returns. */
export const RESOLVED: Promise<void> = Promise.resolve();
