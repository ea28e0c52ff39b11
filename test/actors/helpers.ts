/** Shared test helpers: bounded polling instead of fixed sleeps. */
import type { SupervisorEvent, SystemEvent } from '../../src/actors/index.js';
import { until } from '../helpers/wait.js';

export const PROBE = new URL('../fixtures/actors/probe.ts', import.meta.url);
export const BAD_INIT = new URL('../fixtures/actors/bad-init.ts', import.meta.url);
export const FLAKY = new URL('../fixtures/actors/flaky-init.ts', import.meta.url);
export const TASKS = new URL('../fixtures/actors/tasks.ts', import.meta.url);

/** Polls `cond` until true; throws naming `what` after `timeoutMs` (helpers/wait.ts). */
export const waitFor = (cond: () => boolean, what: string, timeoutMs = 15_000, everyMs = 10): Promise<void> => until(what, cond, timeoutMs, everyMs);

/** Collects events for later assertions. */
export function recorder(): { events: Array<SystemEvent | SupervisorEvent>; listener: (e: SystemEvent | SupervisorEvent) => void } {
  const events: Array<SystemEvent | SupervisorEvent> = [];
  return { events, listener: (e) => events.push(e) };
}
