/**
 * The gateway's retained input for one connection: every input handed to the
 * owner relay, numbered, kept until a committed state covers it, and replayed in
 * order (by number) after a takeover.
 */

/** Client ciphertext, backend plaintext, the backend's end of stream, or its failure. */
export type InputKind = 'client' | 'backend' | 'backendEnd' | 'backendFailed';

export interface RetainedInput {
  /** 1-based input number within the connection. */
  readonly seq: number;
  readonly kind: InputKind;
  /** The input's bytes as consecutive pieces (views of socket chunks); empty for the end kinds. */
  readonly pieces: readonly Buffer[];
  readonly length: number;
}

const NONE: readonly Buffer[] = Object.freeze([]);

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

  push(kind: InputKind, pieces: readonly Buffer[] = NONE): RetainedInput {
    let length = 0;
    for (const p of pieces) length += p.length;
    const item = { seq: this.nextSeq++, kind, pieces, length };
    this.items.push(item);
    this.bytesHeld += length;
    return item;
  }

  /** Frees every input numbered `upTo` or less: a committed state covers them. */
  release(upTo: number): void {
    while (this.head < this.items.length && this.items[this.head]!.seq <= upTo) {
      this.bytesHeld -= this.items[this.head]!.length;
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
