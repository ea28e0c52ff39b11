/**
 * Coded errors of the actor runtime. One class, one stable code per failure, in the
 * manner of undici's `UND_ERR_*` and piscina's `PISCINA_ERR_*`: callers branch on
 * `code`, never on the message text.
 */
export type ActorErrorCode =
  /** An ask got no reply before its deadline. */
  | 'BATON_ERR_ASK_TIMEOUT'
  /** The receiver's mailbox is at capacity; the message was not enqueued. */
  | 'BATON_ERR_MAILBOX_FULL'
  /** The receiver died (or was stopped) before it could answer. */
  | 'BATON_ERR_ACTOR_DEAD'
  /** The node a ref names cannot be reached (no NATS transport, NATS down, or no such node listening). */
  | 'BATON_ERR_UNREACHABLE'
  /** A cluster or node name that cannot be one (not a single NATS subject token). */
  | 'BATON_ERR_BAD_NAME'
  /** No actor with that id is known to this system. */
  | 'BATON_ERR_NO_SUCH_ACTOR'
  /** The system or a supervisor was closed; pending work is failed with this. */
  | 'BATON_ERR_CLOSED'
  /** A worker did not post Ready within its start deadline, or died while starting. */
  | 'BATON_ERR_START_FAILED'
  /** `ctx.reply()` outside an ask, or a second reply to one ask. */
  | 'BATON_ERR_NO_ASK'
  /** An ask was answered with a failure by the receiving actor. */
  | 'BATON_ERR_ASK_FAILED'
  /** An armed fault point or `inject(ref, 'throw')` fired: a deliberate crash. */
  | 'BATON_ERR_FAULT_INJECTED'
  /** The fault kind cannot be applied here (e.g. `exit` on a main-thread actor). */
  | 'BATON_ERR_FAULT_UNSUPPORTED'
  /** A message could not be encoded or decoded with msgpackr. */
  | 'BATON_ERR_CODEC'
  /** A task sent to the piscina pool failed. */
  | 'BATON_ERR_POOL'
  /** A supervisor refused a request (duplicate child id, unknown child, ...). */
  | 'BATON_ERR_SUPERVISOR';

/** The one error class of `src/actors`; `code` is stable, `message` is for humans. */
export class ActorError extends Error {
  override readonly name = 'ActorError';
  constructor(
    readonly code: ActorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True when `e` is an {@link ActorError}, optionally with the given code. */
export function isActorError(e: unknown, code?: ActorErrorCode): e is ActorError {
  return e instanceof ActorError && (code === undefined || e.code === code);
}
