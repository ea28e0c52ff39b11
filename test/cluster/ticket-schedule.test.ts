/**
 * One ticket-key schedule across nodes: the schedule's pure steps, then two and three
 * simulated nodes over one store, with tickets sealed and opened as the engine does
 * (ticket-aead.ts, session/ticket.ts). A ticket from node A opens on node B across a
 * rotation, even while B still runs the version before; rotations happen once for
 * the whole cluster.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ACTIVE_KEY, activeCodec } from '../../src/cluster/config-records.js';
import { MemoryKvStore } from '../../src/cluster/memory-kv.js';
import { advanceTicketKeys, holdsNextKey, rotationDue, scheduleTicketKeys } from '../../src/cluster/ticket-schedule.js';
import { freshTicketKeys } from '../../src/cluster/ticket-keys.js';
import { sealTicket } from '../../src/tls/crypto/ticket-aead.js';
import { encodeTicketContents, readTicket } from '../../src/tls/session/ticket.js';
import type { TicketKeys } from '../../src/tls/index.js';
import { simCluster, type SimCluster, type SimNode } from '../helpers/config-nodes.js';
import { until } from '../helpers/wait.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

let sim: SimCluster | null = null;
afterEach(async () => {
  await sim?.close();
  sim = null;
});

/** A ticket as the engine issues it, under the node's current key. */
function issue(n: SimNode, serverName: string): Uint8Array {
  const contents = { cipherSuite: 0x1301, psk: new Uint8Array(randomBytes(32)), issuedAtMs: Date.now(), lifetimeSeconds: 7200, ageAdd: 7, serverName };
  return sealTicket(n.relays.current.tls.ticketKeys.current, new Uint8Array(randomBytes(12)), encodeTicketContents(contents));
}
const opens = (n: SimNode, ticket: Uint8Array) => readTicket(n.relays.current.tls.ticketKeys, ticket)?.serverName ?? null;

describe('the schedule', () => {
  it('starts with a next key accepted but not sealing; a rotation promotes it and adds a fresh one', () => {
    const start = freshTicketKeys();
    const s = scheduleTicketKeys(start, 1_000);
    expect(s.keys.current).toBe(start.current);
    expect(s.keys.previous).toHaveLength(1);
    expect(s.schedule.nextId).toBe(hex(s.keys.previous![0]!.id));
    expect(holdsNextKey(s.keys, s.schedule)).toBe(true);
    const r = advanceTicketKeys(s.keys, s.schedule, 5_000);
    expect(hex(r.keys.current.id)).toBe(s.schedule.nextId);
    const accepted = (k: TicketKeys) => [k.current, ...(k.previous ?? [])].map((x) => hex(x.id));
    expect(accepted(r.keys)).toContain(hex(start.current.id));
    expect(r.schedule).toMatchObject({ rotatedAt: 5_000 });
    expect(accepted(r.keys)).toContain(r.schedule.nextId);
    expect(r.schedule.nextId).not.toBe(s.schedule.nextId);
    // Two rotations retire the first key.
    expect(accepted(advanceTicketKeys(r.keys, r.schedule, 9_000).keys)).not.toContain(hex(start.current.id));
    expect(rotationDue(r.schedule, 3_600_000, 5_000 + 3_599_999)).toBe(false);
    expect(rotationDue(r.schedule, 3_600_000, 5_000 + 3_600_000)).toBe(true);
  });

  it('without a next key (keys a reload brought in) a fresh key becomes current', () => {
    const keys = freshTicketKeys();
    const r = advanceTicketKeys(keys, { nextId: null, rotatedAt: 0 }, 1);
    expect(hex(r.keys.current.id)).not.toBe(hex(keys.current.id));
    expect(r.keys.previous!.map((k) => hex(k.id))).toContain(hex(keys.current.id));
  });
});

describe('tickets across nodes', () => {
  it('a ticket sealed on node A opens on node B before, during and after a rotation; two rotations retire it', async () => {
    sim = simCluster(new MemoryKvStore());
    const a = await sim.start('node-a');
    const b = await sim.start('node-b');
    const before = issue(a, 'before.example');
    expect(opens(b, before)).toBe('before.example');
    // node-b stages the rotation but activates it late: node-a seals with the new key first.
    b.relays.holdActivations();
    const r = await a.agent.rotateTicketKeys();
    expect(r).toMatchObject({ ok: true, version: 2 });
    expect(a.relays.current.version).toBe(2);
    expect(b.relays.current.version).toBe(1);
    expect(hex(a.relays.current.tls.ticketKeys.current.id)).not.toBe(hex(b.relays.current.tls.ticketKeys.current.id));
    const during = issue(a, 'during.example');
    expect(opens(b, during)).toBe('during.example');
    const fromB = issue(b, 'from-b.example');
    expect(opens(a, fromB)).toBe('from-b.example');
    expect(opens(a, before)).toBe('before.example');
    b.relays.release();
    await until('node-b on version 2', () => b.relays.current.version === 2, 5_000);
    for (const t of [before, during, fromB]) {
      expect(opens(a, t)).not.toBeNull();
      expect(opens(b, t)).not.toBeNull();
    }
    expect(hex(b.relays.current.tls.ticketKeys.current.id)).toBe(hex(a.relays.current.tls.ticketKeys.current.id));
    // A second rotation: the key of `before` retires; `during` still opens everywhere.
    expect((await b.agent.rotateTicketKeys()).ok).toBe(true);
    await until('both nodes on version 3', () => a.relays.current.version === 3 && b.relays.current.version === 3, 5_000);
    expect(opens(a, before)).toBeNull();
    expect(opens(b, before)).toBeNull();
    expect(opens(a, during)).toBe('during.example');
    expect(opens(b, during)).toBe('during.example');
  });

  it('a rotation due on three nodes at once happens once', async () => {
    let offset = 0;
    const now = () => Date.now() + offset;
    sim = simCluster(new MemoryKvStore(), { now });
    const nodes = [await sim.start('node-a'), await sim.start('node-b'), await sim.start('node-c')];
    const period = 3_600_000;
    expect(await Promise.all(nodes.map((n) => n.agent.rotateIfDue(period)))).toEqual([null, null, null]);
    offset += period;
    const results = await Promise.all(nodes.map((n) => n.agent.rotateIfDue(period)));
    const rotated = results.filter((r) => r?.ok && !r.unchanged);
    expect(rotated).toHaveLength(1);
    await until('every node on version 2', () => nodes.every((n) => n.relays.current.version === 2), 5_000);
    // Not due again for another period, whoever asks.
    expect(await Promise.all(nodes.map((n) => n.agent.rotateIfDue(period)))).toEqual([null, null, null]);
    const e = await sim.store.get(ACTIVE_KEY);
    expect(activeCodec.decode(ACTIVE_KEY, e!.value).version).toBe(2);
  });

  it('rotateTicketsEvery on every node: one rotation per period for the cluster', async () => {
    sim = simCluster(new MemoryKvStore());
    const nodes = [await sim.start('node-a'), await sim.start('node-b'), await sim.start('node-c')];
    const period = 400;
    const t0 = Date.now();
    for (const n of nodes) n.agent.rotateTicketsEvery(period);
    await until('two rotations', () => nodes.every((n) => n.relays.current.version >= 3), 10_000);
    const elapsed = Date.now() - t0;
    const rotations = nodes[0]!.relays.current.version - 1;
    expect(rotations).toBeLessThanOrEqual(Math.floor(elapsed / period) + 1);
    await until('one key everywhere', () => new Set(nodes.map((n) => hex(n.relays.current.tls.ticketKeys.current.id))).size === 1, 5_000);
  });
});
