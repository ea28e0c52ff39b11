/**
 * The relay-facing engine API: the `*Into` methods writing into a caller's sink
 * (the relay's shared ring), and delta commits (`revision`, `recordState()`,
 * `applyRecordState()`). The client side is a session recorded from Node's own TLS
 * client in memory (test/helpers/recorded-session.ts), re-chunked and interleaved
 * with extra server actions by fast-check.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecordSealer } from '../../src/tls/crypto/record-protection.js';
import { suiteById } from '../../src/tls/crypto/suites.js';
import {
  applyRecordState,
  decodeSnapshot,
  encodeSnapshot,
  RECORD_STATE_LENGTH,
  RecordStateFlag,
  RecordStateIndex,
  SNAPSHOT_VERSION,
  SnapshotError,
  TlsServerEngine,
  type TlsEvent,
  type TlsSink,
  type TlsSnapshot,
} from '../../src/tls/index.js';
import { concat, toHex } from '../../src/util/bytes.js';
import { fixtureCertificates } from '../helpers/interop.js';
import {
  applyStep,
  deterministicServer,
  rechunk,
  recordSession,
  RunCollector,
  toRecordSteps,
  type DeterministicServer,
  type RecordedSession,
  type RunResult,
  type Step,
} from '../helpers/recorded-session.js';

const server = deterministicServer();
const session = await recordSession(server);
const resumed = await recordSession(server, { session: session.sessions.at(-1)! });
const retryServer = deterministicServer({ groups: ['secp256r1'] });
const retried = await recordSession(retryServer);

/** Generous: the budget is the run count, not the clock (a loaded 2-core machine is slow). */
const SLOW = { timeout: 120_000 };

// ---------------------------------------------------------------------------
// helpers

/** The ClientHello record with one extension inserted first (lengths fixed up). */
function withExtension(record: Uint8Array, type: number, data: Uint8Array): Uint8Array {
  if (record[0] !== 22 || record[5] !== 1) throw new Error('not a ClientHello record');
  let at = 9 + 2 + 32;
  at += 1 + record[at]!; // session id
  at += 2 + ((record[at]! << 8) | record[at + 1]!); // cipher suites
  at += 1 + record[at]!; // compression methods
  const extensionsLengthAt = at;
  const ext = Uint8Array.of(type >> 8, type & 0xff, data.length >> 8, data.length & 0xff, ...data);
  const out = concat([record.subarray(0, at + 2), ext, record.subarray(at + 2)]);
  const add = (pos: number, bytes: 2 | 3, n: number): void => {
    let v = 0;
    for (let k = 0; k < bytes; k++) v = (v << 8) | out[pos + k]!;
    v += n;
    for (let k = bytes - 1; k >= 0; k--, v >>>= 8) out[pos + k] = v & 0xff;
  };
  add(3, 2, ext.length);
  add(6, 3, ext.length);
  add(extensionsLengthAt, 2, ext.length);
  return out;
}

/** A deterministic filler of `n` bytes. */
const bytesOf = (n: number, salt: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + salt) & 0xff);

/**
 * A session whose ClientHello offers early data that the engine rejects: then
 * protected-looking records the engine skips against its early-data budget (the
 * recorded client Finished too: its keys no longer match), then our close.
 */
function rejectedEarlyDataSteps(rec: RecordedSession): Step[] {
  const steps = toRecordSteps(rec.steps);
  const hello = steps[0];
  if (hello?.kind !== 'client') throw new Error('the recording does not start with the ClientHello');
  const junk = [17, 300, 1, 2000, 64].map((n, i) => concat([Uint8Array.of(23, 3, 3, n >> 8, n & 0xff), bytesOf(n, i)]));
  const rest = steps.slice(1).filter((s) => s.kind === 'client').slice(0, 4);
  return [
    { kind: 'client', bytes: withExtension(hello.bytes, 42, new Uint8Array(0)) },
    { kind: 'client', bytes: concat(junk.slice(0, 2)) },
    { kind: 'send', data: bytesOf(50, 1) },
    ...rest,
    { kind: 'client', bytes: concat(junk.slice(2)) },
    { kind: 'keyUpdate', requestPeer: false },
    { kind: 'close' },
  ];
}

