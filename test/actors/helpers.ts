/** Shared test helpers: bounded polling instead of fixed sleeps. */
import type { SupervisorEvent, SystemEvent } from '../../src/actors/index.js';

export const PROBE = new URL('../fixtures/actors/probe.ts', import.meta.url);
export const BAD_INIT = new URL('../fixtures/actors/bad-init.ts', import.meta.url);
export const FLAKY = new URL('../fixtures/actors/flaky-init.ts', import.meta.url);
export const TASKS = new URL('../fixtures/actors/tasks.ts', import.meta.url);

/** Polls `cond` every `everyMs` until true; throws after `timeoutMs` (bounded in count and time). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 15_000, everyMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < end && i < timeoutMs / everyMs + 10; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** Collects events for later assertions. */
export function recorder(): { events: Array<SystemEvent | SupervisorEvent>; listener: (e: SystemEvent | SupervisorEvent) => void } {
  const events: Array<SystemEvent | SupervisorEvent> = [];
  return { events, listener: (e) => events.push(e) };
}
