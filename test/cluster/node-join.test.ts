/**
 * NodeJoin (node-join.ts) without NATS: attempts that fail because NATS does not answer
 * are tried again with a bounded back-off until one joins; a refusal no retry mends is
 * thrown before the node serves and handed to onFinal after; anything else at the first
 * attempt is thrown as before. Reloads and the ticket rotation follow the node: its own
 * relays until it joins, the cluster of nodes from then on.
 */
import { describe, expect, it } from 'vitest';
import type { StatusResponse } from '../../src/cluster/admin-api.js';
import { NodeJoin, faultCode, type JoinedNode, type NodeJoinOptions } from '../../src/cluster/node-join.js';
import type { RolloutResult } from '../../src/cluster/rollout.js';
import type { TlsSettings } from '../../src/relay/settings.js';
import { silentLogger } from '../../src/util/log.js';
import { until } from '../helpers/wait.js';

const coded = (code: string, message = code) => Object.assign(new Error(message), { code });
const unreachable = () => coded('BATON_ERR_NATS_UNREACHABLE', 'cannot reach NATS at nats://127.0.0.1:1: connection refused');
const ok: RolloutResult = { ok: true, version: 2, digest: 'd', unchanged: false };

/** This node's relays as NodeJoin sees them, recording what reaches them. */
function fakeLocal() {
  const calls: string[] = [];
  return {
    calls,
    local: {
      activeTls: {} as TlsSettings,
      reconfigure: async () => (calls.push('local.rollOut'), ok),
      rotateTicketsEvery: (ms: number) => void calls.push(`local.rotate ${ms}`),
      stopTicketRotation: () => void calls.push('local.stopRotation'),
      gateway: { setBackends: () => undefined },
    } as unknown as NodeJoinOptions['local'],
  };
}

/** A joined node that records its reloads, rotation and close. */
function fakeJoined(calls: string[]): JoinedNode {
  return {
    node: { nodes: async () => [], crash: async () => ({}), close: async () => void calls.push('node.close') },
    config: {
      reloadTarget: () => ({
        gateway: { setBackends: () => undefined },
        rollOut: async () => (calls.push('cluster.rollOut'), ok),
        rotateTicketsEvery: (ms: number) => void calls.push(`cluster.rotate ${ms}`),
        servingSha256: () => 'AB:CD',
      }),
      close: async () => void calls.push('config.close'),
    },
  } as unknown as JoinedNode;
}

const local: StatusResponse = {
  relays: [{ name: 'relay-0', up: true, restarts: 0 }],
  connections: { active: 0, opened: 0 },
  config: { version: 1, digest: 'x' },
} as unknown as StatusResponse;

function join(attempt: () => Promise<JoinedNode>, extra: Partial<NodeJoinOptions> = {}) {
  const { calls, local: relays } = fakeLocal();
  const finals: unknown[] = [];
  const j = new NodeJoin({
    node: 'a',
    cluster: 'c',
    nats: 'nats://127.0.0.1:1',
    local: relays,
    attempt,
    admin: () => '127.0.0.1:9901',
    log: silentLogger,
    onFinal: (e) => finals.push(e),
    backoff: { initialMs: 5, maxMs: 20 },
    ...extra,
  });
  return { j, calls, finals };
}