/** A sink like the relay's ring: one buffer for every piece, scribbled over before each reserve and after each call. */
class RingSink implements TlsSink {
  readonly buf = new Uint8Array(1 << 16);
  readonly toClientBytes: Uint8Array[] = [];
  readonly plaintextBytes: Uint8Array[] = [];
  readonly events: TlsEvent[] = [];
  /** Problems seen: a commit larger than its reservation, an offset that is not the running total. */
  readonly problems: string[] = [];
  private reserved = -1;
  private clientTotal: number;
  private appTotal: number;

  constructor(
    public engine: TlsServerEngine,
    private poison = 0xee,
  ) {
    this.clientTotal = engine.clientOffset;
    this.appTotal = engine.applicationOffset;
  }

  reserve(n: number): Uint8Array {
    this.scribble();
    this.reserved = n;
    return this.buf;
  }

  toClient(n: number): void {
    if (n !== this.reserved) this.problems.push(`toClient(${n}) after reserve(${this.reserved})`);
    if (this.engine.clientOffset !== this.clientTotal) this.problems.push(`clientOffset ${this.engine.clientOffset}, expected ${this.clientTotal}`);
    this.clientTotal += n;
    this.toClientBytes.push(this.buf.slice(0, n));
    this.reserved = -1;
  }

  toApplication(n: number): void {
    if (n > this.reserved - 17) this.problems.push(`toApplication(${n}) after reserve(${this.reserved})`);
    if (this.engine.applicationOffset !== this.appTotal) this.problems.push(`applicationOffset ${this.engine.applicationOffset}, expected ${this.appTotal}`);
    this.appTotal += n;
    this.plaintextBytes.push(this.buf.slice(0, n));
    this.reserved = -1;
  }

  event(e: TlsEvent): void {
    this.events.push(e);
  }

  scribble(): void {
    this.poison = (this.poison * 5 + 3) & 0xff;
    this.buf.fill(this.poison);
  }

  result(): RunResult {
    return { toClient: concat([new Uint8Array(0), ...this.toClientBytes]), plaintext: concat([new Uint8Array(0), ...this.plaintextBytes]), events: [...this.events] };
  }
}

/** Runs one step through the `*Into` methods, the input in scratch memory that is scribbled over afterwards. */
function applyStepInto(engine: TlsServerEngine, step: Step, sink: RingSink, scratch: Uint8Array): void {
  switch (step.kind) {
    case 'client': {
      const input = scratch.subarray(0, step.bytes.length);
      input.set(step.bytes);
      engine.receiveInto(input, sink);
      input.fill(0xa5);
      break;
    }
    case 'send': {
      const input = scratch.subarray(0, step.data.length);
      input.set(step.data);
      engine.sendInto(input, sink);
      input.fill(0x5a);
      break;
    }
    case 'keyUpdate':
      engine.keyUpdateInto(step.requestPeer, sink);
      break;
    case 'close':
      engine.closeInto(sink);
      break;
  }
  sink.scribble();
}

function expectSameRun(actual: RunResult, expected: RunResult): void {
  expect(toHex(actual.toClient)).toBe(toHex(expected.toClient));
  expect(toHex(actual.plaintext)).toBe(toHex(expected.plaintext));
  expect(actual.events).toEqual(expected.events);
}

function runCollect(srv: DeterministicServer, steps: readonly Step[]): RunResult {
  const engine = TlsServerEngine.create(srv.config, srv.deps());
  const c = new RunCollector();
  for (const step of steps) c.add(applyStep(engine, step));
  return c.result();
}

const recordState = (engine: TlsServerEngine): Float64Array => {
  const v = new Float64Array(RECORD_STATE_LENGTH);
  engine.recordState(v);
  return v;
};

// ---------------------------------------------------------------------------

