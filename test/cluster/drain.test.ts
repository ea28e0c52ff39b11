/**
 * The drain's rules against a stand-in gateway (no sockets, no threads): the listener
 * closes first; no connection left ends it at once; connections ending on their own end
 * it; the timeout closes the rest with close_notify, and waiting for those writes is
 * bounded. Timeouts here are a few milliseconds of real time.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Drain, type DrainTarget } from '../../src/cluster/drain.js';
import { manualClock } from '../../src/util/clock.js';

class FakeGateway extends EventEmitter implements DrainTarget {
  accepting = true;
  closeAllCalls = 0;
  constructor(
    public openConnections: number,
    private readonly flushed: Promise<void> = Promise.resolve(),
  ) {
    super();
  }
  stopAccepting(): void {
    this.accepting = false;
  }
  closeAllWithNotify(): Promise<void> {
    this.closeAllCalls++;
    return this.flushed;
  }
  /** As the gateway does: the event comes before the connection is uncounted. */
  end(): void {
    this.emit('connectionClosed');
    this.openConnections--;
  }
}

describe('Drain', () => {
  it('with no connection stops accepting and ends at once', async () => {
    const g = new FakeGateway(0);
    const d = new Drain(g, { timeoutMs: 60_000 });
    expect(d.status()).toBeNull();
    expect(await d.run('SIGTERM')).toEqual({ kind: 'empty' });
    expect(g.accepting).toBe(false);
    expect(g.closeAllCalls).toBe(0);
  });

  it('ends when the last connection ends on its own; status shows since, deadline and what is left', async () => {
    const clock = manualClock(1_000_000);
    const g = new FakeGateway(2);
    const d = new Drain(g, { timeoutMs: 60_000, clock });
    const outcome = d.run('admin');
    expect(d.run('SIGTERM')).toBe(outcome);
    expect(d.status()).toEqual({ cause: 'admin', since: 1_000_000, deadline: 1_060_000, connections: 2 });
    g.end();
    expect(d.status()!.connections).toBe(1);
    g.end();
    expect(await outcome).toEqual({ kind: 'empty' });
    expect(g.closeAllCalls).toBe(0);
  });

  it('at the timeout closes the rest with close_notify', async () => {
    const g = new FakeGateway(1);
    expect(await new Drain(g, { timeoutMs: 5 }).run('SIGTERM')).toEqual({ kind: 'timedOut', closed: 1, flushed: true });
    expect(g.closeAllCalls).toBe(1);
  });

  it('with timeout 0 closes the rest at once', async () => {
    const g = new FakeGateway(3);
    const seen: number[] = [];
    expect(await new Drain(g, { timeoutMs: 0, onTimeout: (n) => seen.push(n) }).run('SIGTERM')).toEqual({ kind: 'timedOut', closed: 3, flushed: true });
    expect(seen).toEqual([3]);
  });

  it('does not wait past the flush bound for writes that never finish', async () => {
    const g = new FakeGateway(1, new Promise<void>(() => {}));
    expect(await new Drain(g, { timeoutMs: 0, flushMs: 5 }).run('SIGTERM')).toEqual({ kind: 'timedOut', closed: 1, flushed: false });
  });
});
