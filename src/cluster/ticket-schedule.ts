/**
 * One ticket-key schedule for every node of a cluster. A key is accepted everywhere
 * before any node seals with it: each version carries, besides the current key (which
 * seals) and the retired one (still accepted), the *next* key, accepted but not yet
 * used. A rotation promotes that next key to current and adds a fresh next. Nodes
 * activate a version one after another, so for a moment some seal with the new current
 * key while others still run the version before; those accept it already (it was their
 * next key), and the new version still accepts their current one (now retired). So a
 * ticket from any node opens on every other throughout.
 *
 * The schedule's bookkeeping (which id is next, when keys last rotated) is not secret:
 * key ids travel in clear in every ticket. It sits in the store's active record.
 */
import { randomBytes } from 'node:crypto';
import type { TicketKey, TicketKeys } from '../tls/index.js';

/** What the active record says about the keys (ids as hex; never a secret). */
export interface TicketSchedule {
  /** Id of the accepted key that the next rotation promotes; null when the keys have none. */
  readonly nextId: string | null;
  /** When the current key began to seal (milliseconds since the epoch). */
  readonly rotatedAt: number;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function freshKey(): TicketKey {
  return { id: new Uint8Array(randomBytes(16)), secret: new Uint8Array(randomBytes(32)) };
}

/** The keys a cluster starts with: `keys` plus a fresh next key if they have none. */
export function scheduleTicketKeys(keys: TicketKeys, now: number): { keys: TicketKeys; schedule: TicketSchedule } {
  const next = freshKey();
  return { keys: { current: keys.current, previous: [next, ...(keys.previous ?? [])] }, schedule: { nextId: hex(next.id), rotatedAt: now } };
}

/** Whether `keys` still hold the schedule's next key (a reload that kept the keys does). */
export function holdsNextKey(keys: TicketKeys, schedule: TicketSchedule): boolean {
  return schedule.nextId !== null && (keys.previous ?? []).some((k) => hex(k.id) === schedule.nextId);
}

/**
 * One rotation: the next key becomes current, the old current is retired (still
 * accepted), a fresh next key is added, and older retired keys are dropped. Without a
 * next key (keys a reload brought in) a fresh key becomes current at once.
 */
export function advanceTicketKeys(keys: TicketKeys, schedule: TicketSchedule, now: number): { keys: TicketKeys; schedule: TicketSchedule } {
  const promoted = (keys.previous ?? []).find((k) => schedule.nextId !== null && hex(k.id) === schedule.nextId) ?? freshKey();
  const next = freshKey();
  return { keys: { current: promoted, previous: [next, keys.current] }, schedule: { nextId: hex(next.id), rotatedAt: now } };
}

/** Whether a rotation is due `periodMs` after the last. */
export function rotationDue(schedule: TicketSchedule, periodMs: number, now: number): boolean {
  return now - schedule.rotatedAt >= periodMs;
}
