/**
 * Snapshot and restore: an engine restored from `snapshot()` (through the
 * msgpackr replication encoding) at any call boundary continues byte for byte
 * as if it had never stopped. The client side is a session recorded from
 * Node's own TLS client in memory (test/helpers/recorded-session.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeSnapshot,
  encodeSnapshot,
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  SnapshotError,
  TlsServerEngine,
  type TlsSnapshot,
} from '../../src/tls/index.js';
import { toHex } from '../../src/util/bytes.js';
import {
  applyStep,
  deterministicServer,
  rechunk,
  recordSession,
  RunCollector,
  runSteps,
  SESSION_MESSAGES,
  toRecordSteps,
  type DeterministicServer,
  type RecordedSession,
  type RunResult,
  type Step,
} from '../helpers/recorded-session.js';

const server = deterministicServer();
const session = await recordSession(server);
/** Sessions that exercise other handshake shapes: a ticket resumption and a HelloRetryRequest. */
const resumed = await recordSession(server, { session: session.sessions.at(-1)! });
const retried = await recordSession(deterministicServer({ groups: ['secp256r1'] }));

/** Generous: the budget is the run count, not the clock (a loaded 2-core machine is slow). */
const SLOW = { timeout: 60_000 };

/** Through the replication channel's encoding and back. */
function roundTrip(engine: TlsServerEngine): TlsSnapshot {
  return decodeSnapshot(encodeSnapshot(engine.snapshot()));
}

/** Runs `steps`, replacing the engine by a restored copy before each step index in `cuts`. */
function runWithRestores(
  steps: readonly Step[],
  cuts: ReadonlySet<number>,
  srv: DeterministicServer = server,
): RunResult & { restores: number } {
  let engine = TlsServerEngine.create(srv.config, srv.deps());
  const c = new RunCollector();
  let restores = 0;
  for (let i = 0; i <= steps.length; i++) {
    if (cuts.has(i)) {
      engine = TlsServerEngine.restore(roundTrip(engine), srv.config, srv.deps());
      restores++;
    }
    if (i < steps.length) c.add(applyStep(engine, steps[i]!));
  }
  return { ...c.result(), restores };
}

function expectSameRun(actual: RunResult, expected: RunResult): void {
  // Hex keeps a mismatch readable and compares by value, not by Buffer/Uint8Array identity.
  expect(toHex(actual.toClient)).toBe(toHex(expected.toClient));
  expect(toHex(actual.plaintext)).toBe(toHex(expected.plaintext));
  expect(actual.events).toEqual(expected.events);
}

function clientSteps(steps: readonly Step[]): number {
  return steps.filter((s) => s.kind === 'client').length;
}

describe('the recorded sessions', () => {
  it('cover the handshake, data both ways, a requested KeyUpdate and close both ways', () => {
    for (const rec of [session, resumed, retried]) {
      const kinds = rec.output.events.map((e) => (e.type === 'keyUpdated' ? `keyUpdated:${e.direction}` : e.type));
      expect(kinds).toEqual(['handshakeDone', 'keyUpdated:write', 'keyUpdated:read', 'peerClosed', 'closed']);
      expect(rec.steps.map((s) => s.kind)).toEqual(expect.arrayContaining(['client', 'send', 'keyUpdate', 'close']));
      const m = SESSION_MESSAGES;
      expect(toHex(rec.output.plaintext)).toBe(toHex(Buffer.concat([m.clientHello, m.clientAfterUpdate, m.clientLarge])));
      expect(toHex(rec.clientReceived)).toBe(toHex(Buffer.concat([m.serverReply, m.serverLarge, m.serverAfterUpdate])));
    }
    // The large messages span several records.
    expect(SESSION_MESSAGES.serverLarge.length).toBeGreaterThan(1 << 14);
    expect(SESSION_MESSAGES.clientLarge.length).toBeGreaterThan(1 << 14);
    const done = (rec: RecordedSession) => rec.output.events.find((e) => e.type === 'handshakeDone');
    expect(done(session)).toMatchObject({ resumed: false, helloRetry: false });
    expect(done(resumed)).toMatchObject({ resumed: true, helloRetry: false });
    expect(done(retried)).toMatchObject({ resumed: false, helloRetry: true, group: 'secp256r1' });
  });

  it('are valid scripts: a fresh engine reproduces the recorded output byte for byte', () => {
    for (const rec of [session, resumed, retried]) {
      expectSameRun(runSteps(rec.server, rec.steps), rec.output);
      expectSameRun(runSteps(rec.server, toRecordSteps(rec.steps)), rec.output);
    }
  });
});

