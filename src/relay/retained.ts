/**
 * The gateway's retained input for one connection: every input handed to the
 * owner relay, numbered, kept until the replica acknowledges a state that
 * covers it, and replayed in order (by number) after a takeover.
 */

/** Client ciphertext, backend plaintext, the backend's end of stream, or its failure. */
export type InputKind = 'client' | 'backend' | 'backendEnd' | 'backendFailed';

export interface RetainedInput {
  /** 1-based input number within the connection. */
  readonly seq: number;
  readonly kind: InputKind;
  readonly bytes: Buffer | null;
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

  push(kind: InputKind, bytes: Buffer | null): RetainedInput {
    const item = { seq: this.nextSeq++, kind, bytes };
    this.items.push(item);
    this.bytesHeld += bytes?.length ?? 0;
    return item;
  }

  /** Frees every input numbered `upTo` or less: the replica holds a state covering them. */
  release(upTo: number): void {
    while (this.head < this.items.length && this.items[this.head]!.seq <= upTo) {
      this.bytesHeld -= this.items[this.head]!.bytes?.length ?? 0;
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** The retained input numbered `seq`, if it is still held. */
  at(seq: number): RetainedInput | undefined {
    const first = this.items[this.head];
    if (!first || seq < first.seq) return undefined;
    return this.items[this.head + (seq - first.seq)];
  }
}
