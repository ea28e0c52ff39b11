/**
 * The gateway's retained input for one connection: every input handed to the
 * owner relay, numbered, kept until a committed state covers it, and replayed in
 * order (by number) after a takeover.
 */

/** Client ciphertext, backend plaintext, the backend's end of stream, its failure, or a stateful session fetched for the ClientHello. */
export type InputKind = 'client' | 'backend' | 'backendEnd' | 'backendFailed' | 'session';

export interface RetainedInput {
  /** 1-based input number within the connection. */
  readonly seq: number;
  readonly kind: InputKind;
  /** Where its bytes lie: arena chunk (-1 for the end kinds, which have none), offset, length. */
  readonly chunk: number;
  readonly offset: number;
  readonly length: number;
}

export class RetainedQueue {
  private items: RetainedInput[] = [];
  private head = 0;
  private bytesHeld = 0;
  private nextSeq = 1;

  /** Bytes of retained input, for backpressure. */
  get bytes(): number {
    return this.bytesHeld;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** The number the next input gets. */
  get next(): number {
    return this.nextSeq;
  }

  constructor(
    /** Called with the chunk of every input freed (the queue held it once). */
    private readonly freed: (chunk: number) => void,
  ) {}

  push(kind: InputKind, chunk = -1, offset = 0, length = 0): RetainedInput {
    const item = { seq: this.nextSeq++, kind, chunk, offset, length };
    this.items.push(item);
    this.bytesHeld += length;
    return item;
  }

  /** Frees every input numbered `upTo` or less: a committed state covers them. */
  release(upTo: number): void {
    while (this.head < this.items.length && this.items[this.head]!.seq <= upTo) {
      const item = this.items[this.head]!;
      this.bytesHeld -= item.length;
      if (item.chunk >= 0) this.freed(item.chunk);
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** Frees everything (the connection is over). */
  clear(): void {
    this.release(Infinity);
  }

  /** The retained input numbered `seq`, if it is still held. */
  at(seq: number): RetainedInput | undefined {
    const first = this.items[this.head];
    if (!first || seq < first.seq) return undefined;
    return this.items[this.head + (seq - first.seq)];
  }
}
