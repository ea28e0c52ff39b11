import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ActorSystem } from '../../src/actors/index.js';
import { PROBE, TASKS } from './helpers.js';

let sys: ActorSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

function expectedHash(data: string, rounds: number): string {
  let h = data;
  for (let i = 0; i < rounds; i++) h = createHash('sha256').update(h).digest('hex');
  return h;
}

describe('piscina pool', () => {
  it('runs a task from the main thread and from a worker actor; failures are coded', async () => {
    sys = new ActorSystem({ pool: { maxThreads: 1 } });
    expect(await sys.runTask({ module: TASKS.href, fn: 'hashRounds' }, { data: 'x', rounds: 10 })).toBe(expectedHash('x', 10));
    const a = await sys.spawnWorker({ module: PROBE });
    expect(await sys.ask(a, { type: 'pool', module: TASKS.href, fn: 'hashRounds', arg: { data: 'y', rounds: 5 } }, 20_000)).toBe(
      expectedHash('y', 5),
    );
    await expect(sys.runTask({ module: TASKS.href, fn: 'fail' }, null)).rejects.toMatchObject({ code: 'BATON_ERR_POOL' });
  });
});
