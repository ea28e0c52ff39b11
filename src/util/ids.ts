import { nanoid } from 'nanoid';

/** A fresh id for a connection, actor or session (nanoid, 21 URL-safe characters). */
export function newId(prefix = ''): string {
  return prefix + nanoid();
}