describe.each([
  { name: 'full handshake', rec: session, numRuns: 100, piece: 11 },
  { name: 'ticket resumption', rec: resumed, numRuns: 30, piece: 251 },
  { name: 'HelloRetryRequest', rec: retried, numRuns: 30, piece: 251 },
])('snapshot and restore at arbitrary points ($name)', ({ rec, numRuns, piece }) => {
  /** Per client step, up to four split offsets (taken modulo the chunk length). */
  const splitsArb = () =>
    fc.array(fc.array(fc.nat({ max: 0xffff }), { maxLength: 4 }), {
      minLength: clientSteps(rec.steps),
      maxLength: clientSteps(rec.steps),
    });

  it('one cut: restored output equals the uninterrupted run', SLOW, () => {
    fc.assert(
      fc.property(splitsArb(), fc.nat(), (splits, cutSeed) => {
        const steps = rechunk(rec.steps, splits);
        const k = cutSeed % (steps.length + 1);
        const reference = runWithRestores(steps, new Set(), rec.server);
        const restored = runWithRestores(steps, new Set([k]), rec.server);
        expect(restored.restores).toBe(1);
        expectSameRun(restored, reference);
        expect(reference.events.at(-1)).toEqual({ type: 'closed', error: false });
      }),
      { seed: 0x5eed, numRuns },
    );
  });

  it('several cuts in one run: every restore continues byte for byte', SLOW, () => {
    fc.assert(
      fc.property(splitsArb(), fc.uniqueArray(fc.nat(), { minLength: 2, maxLength: 8 }), (splits, cutSeeds) => {
        const steps = rechunk(rec.steps, splits);
        const cuts = new Set(cutSeeds.map((c) => c % (steps.length + 1)));
        const reference = runWithRestores(steps, new Set(), rec.server);
        expectSameRun(runWithRestores(steps, cuts, rec.server), reference);
      }),
      { seed: 0xc075, numRuns: Math.ceil(numRuns / 2) },
    );
  });

  it(`a restore before every step, with the client bytes in ${piece}-byte pieces`, SLOW, () => {
    const steps = rechunk(
      rec.steps,
      rec.steps.filter((s) => s.kind === 'client').map((s) => Array.from({ length: Math.ceil(s.bytes.length / piece) }, (_, i) => i * piece)),
    );
    const restored = runWithRestores(steps, new Set(steps.map((_, i) => i)), rec.server);
    expect(restored.restores).toBe(steps.length);
    expectSameRun(restored, rec.output);
  });

  it('a cut before every server action (send, keyUpdate, close): the restored engine takes it', () => {
    const cuts = new Set(rec.steps.flatMap((s, i) => (s.kind === 'client' ? [] : [i])));
    expect(cuts.size).toBeGreaterThanOrEqual(4);
    expectSameRun(runWithRestores(rec.steps, cuts, rec.server), rec.output);
  });
});