describe('the *Into methods write into the caller memory', () => {
  const scenarios = [
    { name: 'full handshake', srv: server, steps: session.steps },
    { name: 'ticket resumption', srv: server, steps: resumed.steps },
    { name: 'HelloRetryRequest', srv: retryServer, steps: retried.steps },
    { name: 'rejected early data', srv: server, steps: rejectedEarlyDataSteps(session) },
  ];

  it.each(scenarios)('$name: a reused, scribbled-over ring gets the same bytes and events as receive()/send()', ({ srv, steps }) => {
    for (const chunked of [steps, toRecordSteps(steps), rechunk(steps, steps.map(() => [7, 100, 3000, 17000]))]) {
      const reference = runCollect(srv, chunked);
      const engine = TlsServerEngine.create(srv.config, srv.deps());
      const sink = new RingSink(engine);
      const scratch = new Uint8Array(1 << 17);
      for (const step of chunked) applyStepInto(engine, step, sink, scratch);
      expect(sink.problems).toEqual([]);
      expectSameRun(sink.result(), reference);
      expect(engine.clientOffset).toBe(engine.counters.bytesToClient);
      expect(engine.applicationOffset).toBe(engine.counters.plaintextReceived);
    }
  });

  it('application data records are sealed into reserve(5 + length + 17) and opened into reserve(body length)', () => {
    const steps = toRecordSteps(session.steps);
    const doneAt = steps.findIndex((s, i) => i > 0 && s.kind === 'client' && s.bytes[0] === 23);
    const engine = TlsServerEngine.create(server.config, server.deps());
    for (const step of steps.slice(0, doneAt + 1)) applyStep(engine, step);
    expect(engine.phase).toBe('established');
    const log: string[] = [];
    const buf = new Uint8Array(1 << 15);
    const sink: TlsSink = {
      reserve: (n) => (log.push(`reserve ${n}`), buf),
      toClient: (n) => void log.push(`toClient ${n}`),
      toApplication: (n) => void log.push(`toApplication ${n}`),
      event: (e) => void log.push(e.type),
    };
    engine.sendInto(bytesOf(20_000, 3), sink);
    expect(log).toEqual([`reserve ${5 + 16384 + 17}`, `toClient ${5 + 16384 + 17}`, `reserve ${5 + 3616 + 17}`, `toClient ${5 + 3616 + 17}`]);
    log.length = 0;
    const snap = engine.snapshot();
    const sealer = new RecordSealer(suiteById(snap.negotiated!.cipherSuite)!, snap.read!.secret, Number(snap.read!.seq));
    engine.receiveInto(concat([sealer.seal(23, bytesOf(1000, 1)), sealer.seal(23, bytesOf(10, 2))]), sink);
    expect(log).toEqual([`reserve ${1000 + 17}`, 'toApplication 1000', `reserve ${10 + 17}`, 'toApplication 10']);
  });
});

