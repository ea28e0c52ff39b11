/**
 * A bounded mailbox that hands messages to its actor one at a time. `offer()` refuses
 * (returns false) at capacity instead of growing: the caller turns that into
 * backpressure (`BATON_ERR_MAILBOX_FULL`), never a silent drop.
 */
export type MailboxHandler<E> = (envelope: E) => void | Promise<void>;

export interface MailboxHooks<E> {
  /** The handler threw or its promise rejected: the actor has crashed. */
  readonly onError: (error: unknown) => void;
  /** One message left the queue for processing (credit for the sender side). */
  readonly onTaken?: (envelope: E) => void;
  /** The queue became empty after processing. */
  readonly onIdle?: () => void;
}

export class Mailbox<E> {
  private readonly queue: E[] = [];
  // Index of the next message; the array is compacted lazily to avoid shift() costs.
  private head = 0;
  private scheduled = false;
  private running = false;
  private closed = false;
  /** performance.now() when the current message started, or -1 when idle. */
  private startedAt = -1;

  constructor(
    readonly capacity: number,
    private readonly handler: MailboxHandler<E>,
    private readonly hooks: MailboxHooks<E>,
  ) {}

  /** Messages waiting (not counting the one in progress). */
  get size(): number {
    return this.queue.length - this.head;
  }

  /** How long the message in progress has been running, 0 when idle. */
  busyMs(now = performance.now()): number {
    return this.startedAt < 0 ? 0 : now - this.startedAt;
  }

  /** Enqueues unless full or closed; false tells the caller to push back. */
  offer(envelope: E): boolean {
    if (this.closed || this.size >= this.capacity) return false;
    this.queue.push(envelope);
    if (!this.running && !this.scheduled) {
      this.scheduled = true;
      // A microtask, not a synchronous call: an actor telling itself must not re-enter.
      queueMicrotask(() => void this.drain());
    }
    return true;
  }

  /** Stops processing; returns what was still queued so the owner can fail it. Idempotent. */
  close(): E[] {
    this.closed = true;
    const rest = this.queue.slice(this.head);
    this.queue.length = 0;
    this.head = 0;
    return rest;
  }

  private async drain(): Promise<void> {
    this.scheduled = false;
    if (this.running) return;
    this.running = true;
    try {
      while (!this.closed && this.head < this.queue.length) {
        const env = this.queue[this.head]!;
        this.queue[this.head++] = undefined as E;
        if (this.head > 1024 && this.head * 2 > this.queue.length) {
          this.queue.splice(0, this.head);
          this.head = 0;
        }
        this.hooks.onTaken?.(env);
        this.startedAt = performance.now();
        let r: void | Promise<void>;
        try {
          r = this.handler(env);
          // Only an async handler costs an await; sync handlers stay in this loop.
          if (r !== undefined) await r;
        } catch (e) {
          this.startedAt = -1;
          this.closed = true;
          this.hooks.onError(e);
          return;
        }
        this.startedAt = -1;
      }
      if (this.head === this.queue.length) {
        this.queue.length = 0;
        this.head = 0;
      }
      if (!this.closed) this.hooks.onIdle?.();
    } finally {
      this.running = false;
    }
  }
}
