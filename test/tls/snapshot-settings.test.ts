/**
 * The settings that shape a connection's record stream (KeyUpdate threshold, record
 * size limit, ticket count and lifetime) are the connection's own, carried in its
 * snapshot: a takeover onto a relay configured otherwise continues byte for byte.
 * Were they read from the restoring engine's configuration, it would seal other bytes
 * (data where the old owner sealed a KeyUpdate) under the same key and sequence
 * number: AES-GCM nonce reuse. Also: snapshots of format 2 (without the settings)
 * still restore; unknown formats are refused.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  applyRecordState,
  decodeSnapshot,
  encodeSnapshot,
  RECORD_STATE_LENGTH,
  SNAPSHOT_VERSION,
  SnapshotError,
  TlsServerEngine,
  type TlsServerConfig,
  type TlsSnapshot,
} from '../../src/tls/index.js';
import { fromHex, toHex } from '../../src/util/bytes.js';
import {
  applyStep,
  deterministicServer,
  recordSession,
  RunCollector,
  toRecordSteps,
  type DeterministicServer,
  type RunResult,
  type Step,
} from '../helpers/recorded-session.js';

/** The old owner: small records, a KeyUpdate every 3 records, one short-lived ticket more than the default. */
const OWN = { keyUpdateAfterRecords: 3, maxRecordPlaintext: 512, ticketCount: 3, ticketLifetimeSeconds: 600 } as const;
/** The relay taking over: configured otherwise in every record-shaping setting. */
const OTHER = { keyUpdateAfterRecords: 1000, maxRecordPlaintext: 16384, ticketCount: 1, ticketLifetimeSeconds: 60 } as const;

/** What the snapshot carries for OWN. */
const OWN_SETTINGS = { keyUpdateAfterRecords: 3, maxRecordPlaintext: 512, ticketCount: 3, ticketLifetimeSeconds: 600, handshakeCaps: [32, 32] };

const owner = deterministicServer(OWN);
const session = await recordSession(owner);
const steps = toRecordSteps(session.steps);
const retried = await recordSession(deterministicServer({ ...OWN, groups: ['secp256r1'] }));

/** The same deterministic dependencies, another configuration (same certificates and ticket keys). */
const reconfigured = (srv: DeterministicServer, extra: Partial<TlsServerConfig>): TlsServerConfig => ({ ...srv.config, ...extra });

/** Runs `script` on `engine`, collecting the output. */
function continueRun(engine: TlsServerEngine, script: readonly Step[]): RunResult {
  const c = new RunCollector();
  for (const step of script) c.add(applyStep(engine, step));
  return c.result();
}

function expectSameRun(actual: RunResult, expected: RunResult, what: string): void {
  expect(toHex(actual.toClient), what).toBe(toHex(expected.toClient));
  expect(toHex(actual.plaintext), what).toBe(toHex(expected.plaintext));
  expect(actual.events, what).toEqual(expected.events);
}

describe('a takeover onto a differently configured relay continues byte for byte', () => {
  it('the recording exercises the settings: KeyUpdates every 3 records, 512-byte records, 3 tickets', () => {
    const kinds = session.output.events.map((e) => (e.type === 'keyUpdated' ? `keyUpdated:${e.direction}` : e.type));
    // Far more KeyUpdates than the recording's one requested update.
    expect(kinds.filter((k) => k === 'keyUpdated:write').length).toBeGreaterThan(10);
    expect(kinds.filter((k) => k === 'keyUpdated:read').length).toBeGreaterThanOrEqual(1);
    expect(session.sessions.length).toBeGreaterThanOrEqual(1);
  });

  it('established, after a few records: the same output restored under its own or another configuration', () => {
    // After the first server send: established, records flowed both ways, the 40 KB send and the rest to come.
    const k = steps.findIndex((s) => s.kind === 'send') + 1;
    const live = TlsServerEngine.create(owner.config, owner.deps());
    continueRun(live, steps.slice(0, k));
    const snapshot = decodeSnapshot(encodeSnapshot(live.snapshot()));
    expect(snapshot.handshake.kind).toBe('established');
    expect(snapshot.write!.seq).toBeGreaterThan(0n);
    const rest = steps.slice(k);
    const same = continueRun(TlsServerEngine.restore(snapshot, owner.config, owner.deps()), rest);
    const other = continueRun(TlsServerEngine.restore(snapshot, reconfigured(owner, OTHER), owner.deps()), rest);
    // The old owner, uninterrupted.
    const reference = continueRun(live, rest);
    expectSameRun(same, reference, 'same configuration');
    expectSameRun(other, reference, 'other configuration');
    // The KeyUpdates come at the same points: every 3 records, not after 1000.
    expect(other.events.filter((e) => e.type === 'keyUpdated' && e.direction === 'write').length).toBeGreaterThan(10);
  });

  it('at every step boundary (handshake included: tickets, record sizes), restored under another configuration', () => {
    for (const rec of [session, retried]) {
      const script = toRecordSteps(rec.steps);
      const reference = continueRun(TlsServerEngine.create(rec.server.config, rec.server.deps()), script);
      for (let k = 0; k <= script.length; k++) {
        const live = TlsServerEngine.create(rec.server.config, rec.server.deps());
        const before = continueRun(live, script.slice(0, k));
        const snapshot = decodeSnapshot(encodeSnapshot(live.snapshot()));
        const after = continueRun(TlsServerEngine.restore(snapshot, reconfigured(rec.server, OTHER), rec.server.deps()), script.slice(k));
        const whole: RunResult = {
          toClient: new Uint8Array(Buffer.concat([before.toClient, after.toClient])),
          plaintext: new Uint8Array(Buffer.concat([before.plaintext, after.plaintext])),
          events: [...before.events, ...after.events],
        };
        expectSameRun(whole, reference, `cut before step ${k} of ${script.length}`);
      }
    }
  });

  it('the takeover path: a full snapshot, a delta record state after it, restoreEncoded under another configuration', () => {
    const k = steps.findIndex((s) => s.kind === 'send') + 1;
    const live = TlsServerEngine.create(owner.config, owner.deps());
    continueRun(live, steps.slice(0, k));
    const base = live.encodedSnapshot();
    const revision = live.revision;
    // Counters move, the revision does not: a relay commits a delta, not a new base.
    live.send(new Uint8Array(100).fill(7));
    expect(live.revision).toBe(revision);
    const record = new Float64Array(RECORD_STATE_LENGTH);
    live.recordState(record);
    // The settings live in the base snapshot; the delta carries them along.
    expect(applyRecordState(decodeSnapshot(base), record)).toEqual(decodeSnapshot(live.encodedSnapshot()));
    expect(decodeSnapshot(base).settings).toEqual(OWN_SETTINGS);
    const restored = TlsServerEngine.restoreEncoded(base.slice(), record, reconfigured(owner, OTHER), owner.deps());
    const rest = steps.slice(k);
    expectSameRun(continueRun(restored, rest), continueRun(live, rest), 'restoreEncoded');
  });
});