describe('delta state: revision, recordState() and applyRecordState()', () => {
  it('ordinary established traffic (whole records in, application data both ways) never changes the revision', () => {
    const steps = toRecordSteps(session.steps);
    const doneAt = steps.findIndex((s, i) => i > 0 && s.kind === 'client' && s.bytes[0] === 23);
    const engine = TlsServerEngine.create(server.config, server.deps());
    for (const step of steps.slice(0, doneAt + 1)) applyStep(engine, step);
    expect(engine.phase).toBe('established');
    // The recorded traffic up to the KeyUpdate.
    const traffic = steps.slice(doneAt + 1, steps.findIndex((s) => s.kind === 'keyUpdate'));
    expect(traffic.filter((s) => s.kind === 'send').length).toBeGreaterThanOrEqual(2);
    const base = engine.snapshot();
    const revision = engine.revision;
    expect(base.revision).toBe(revision);
    for (const step of traffic) {
      applyStep(engine, step);
      expect(engine.revision).toBe(revision);
    }
    // More: client records of every size, several per call, and sends of every size.
    const snap = engine.snapshot();
    const sealer = new RecordSealer(suiteById(snap.negotiated!.cipherSuite)!, snap.read!.secret, Number(snap.read!.seq));
    let received = 0;
    for (const size of [1, 2, 100, 1000, 16383, 16384]) {
      const out = engine.receive(concat([sealer.seal(23, bytesOf(size, size)), sealer.seal(23, bytesOf(7, 1))]));
      received += out.plaintext.reduce((n, p) => n + p.length, 0);
      expect(out.events).toEqual([]);
      engine.send(bytesOf(size * 3, size));
      expect(engine.revision).toBe(revision);
    }
    expect(received).toBe(1 + 2 + 100 + 1000 + 16383 + 16384 + 6 * 7);
    // Empty application data records and an empty send move nothing either.
    engine.receive(sealer.seal(23, new Uint8Array(0)));
    engine.send(new Uint8Array(0));
    expect(engine.revision).toBe(revision);
    // The whole state is the base plus the record state.
    const rs = recordState(engine);
    expect(rs[RecordStateIndex.revision]).toBe(revision);
    expect(applyRecordState(base, rs)).toEqual(engine.snapshot());
    // While a partial record is held, the state is more than the record state.
    engine.receive(sealer.seal(23, bytesOf(50, 9)).subarray(0, 30));
    expect(engine.revision).not.toBe(revision);
  });

  it('the takeover path: encodedSnapshot() is the encoded snapshot, and restoreEncoded(bytes, recordState()) continues byte for byte', () => {
    const steps = toRecordSteps(session.steps);
    const doneAt = steps.findIndex((s, i) => i > 0 && s.kind === 'client' && s.bytes[0] === 23);
    const live = TlsServerEngine.create(server.config, server.deps());
    for (const step of steps.slice(0, doneAt + 1)) applyStep(live, step);
    const bytes = live.encodedSnapshot();
    expect(bytes).toEqual(encodeSnapshot(live.snapshot()));
    const rest = steps.slice(doneAt + 1, steps.findIndex((s) => s.kind === 'keyUpdate'));
    for (const step of rest) applyStep(live, step);
    const rs = recordState(live);
    // A relay warmed up on throwaway state restores real state as if it had not been.
    TlsServerEngine.warmUp(server.config, server.deps(), 3);
    const restored = TlsServerEngine.restoreEncoded(bytes.slice(), rs, server.config, server.deps());
    expect(restored.snapshot()).toEqual(live.snapshot());
    const a = live.send(bytesOf(5000, 3));
    const b = restored.send(bytesOf(5000, 3));
    expect(Buffer.concat(b.toClient).equals(Buffer.concat(a.toClient))).toBe(true);
  });

  it('applyRecordState is pure and refuses values of another revision or out of shape', () => {
    const steps = toRecordSteps(session.steps);
    const engine = TlsServerEngine.create(server.config, server.deps());
    for (const step of steps.slice(0, 6)) applyStep(engine, step);
    const base = engine.snapshot();
    const frozen = toHex(encodeSnapshot(base));
    const rs = recordState(engine);
    const applied = applyRecordState(base, rs);
    expect(applied).not.toBe(base);
    expect(applied).toEqual(base);
    expect(toHex(encodeSnapshot(base))).toBe(frozen);
    const refuse = (values: Float64Array): void => {
      expect(() => applyRecordState(base, values)).toThrow(SnapshotError);
    };
    refuse(Float64Array.from(rs, (v, i) => (i === RecordStateIndex.revision ? v + 1 : v)));
    refuse(rs.subarray(0, RECORD_STATE_LENGTH - 1));
    refuse(Float64Array.from(rs, (v, i) => (i === RecordStateIndex.writeSeq ? 0.5 : v)));
    refuse(Float64Array.from(rs, (v, i) => (i === RecordStateIndex.bytesToClient ? -1 : v)));
    refuse(Float64Array.from(rs, (v, i) => (i === RecordStateIndex.flags ? Number.NaN : v)));
    // A direction without a key has no sequence number.
    const fresh = TlsServerEngine.create(server.config, server.deps());
    const freshRs = recordState(fresh);
    expect(freshRs[RecordStateIndex.readSeq]).toBe(-1);
    expect(freshRs[RecordStateIndex.writeSeq]).toBe(-1);
    expect(() => applyRecordState(fresh.snapshot(), Float64Array.from(freshRs, (v, i) => (i === RecordStateIndex.readSeq ? 0 : v)))).toThrow(SnapshotError);
  });

  type Action = { readonly at: number; readonly step: Step };
  const actionArb: fc.Arbitrary<Action> = fc.record({
    at: fc.nat(),
    step: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(0, 1, 100, 16384, 20000).map((n): Step => ({ kind: 'send', data: bytesOf(n, n & 0xff) })) },
      { weight: 3, arbitrary: fc.boolean().map((requestPeer): Step => ({ kind: 'keyUpdate', requestPeer })) },
      { weight: 1, arbitrary: fc.constant<Step>({ kind: 'close' }) },
    ),
  });

  /** Splits client chunks and inserts server actions at arbitrary points. */
  function script(steps: readonly Step[], splits: readonly (readonly number[])[], actions: readonly Action[]): Step[] {
    const out = rechunk(steps, splits);
    for (const a of actions) out.splice(a.at % (out.length + 1), 0, a.step);
    return out;
  }

  interface Boundary {
    readonly snapshot: TlsSnapshot;
    readonly revision: number;
    readonly record: Float64Array;
  }

  /** Runs `steps`, taking the state at every call boundary; outputs per step. */
  function boundaries(srv: DeterministicServer, steps: readonly Step[]): { at: Boundary[]; outputs: RunResult[] } {
    const engine = TlsServerEngine.create(srv.config, srv.deps());
    const at: Boundary[] = [];
    const outputs: RunResult[] = [];
    const take = () => at.push({ snapshot: engine.snapshot(), revision: engine.revision, record: recordState(engine) });
    take();
    for (const step of steps) {
      const c = new RunCollector();
      c.add(applyStep(engine, step));
      outputs.push(c.result());
      take();
    }
    return { at, outputs };
  }

  const runs = [
    { name: 'full handshake', srv: server, steps: session.steps, numRuns: 40 },
    { name: 'ticket resumption', srv: server, steps: resumed.steps, numRuns: 15 },
    { name: 'HelloRetryRequest', srv: retryServer, steps: retried.steps, numRuns: 15 },
    { name: 'rejected early data', srv: server, steps: rejectedEarlyDataSteps(session), numRuns: 25 },
  ];

  it.each(runs)(
    '$name: at every boundary, base (same revision) + recordState() is snapshot(), and a restore from it continues byte for byte',
    SLOW,
    ({ srv, steps, numRuns }) => {
      const clientSteps = steps.filter((s) => s.kind === 'client').length;
      const splitsArb = fc.array(fc.array(fc.nat({ max: 0xffff }), { maxLength: 4 }), { minLength: clientSteps, maxLength: clientSteps });
      let deltaPairs = 0;
      let movedPairs = 0;
      fc.assert(
        fc.property(splitsArb, fc.array(actionArb, { maxLength: 5 }), fc.nat(), (splits, actions, pick) => {
          const run = script(steps, splits, actions);
          const { at, outputs } = boundaries(srv, run);
          const pairs: [number, number][] = [];
          for (let i = 0; i < at.length; i++) {
            const now = at[i]!;
            expect(now.snapshot.revision).toBe(now.revision);
            expect(now.record[RecordStateIndex.revision]).toBe(now.revision);
            for (let j = 0; j < i; j++) {
              const base = at[j]!;
              if (base.revision !== now.revision) continue;
              pairs.push([j, i]);
              if (!isDeepStrictEqual(base.record, now.record)) movedPairs++;
              const applied = applyRecordState(base.snapshot, now.record);
              if (!isDeepStrictEqual(applied, now.snapshot)) expect(applied, `base at boundary ${j}, values at ${i}`).toEqual(now.snapshot);
            }
          }
          deltaPairs += pairs.length;
          if (pairs.length === 0) return;
          // Restore from a delta commit (the base through the replication encoding) and go on.
          const [j, i] = pairs[pick % pairs.length]!;
          const base = decodeSnapshot(encodeSnapshot(at[j]!.snapshot));
          const engine = TlsServerEngine.restore(applyRecordState(base, at[i]!.record), srv.config, srv.deps());
          expect(engine.revision).toBe(at[i]!.revision);
          const c = new RunCollector();
          for (const step of run.slice(i)) c.add(applyStep(engine, step));
          const expected = outputs.slice(i);
          expectSameRun(c.result(), {
            toClient: concat([new Uint8Array(0), ...expected.map((o) => o.toClient)]),
            plaintext: concat([new Uint8Array(0), ...expected.map((o) => o.plaintext)]),
            events: expected.flatMap((o) => o.events),
          });
        }),
        { seed: 0xde17a, numRuns },
      );
      // The property had something to bite on: delta pairs whose record state moved.
      expect(deltaPairs).toBeGreaterThan(numRuns);
      expect(movedPairs).toBeGreaterThan(numRuns);
    },
  );

  it('the scenarios move every entry of the record state between boundaries of one revision', () => {
    const moved = new Set<number>();
    for (const { srv, steps } of runs) {
      const records = toRecordSteps(steps);
      // Our close_notify while the client may still send: writeClosed alone.
      const doneAt = records.findIndex((s, i) => i > 0 && s.kind === 'client' && s.bytes[0] === 23);
      const closing = [...records.slice(0, doneAt + 1), { kind: 'close' } as const, ...records.slice(doneAt + 1)];
      for (const run of [records, closing]) {
        const { at } = boundaries(srv, run);
        for (let i = 1; i < at.length; i++) {
          const [a, b] = [at[i - 1]!, at[i]!];
          if (a.revision !== b.revision) continue;
          for (let k = 0; k < RECORD_STATE_LENGTH; k++) {
            if (k === RecordStateIndex.flags) {
              for (const bit of Object.values(RecordStateFlag)) if ((a.record[k]! & bit) !== (b.record[k]! & bit)) moved.add(100 + bit);
            } else if (a.record[k] !== b.record[k]) moved.add(k);
          }
        }
      }
    }
    const I = RecordStateIndex;
    const F = RecordStateFlag;
    // awaitingPeerKeyUpdate only ever changes with a key (a new revision); the others move on their own.
    expect([...moved].sort((x, y) => x - y)).toEqual(
      [I.readSeq, I.writeSeq, I.bytesFromClient, I.bytesToClient, I.plaintextSent, I.plaintextReceived, I.earlyDataBudget, 100 + F.readClosed, 100 + F.writeClosed].sort((x, y) => x - y),
    );
  });
});

