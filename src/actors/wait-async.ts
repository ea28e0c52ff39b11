/**
 * `Atomics.waitAsync`, typed: it is in Node 20 (V8) but not in the ES2022 lib this
 * project compiles against. Resolves when another thread notifies the word while it
 * still holds `value`; returns at once (`async: false`) when it does not.
 */
export type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };

export const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number, timeoutMs?: number): WaitAsyncResult }).waitAsync;

/** What a wait that need not sleep returns. */
export const RESOLVED: Promise<void> = Promise.resolve();

/**
 * The waker's half of the sleep protocol on `words[index]` (1: someone sleeps or is
 * about to). Lower the word, then notify: a sleeper between raising it and `waitAsync`
 * finds it lowered and does not sleep, so no wake-up is lost. The plain load first keeps
 * the common case, nobody asleep, free of read-modify-writes. True when it woke someone.
 */
export function wakeSleeper(words: Int32Array, index: number): boolean {
  if (Atomics.load(words, index) === 0 || Atomics.compareExchange(words, index, 1, 0) !== 1) return false;
  Atomics.notify(words, index);
  return true;
}
