import { timingSafeEqual } from 'node:crypto';

/** Constant-time equality for secrets (Finished, binders); unequal lengths are simply unequal. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