describe('restore', () => {
  it('refuses a snapshot of an unknown version with a SnapshotError naming the version', () => {
    const engine = TlsServerEngine.create(server.config, server.deps());
    const snap = { ...engine.snapshot(), version: 99 };
    let caught: unknown;
    try {
      TlsServerEngine.restore(snap, server.config, server.deps());
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SnapshotError);
    expect((caught as SnapshotError).code).toBe('TLS_ERR_SNAPSHOT');
    expect((caught as SnapshotError).message).toContain('99');
  });

  it('refuses things that are not snapshots', () => {
    for (const bogus of [null, undefined, 42, 'snapshot', {}, { format: 'other', version: SNAPSHOT_VERSION }, []]) {
      let caught: unknown;
      try {
        TlsServerEngine.restore(bogus as unknown as TlsSnapshot, server.config, server.deps());
      } catch (err) {
        caught = err;
      }
      expect(caught, String(bogus)).toBeInstanceOf(SnapshotError);
      expect((caught as SnapshotError).code).toBe('TLS_ERR_SNAPSHOT');
    }
  });

  it('refuses a snapshot that has the right format and version but not the state (SnapshotError, not a TypeError later)', () => {
    const good = TlsServerEngine.create(server.config, server.deps()).snapshot();
    const malformed: [string, unknown][] = [
      ['format and version only', { format: SNAPSHOT_FORMAT, version: SNAPSHOT_VERSION }],
      ['unknown handshake state', { ...good, handshake: { kind: 'bogus' } }],
      ['pendingRecord missing', { ...good, pendingRecord: undefined }],
    ];
    const wrong: string[] = [];
    for (const [what, snap] of malformed) {
      let caught: unknown = null;
      let engine: TlsServerEngine | null = null;
      try {
        engine = TlsServerEngine.restore(snap as TlsSnapshot, server.config, server.deps());
      } catch (err) {
        caught = err;
      }
      if (caught instanceof SnapshotError) continue;
      if (caught) {
        wrong.push(`${what}: restore threw ${String(caught)}`);
        continue;
      }
      // Accepted: the engine must then at least keep its contract (receive never throws).
      try {
        engine!.receive(Uint8Array.of(22, 3, 1, 0, 1, 1));
        wrong.push(`${what}: restore accepted it (phase ${String(engine!.phase)})`);
      } catch (err) {
        wrong.push(`${what}: restore accepted it and receive() then threw ${String(err)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('refuses truncated snapshot bytes with a SnapshotError', () => {
    const bytes = encodeSnapshot(TlsServerEngine.create(server.config, server.deps()).snapshot());
    expect(() => decodeSnapshot(bytes.subarray(0, bytes.length - 3))).toThrow(SnapshotError);
  });

  it('a snapshot taken before the ClientHello restores and completes the session', () => {
    const fresh = TlsServerEngine.create(server.config, server.deps());
    const snap = roundTrip(fresh);
    expect(snap.format).toBe(SNAPSHOT_FORMAT);
    expect(snap.version).toBe(SNAPSHOT_VERSION);
    expect(snap.handshake.kind).toBe('expectClientHello');
    const engine = TlsServerEngine.restore(snap, server.config, server.deps());
    const c = new RunCollector();
    for (const step of session.steps) c.add(applyStep(engine, step));
    expectSameRun(c.result(), session.output);
    expect(engine.phase).toBe('closed');
  });

  it('a snapshot taken mid-handshake (server flight sent, client Finished not yet received) restores and completes', () => {
    const steps = toRecordSteps(session.steps);
    // The first protected client record is the client Finished; cut right before it.
    const finishedAt = steps.findIndex((s) => s.kind === 'client' && s.bytes[0] === 23);
    expect(finishedAt).toBeGreaterThan(0);
    const first = TlsServerEngine.create(server.config, server.deps());
    const c = new RunCollector();
    for (const step of steps.slice(0, finishedAt)) c.add(applyStep(first, step));
    const snap = roundTrip(first);
    expect(snap.handshake.kind).toBe('expectFinished');
    expect(first.phase).toBe('handshaking');
    const engine = TlsServerEngine.restore(snap, server.config, server.deps());
    for (const step of steps.slice(finishedAt)) c.add(applyStep(engine, step));
    expectSameRun(c.result(), session.output);
    expect(c.result().events[0]?.type).toBe('handshakeDone');
  });

  it('a snapshot with a partial handshake message buffered (ClientHello split over two records) restores and completes', () => {
    const [first, ...rest] = toRecordSteps(session.steps);
    if (first?.kind !== 'client') throw new Error('the recording does not start with the client');
    const message = first.bytes.subarray(5);
    const part = (b: Uint8Array) => Uint8Array.from([22, 3, 1, b.length >> 8, b.length & 0xff, ...b]);
    const engine = TlsServerEngine.create(server.config, server.deps());
    const c = new RunCollector();
    c.add(engine.receive(part(message.subarray(0, 100))));
    const snap = roundTrip(engine);
    expect(snap.pendingHandshake.length).toBe(100);
    const restored = TlsServerEngine.restore(snap, server.config, server.deps());
    c.add(restored.receive(part(message.subarray(100))));
    for (const step of rest) c.add(applyStep(restored, step));
    expectSameRun(c.result(), session.output);
  });

  it('survives msgpackr encoding: bigint sequence numbers, bytes, counters and pending data', () => {
    const steps = toRecordSteps(session.steps);
    // Stop inside the run: established, after several records each way and a KeyUpdate.
    const engine = TlsServerEngine.create(server.config, server.deps());
    const kuAt = steps.findIndex((s) => s.kind === 'keyUpdate');
    for (const step of steps.slice(0, kuAt + 2)) applyStep(engine, step);
    // Leave a partial record buffered too.
    const next = steps.slice(kuAt + 2).find((s) => s.kind === 'client');
    if (next?.kind !== 'client') throw new Error('the recording has no client record after the KeyUpdate');
    engine.receive(next.bytes.subarray(0, 9));

    const before = engine.snapshot();
    const after = decodeSnapshot(encodeSnapshot(before));
    expect(typeof after.write?.seq).toBe('bigint');
    expect(typeof after.read?.seq).toBe('bigint');
    expect(after.write?.seq).toBe(before.write?.seq);
    expect(after.read?.seq).toBe(before.read?.seq);
    expect(before.write!.seq).toBeGreaterThan(0n);
    expect(before.write!.generation).toBe(1);
    expect(toHex(after.write!.secret)).toBe(toHex(before.write!.secret));
    expect(toHex(after.read!.secret)).toBe(toHex(before.read!.secret));
    expect(toHex(after.seed!)).toBe(toHex(before.seed!));
    expect(toHex(after.pendingRecord)).toBe(toHex(next.bytes.subarray(0, 9)));
    expect(after.counters).toEqual(before.counters);
    expect(after.negotiated).toEqual({ ...before.negotiated, clientRandom: expect.anything() });
    expect(toHex(after.negotiated!.clientRandom)).toBe(toHex(before.negotiated!.clientRandom));

    // And it still continues: the rest of the record and the remaining steps.
    const restored = TlsServerEngine.restore(after, server.config, server.deps());
    expect(restored.counters).toEqual(engine.counters);
    const a = new RunCollector();
    const b = new RunCollector();
    const rest: Step[] = [{ kind: 'client', bytes: next.bytes.subarray(9) }, ...steps.slice(steps.indexOf(next) + 1)];
    for (const step of rest) {
      a.add(applyStep(engine, step));
      b.add(applyStep(restored, step));
    }
    expectSameRun(b.result(), a.result());
    expect(restored.counters).toEqual(engine.counters);
  });

  it('a snapshot is independent of the engine it came from', () => {
    const engine = TlsServerEngine.create(server.config, server.deps());
    const steps = toRecordSteps(session.steps);
    applyStep(engine, steps[0]!);
    const snap = engine.snapshot();
    const frozen = toHex(encodeSnapshot(snap));
    for (const step of steps.slice(1)) applyStep(engine, step);
    expect(toHex(encodeSnapshot(snap))).toBe(frozen);
  });
});
