import { afterEach, describe, expect, it, vi } from 'vitest';
import { BackendPool, singleBackend, type BackendsSpec } from '../../src/relay/backend-pool.js';
import { DEFAULT_HEALTH_CHECK, HealthChecker, INITIAL_HEALTH, nextHealth, type HealthState } from '../../src/relay/health-check.js';

const addr = (port: number) => ({ host: '127.0.0.1', port });
const noKey = { serverName: null, alpn: null };

function spec(over: Partial<BackendsSpec> = {}): BackendsSpec {
  return { pools: { default: [addr(1), addr(2), addr(3)] }, policy: 'round-robin', routes: [], health: DEFAULT_HEALTH_CHECK, ...over };
}

describe('nextHealth (rise 2, fall 3)', () => {
  const s = { rise: 2, fall: 3 };
  const run = (from: HealthState, results: boolean[]) => results.reduce((st, ok) => nextHealth(st, ok, s), from);

  it('takes an up backend down after fall failures in a row, not fewer', () => {
    expect(run(INITIAL_HEALTH, [false, false]).kind).toBe('up');
    expect(run(INITIAL_HEALTH, [false, false, false]).kind).toBe('down');
    // A success in between starts the count again.
    expect(run(INITIAL_HEALTH, [false, false, true, false, false]).kind).toBe('up');
  });

  it('brings a down backend up after rise successes in a row', () => {
    const down: HealthState = { kind: 'down', successes: 0 };
    expect(run(down, [true]).kind).toBe('down');
    expect(run(down, [true, true])).toEqual(INITIAL_HEALTH);
    expect(run(down, [true, false, true]).kind).toBe('down');
  });
});

describe('BackendPool', () => {
  it('round-robin takes each up backend in turn', () => {
    const pool = new BackendPool(spec());
    expect(Array.from({ length: 6 }, () => pool.pick(noKey)!.address.port)).toEqual([1, 2, 3, 1, 2, 3]);
  });

  it('least-connections prefers the backend with fewest open, ties in turn', () => {
    const pool = new BackendPool(spec({ policy: 'least-connections' }));
    const a = pool.pick(noKey)!;
    pool.acquire(a);
    const b = pool.pick(noKey)!;
    pool.acquire(b);
    expect([a.address.port, b.address.port]).toEqual([1, 2]);
    expect(pool.pick(noKey)!.address.port).toBe(3);
    pool.acquire(pool.members[2]!);
    pool.release(a);
    expect(pool.pick(noKey)!.address.port).toBe(1);
  });

  it('skips down backends and the ones already tried; null when none is left', () => {
    const pool = new BackendPool(spec());
    for (let i = 0; i < 3; i++) pool.checked(pool.members[1]!, false);
    expect(pool.members[1]!.health.kind).toBe('down');
    expect(pool.members[1]!.checksFailed).toBe(3);
    expect(Array.from({ length: 4 }, () => pool.pick(noKey)!.address.port)).toEqual([1, 3, 1, 3]);
    expect(pool.pick(noKey, new Set([pool.members[0]!, pool.members[2]!]))).toBeNull();
  });

  it('routes by SNI name (any case) and ALPN protocol to a named pool', () => {
    const pool = new BackendPool(
      spec({
        pools: { default: [addr(1)], api: [addr(10)], h2: [addr(20)] },
        routes: [
          { serverName: 'api.example.com', pool: 'api' },
          { alpn: 'h2', pool: 'h2' },
        ],
      }),
    );
    expect(pool.pick({ serverName: 'API.example.com', alpn: 'h2' })!.name).toBe('api/127.0.0.1:10');
    expect(pool.pick({ serverName: 'www.example.com', alpn: 'h2' })!.name).toBe('h2/127.0.0.1:20');
    expect(pool.pick({ serverName: null, alpn: 'http/1.1' })!.name).toBe('127.0.0.1:1');
  });

  it('a single backend is a default pool of one', () => {
    const pool = new BackendPool(singleBackend(addr(9)));
    expect(pool.status()).toEqual([{ name: '127.0.0.1:9', pool: 'default', up: true, active: 0, connections: 0, connectFailures: 0, checksFailed: 0 }]);
  });
});

describe('HealthChecker', () => {
  it('tells the pool each probe result; fall failed rounds take a backend down, rise bring it back', async () => {
    const pool = new BackendPool(spec());
    let port2Up = false;
    const checker = new HealthChecker(pool, { ...DEFAULT_HEALTH_CHECK, intervalMs: 0 }, async (a) => a.port !== 2 || port2Up);
    for (let i = 0; i < 3; i++) await checker.checkAll();
    expect(pool.status().map((b) => b.up)).toEqual([true, false, true]);
    port2Up = true;
    await checker.checkAll();
    expect(pool.members[1]!.health.kind).toBe('down');
    await checker.checkAll();
    expect(pool.members[1]!.health.kind).toBe('up');
    checker.close();
  });

  describe('on fake timers', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('probes every interval, one round at a time; fall rounds take a backend down; close stops it', async () => {
      vi.useFakeTimers();
      const pool = new BackendPool(spec());
      let probes = 0;
      const checker = new HealthChecker(pool, { intervalMs: 2_000, rise: 2, fall: 3, connectTimeoutMs: 2_000 }, async (a) => {
        probes++;
        return a.port !== 3;
      });
      checker.start();
      await vi.advanceTimersByTimeAsync(1_999);
      expect(probes).toBe(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(probes).toBe(3);
      await vi.advanceTimersByTimeAsync(2_000);
      expect(pool.members[2]!.health).toEqual({ kind: 'up', failures: 2 });
      await vi.advanceTimersByTimeAsync(2_000);
      expect(pool.status().map((b) => b.up)).toEqual([true, true, false]);
      checker.close();
      await vi.advanceTimersByTimeAsync(10_000);
      expect(probes).toBe(9);
    });

    it('an interval of 0 never probes', async () => {
      vi.useFakeTimers();
      let probes = 0;
      const checker = new HealthChecker(new BackendPool(spec()), { ...DEFAULT_HEALTH_CHECK, intervalMs: 0 }, async () => {
        probes++;
        return true;
      });
      checker.start();
      await vi.advanceTimersByTimeAsync(60_000);
      expect(probes).toBe(0);
      checker.close();
    });
  });
});
