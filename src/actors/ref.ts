/**
 * Actor references: location-transparent values. A ref is a plain `{ id }` record, so
 * it survives msgpackr encoding and can travel inside messages; the system that
 * receives it resolves where the actor lives. A ref stays valid across supervised
 * restarts (as in Akka Typed), so holders never have to refresh it.
 *
 * Across nodes a ref also carries `node`, the name of the node whose system holds the
 * actor (`ActorSystem.publicRef` adds it). A ref without `node` means "on the system
 * that resolves it", so every ref made on a node alone stays a bare `{ id }`; a ref
 * whose `node` is the resolving system's own is local too; any other goes over the
 * NATS transport (remote.ts) to that node.
 */
import { newId } from '../util/ids.js';

declare const messageType: unique symbol;

/** A reference to an actor accepting messages of type `M` (the type is compile-time only). */
export interface ActorRef<M = unknown> {
  readonly id: string;
  /** The node whose system holds the actor; absent for "this node". */
  readonly node?: string;
  /** Phantom: never present at run time, never encoded. */
  readonly [messageType]?: M;
}

/** Makes a ref for `id`, on `node` when given (else on the system that resolves it). */
export function refOf<M = unknown>(id: string, node?: string): ActorRef<M> {
  return node === undefined ? { id } : { id, node };
}

/** A fresh actor id: a readable prefix (child id, behaviour name) plus a nanoid. */
export function newActorId(prefix: string): string {
  return newId(`${prefix}-`);
}

/** True for anything shaped like a ref (e.g. one decoded from a message). */
export function isRef(v: unknown): v is ActorRef {
  return typeof v === 'object' && v !== null && typeof (v as { id?: unknown }).id === 'string';
}
