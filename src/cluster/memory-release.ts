/**
 * Gives the memory a burst of handshakes freed back to the OS once the burst is over.
 * Handshakes allocate and free far more native memory (key objects, OpenSSL
 * temporaries) than an established connection keeps, and glibc keeps what was freed
 * between the allocations that stayed: after 2,000 handshakes about 4.5 KiB per
 * connection that nothing uses.
 *
 * Giving it back is one walk of every arena (`releaseFreeMemory`, on libuv's thread
 * pool). The walk holds each arena's lock, so a thread that allocates meanwhile waits:
 * up to about 100 ms after thousands of handshakes. So it is asked for only when the
 * node is quiet: connections were opened since the last release, and then a whole
 * period passed in which none was opened and no byte moved. Under steady traffic it
 * never runs.
 */
import { releaseFreeMemory } from '../tls/index.js';

export const RELEASE_PERIOD_MS = 5_000;

/** What the release watches: counters that only grow. */
export interface Activity {
  /** Connections opened so far. */
  readonly opened: () => number;
  /** Bytes moved so far, any direction. */
  readonly moved: () => number;
}

export class MemoryRelease {
  /** Connections opened at the last release. */
  private openedAtRelease: number;
  private last: { opened: number; moved: number };
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly activity: Activity,
    periodMs = RELEASE_PERIOD_MS,
    private readonly release: () => Promise<boolean> = releaseFreeMemory,
  ) {
    this.last = { opened: activity.opened(), moved: activity.moved() };
    this.openedAtRelease = this.last.opened;
    this.timer = setInterval(() => this.tick(), periodMs);
    this.timer.unref();
  }

  /** One period's look (the timer calls it; tests may too). True when a release was asked for. */
  tick(): boolean {
    const now = { opened: this.activity.opened(), moved: this.activity.moved() };
    const quiet = now.opened === this.last.opened && now.moved === this.last.moved;
    this.last = now;
    if (!quiet || now.opened === this.openedAtRelease) return false;
    this.openedAtRelease = now.opened;
    // Best effort: a failed release leaves the memory where it was, nothing else.
    this.release().catch(() => {});
    return true;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