describe('snapshot format 2: the handshake state no longer carries the transcript', () => {
  function midHandshake(srv: DeterministicServer, hello: Uint8Array): TlsSnapshot {
    const engine = TlsServerEngine.create(srv.config, srv.deps());
    const out = engine.receive(hello);
    expect(out.events.filter((e) => e.type === 'alertSent')).toEqual([]);
    const snap = engine.snapshot();
    expect(snap.handshake.kind).toBe('expectFinished');
    return snap;
  }

  it('mid-handshake snapshots keep their size whatever the certificate chain and ClientHello size', () => {
    const hello = toRecordSteps(session.steps)[0]!;
    if (hello.kind !== 'client') throw new Error('no ClientHello');
    // A padding extension makes the ClientHello nearly 2^14 bytes.
    const padded = withExtension(hello.bytes, 21, new Uint8Array((1 << 14) - hello.bytes.length));
    expect(padded.length).toBeGreaterThan(1 << 14);
    const certs = fixtureCertificates();
    const sizes = [
      midHandshake(server, hello.bytes),
      midHandshake(server, padded),
      midHandshake(deterministicServer({ certificates: [certs.rsa] }), hello.bytes),
      midHandshake(deterministicServer({ certificates: [certs.p384] }), hello.bytes),
    ].map((s) => encodeSnapshot(s).length);
    // Equal but for the msgpack width of the byte counters (a 16 KiB ClientHello counts more bytes).
    expect(Math.max(...sizes) - Math.min(...sizes), JSON.stringify(sizes)).toBeLessThanOrEqual(4);
    expect(sizes[0]).toBeLessThan(1024);
    const hs = midHandshake(server, hello.bytes).handshake;
    expect(Object.keys(hs).sort()).toEqual(['clientApplicationSecret', 'clientVerifyData', 'kind', 'resumptionMasterSecret']);
  });

  it('refuses a version 1 snapshot with a SnapshotError naming both versions', () => {
    expect(SNAPSHOT_VERSION).toBe(3);
    const snap = { ...TlsServerEngine.create(server.config, server.deps()).snapshot(), version: 1 };
    let caught: unknown;
    try {
      TlsServerEngine.restore(snap, server.config, server.deps());
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SnapshotError);
    expect((caught as SnapshotError).message).toBe('snapshot format version 1 is not supported (this engine reads versions 2 to 3)');
  });

  it('the resumption master secret computed with the server flight is the one the tickets use (the resumption session resumes)', () => {
    const done = resumed.output.events.find((e) => e.type === 'handshakeDone');
    expect(done).toMatchObject({ resumed: true });
  });
});