/** Fixture made by the engine before format 3 (see its `comment`). */
interface Format2Fixture {
  readonly config: Partial<TlsServerConfig>;
  readonly midHandshake: { snapshot: string; steps: FixtureStep[]; toClient: string; plaintext: string };
  readonly established: { snapshot: string; record: number[]; steps: FixtureStep[]; close: boolean; toClient: string };
}
type FixtureStep = { kind: 'client'; hex: string } | { kind: 'send'; hex: string } | { kind: 'keyUpdate'; requestPeer: boolean } | { kind: 'close' };

const fixture = JSON.parse(readFileSync(new URL('../fixtures/snapshots/format-2.json', import.meta.url), 'utf8')) as Format2Fixture;

function fixtureSteps(list: readonly FixtureStep[]): Step[] {
  return list.map((s): Step => {
    if (s.kind === 'client') return { kind: 'client', bytes: fromHex(s.hex) };
    if (s.kind === 'send') return { kind: 'send', data: fromHex(s.hex) };
    return s;
  });
}

function refusal(snapshot: TlsSnapshot): SnapshotError {
  let caught: unknown;
  try {
    TlsServerEngine.restore(snapshot, owner.config, owner.deps());
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SnapshotError);
  return caught as SnapshotError;
}

describe('snapshot formats', () => {
  const v2 = deterministicServer(fixture.config);

  it('a format 2 snapshot (mid-handshake) restores and continues with the output the engine then made', () => {
    const snapshot = decodeSnapshot(fromHex(fixture.midHandshake.snapshot));
    expect(snapshot.version).toBe(2);
    expect(snapshot.handshake.kind).toBe('expectFinished');
    const out = continueRun(TlsServerEngine.restore(snapshot, v2.config, v2.deps()), fixtureSteps(fixture.midHandshake.steps));
    expect(toHex(out.toClient)).toBe(fixture.midHandshake.toClient);
    expect(toHex(out.plaintext)).toBe(fixture.midHandshake.plaintext);
  });

  it('a format 2 snapshot (established) with a delta record state restores through restoreEncoded', () => {
    const engine = TlsServerEngine.restoreEncoded(fromHex(fixture.established.snapshot), Float64Array.from(fixture.established.record), v2.config, v2.deps());
    const out = continueRun(engine, [...fixtureSteps(fixture.established.steps), ...(fixture.established.close ? [{ kind: 'close' } as const] : [])]);
    expect(toHex(out.toClient)).toBe(fixture.established.toClient);
    // Once restored, its next snapshot is of the current format, the settings filled in.
    expect(engine.snapshot().version).toBe(SNAPSHOT_VERSION);
  });

  it('refuses an unknown (future) format version and format 1 with a SnapshotError naming the versions', () => {
    const good = TlsServerEngine.create(owner.config, owner.deps()).snapshot();
    const future = refusal({ ...good, version: SNAPSHOT_VERSION + 1 });
    expect(future.code).toBe('TLS_ERR_SNAPSHOT');
    expect(future.message).toBe(`snapshot format version ${SNAPSHOT_VERSION + 1} is not supported (this engine reads versions 2 to ${SNAPSHOT_VERSION})`);
    expect(refusal({ ...good, version: 1 }).message).toContain('version 1 is not supported');
  });

  it('refuses a current-format snapshot without its settings', () => {
    const good = TlsServerEngine.create(owner.config, owner.deps()).snapshot() as unknown as Record<string, unknown>;
    const { settings: _settings, ...without } = good;
    expect(refusal(without as unknown as TlsSnapshot).message).toContain('"settings"');
    expect(refusal({ ...good, settings: { ...(good.settings as object), keyUpdateAfterRecords: 0 } } as unknown as TlsSnapshot).message).toContain('"settings"');
  });
});