describe('NodeJoin', () => {
  it('joins at once when the first attempt succeeds; reloads go to every node', async () => {
    const { j, calls } = join(async () => fakeJoined(calls), { ticketRotationMs: 60_000 });
    expect(await j.start()).toBe('joined');
    expect(j.join()).toMatchObject({ joined: true, failedAttempts: 0 });
    await j.reloadTarget().rollOut((t) => t);
    expect(calls).toEqual(['local.stopRotation', 'cluster.rotate 60000', 'cluster.rollOut']);
    await j.close();
    expect(calls.slice(-2)).toEqual(['config.close', 'node.close']);
  });

  it('serves alone while NATS does not answer, then joins; its reloads and rotation move to the cluster', async () => {
    let failures = 3;
    const { j, calls } = join(async () => {
      if (failures-- > 0) throw unreachable();
      return fakeJoined(calls);
    }, { ticketRotationMs: 60_000 });
    expect(await j.start()).toBe('waiting');
    // Until it joins: its own relays, and it lists only itself.
    expect(j.join()).toMatchObject({ joined: false, cluster: 'c', nats: 'nats://127.0.0.1:1', lastError: expect.stringMatching(/cannot reach NATS/) });
    expect((await j.nodes(local)).map((n) => [n.name, n.source, n.admin])).toEqual([['a', 'self', '127.0.0.1:9901']]);
    await expect(j.crash('b', { relay: 'relay-0' } as never)).rejects.toMatchObject({ status: 503, message: expect.stringMatching(/has not joined cluster c yet/) });
    expect(j.reloadTarget().servingSha256!()).toBeUndefined();
    await until('the join', () => j.joined !== null, 5_000);
    expect(j.join()).toMatchObject({ joined: true, failedAttempts: 3 });
    expect(j.join().lastError).toBeUndefined();
    await j.reloadTarget().rollOut((t) => t);
    expect(j.reloadTarget().servingSha256!()).toBe('AB:CD');
    expect(calls).toEqual(['local.rotate 60000', 'local.stopRotation', 'cluster.rotate 60000', 'cluster.rollOut']);
    await j.close();
  });

  it('a refusal no retry mends: thrown at the first attempt, handed to onFinal after serving', async () => {
    const refused = () => coded('BATON_ERR_NATS_REFUSED', 'NATS at nats://127.0.0.1:1 refused this node');
    const first = join(async () => Promise.reject(refused()));
    await expect(first.j.start()).rejects.toMatchObject({ code: 'BATON_ERR_NATS_REFUSED' });

    let n = 0;
    // A CliError-like wrapper keeps the code on its cause.
    const late = join(async () => Promise.reject(n++ === 0 ? unreachable() : new Error('--join: taken', { cause: coded('BATON_ERR_NODE_NAME_TAKEN') })));
    expect(await late.j.start()).toBe('waiting');
    await until('onFinal', () => late.finals.length === 1, 5_000);
    expect(faultCode(late.finals[0])).toBe('BATON_ERR_NODE_NAME_TAKEN');
    expect(late.j.joined).toBeNull();
    await late.j.close();
  });

  it('other failures at the first attempt are thrown; later ones are tried again', async () => {
    const other = join(async () => Promise.reject(coded('BATON_ERR_CROSS_NODE', 'no member sealed it')));
    await expect(other.j.start()).rejects.toMatchObject({ code: 'BATON_ERR_CROSS_NODE' });

    let n = 0;
    const { j, calls } = join(async () => {
      n++;
      if (n === 1) throw unreachable();
      if (n === 2) throw coded('BATON_ERR_CROSS_NODE', 'no member sealed it');
      return fakeJoined(calls);
    });
    expect(await j.start()).toBe('waiting');
    await until('the join', () => j.joined !== null, 5_000);
    expect(n).toBe(3);
    await j.close();
  });

  it('close stops the retries, and closes a join that lands after it', async () => {
    let attempts = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { j, calls } = join(async () => {
      attempts++;
      if (attempts === 1) throw unreachable();
      await gate;
      return fakeJoined(calls);
    });
    expect(await j.start()).toBe('waiting');
    await until('the second attempt', () => attempts === 2, 5_000);
    const closing = j.close();
    release();
    await closing;
    await until('the late join closed', () => calls.includes('node.close'), 5_000);
    expect(j.joined).toBeNull();
    expect(attempts).toBe(2);
  });
});

describe('faultCode', () => {
  it('finds the code of an error or of what it wraps, skipping the CLI\'s own', () => {
    expect(faultCode(coded('BATON_ERR_KV_UNREACHABLE'))).toBe('BATON_ERR_KV_UNREACHABLE');
    expect(faultCode(Object.assign(new Error('x', { cause: unreachable() }), { code: 'BATON_ERR_CLI' }))).toBe('BATON_ERR_NATS_UNREACHABLE');
    expect(faultCode(new Error('plain'))).toBeUndefined();
    expect(faultCode('not an error')).toBeUndefined();
  });
});
