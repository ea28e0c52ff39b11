/**
 * The caps on what a client may send during a handshake that moves nothing: dummy
 * change_cipher_spec records (RFC 8446 appendix D.4) and warning alerts (user_canceled,
 * section 6). Up to the cap each is dropped; the next is unexpected_message, announced
 * as a `limitExceeded` event. The counts are connection state: they survive a snapshot,
 * and a snapshot made before the caps restores with the restoring configuration's caps.
 */
import { describe, expect, it } from 'vitest';
import { RecordOpener, RecordSealer } from '../../src/tls/crypto/record-protection.js';
import { suiteById } from '../../src/tls/crypto/suites.js';
import { DEFAULT_HANDSHAKE_NOISE_CAP, TlsServerEngine, type TlsOutput, type TlsServerConfig, type TlsSnapshot } from '../../src/tls/index.js';
import { concat } from '../../src/util/bytes.js';
import { expectAlert, expectPlainAlert } from '../helpers/alert-check.js';
import { applyStep, deterministicServer, recordSession, toRecordSteps, type DeterministicServer } from '../helpers/recorded-session.js';

const server = deterministicServer();
const session = await recordSession(server);
const steps = toRecordSteps(session.steps);
const finishedAt = steps.findIndex((s) => s.kind === 'client' && s.bytes[0] === 23);
const helloAt = steps.findIndex((s) => s.kind === 'client');
const hello = (steps[helloAt] as { bytes: Uint8Array }).bytes;

const CCS = Uint8Array.of(20, 3, 3, 0, 1, 1);
const USER_CANCELED = Uint8Array.of(21, 3, 3, 0, 2, 1, 90);

/**
 * The recording's server with other caps: the same dependencies (its cached signatures
 * among them, so the transcript, and with it the recorded client Finished, stay valid).
 */
const withCaps = (extra: Partial<TlsServerConfig>): DeterministicServer => ({ config: { ...server.config, ...extra }, deps: server.deps });

/** An engine after the ClientHello (and the client's own dummy CCS, if it sent one): waiting for the client Finished. */
function waitingForFinished(extra: Partial<TlsServerConfig> = {}): { engine: TlsServerEngine; srv: DeterministicServer } {
  const srv = withCaps(extra);
  const engine = TlsServerEngine.create(srv.config, srv.deps());
  for (const s of steps.slice(0, finishedAt)) applyStep(engine, s);
  expect(engine.snapshot().handshake.kind).toBe('expectFinished');
  return { engine, srv };
}

/** The recorded client Finished, opened, and a sealer under the client handshake key of `engine`. */
function finishedOf(engine: TlsServerEngine): { sealer: RecordSealer; finished: Uint8Array } {
  const snap = engine.snapshot();
  const suite = suiteById(snap.negotiated!.cipherSuite)!;
  const record = (steps[finishedAt] as { bytes: Uint8Array }).bytes;
  const finished = new RecordOpener(suite, snap.read!.secret, Number(snap.read!.seq)).open(record.subarray(0, 5), record.subarray(5)).content;
  return { sealer: new RecordSealer(suite, snap.read!.secret, Number(snap.read!.seq)), finished };
}

const quiet = (out: TlsOutput) => {
  expect(out.events.filter((e) => e.type === 'alertSent' || e.type === 'closed')).toEqual([]);
  expect(out.toClient).toEqual([]);
};

/** `limitExceeded` comes right before the alertSent it causes. */
function expectLimit(out: TlsOutput, limit: string): void {
  const types = out.events.map((e) => e.type);
  const at = types.indexOf('limitExceeded');
  expect(out.events[at]).toEqual({ type: 'limitExceeded', limit });
  expect(types[at + 1]).toBe('alertSent');
}

describe('change_cipher_spec records during a handshake', () => {
  it('are dropped up to the cap (32 by default), and the handshake completes', () => {
    const { engine } = waitingForFinished({});
    const seen = engine.snapshot().handshakeSeen[0];
    expect(DEFAULT_HANDSHAKE_NOISE_CAP).toBe(32);
    for (let i = seen; i < 32; i++) quiet(engine.receive(CCS));
    expect(engine.snapshot().handshakeSeen).toEqual([32, 0]);
    const out = engine.receive((steps[finishedAt] as { bytes: Uint8Array }).bytes);
    expect(out.events.map((e) => e.type)).toContain('handshakeDone');
  });

  it('one past the cap is unexpected_message, protected under the handshake key, with a limitExceeded event', () => {
    const { engine } = waitingForFinished({});
    for (let i = engine.snapshot().handshakeSeen[0]; i < 32; i++) quiet(engine.receive(CCS));
    expectLimit(expectAlert(engine, CCS, 'unexpected_message'), 'handshakeChangeCipherSpecs');
  });

  it('a configured cap holds: 3 taken, the 4th refused, all in one receive call', () => {
    const { engine } = waitingForFinished({ maxHandshakeChangeCipherSpecs: 3 });
    const seen = engine.snapshot().handshakeSeen[0];
    const out = expectAlert(engine, concat(Array.from({ length: 4 - seen }, () => CCS)), 'unexpected_message');
    expectLimit(out, 'handshakeChangeCipherSpecs');
  });

  it('the count is connection state: it survives a snapshot and restore', () => {
    const { engine, srv } = waitingForFinished({ maxHandshakeChangeCipherSpecs: 10 });
    for (let i = engine.snapshot().handshakeSeen[0]; i < 6; i++) quiet(engine.receive(CCS));
    const restored = TlsServerEngine.restore(engine.snapshot(), srv.config, srv.deps());
    for (let i = 6; i < 10; i++) quiet(restored.receive(CCS));
    expectLimit(expectAlert(restored, CCS, 'unexpected_message'), 'handshakeChangeCipherSpecs');
  });

  it('the cap is the connection\'s own: a relay configured otherwise that restores it keeps it', () => {
    const { engine } = waitingForFinished({ maxHandshakeChangeCipherSpecs: 2 });
    const other = withCaps({ maxHandshakeChangeCipherSpecs: 1000 });
    const restored = TlsServerEngine.restore(engine.snapshot(), other.config, other.deps());
    expect(restored.snapshot().settings.handshakeCaps).toEqual([2, 32]);
    for (let i = restored.snapshot().handshakeSeen[0]; i < 2; i++) quiet(restored.receive(CCS));
    expectAlert(restored, CCS, 'unexpected_message');
  });

  it('a snapshot made before the caps restores with the restoring configuration\'s caps and nothing counted', () => {
    const { engine } = waitingForFinished({});
    const { handshakeSeen: _seen, ...rest } = engine.snapshot();
    const { handshakeCaps: _caps, ...settings } = rest.settings;
    const old = { ...rest, settings } as unknown as TlsSnapshot;
    const strict = withCaps({ maxHandshakeChangeCipherSpecs: 1 });
    const restored = TlsServerEngine.restore(old, strict.config, strict.deps());
    expect(restored.snapshot().handshakeSeen).toEqual([0, 0]);
    expect(restored.snapshot().settings.handshakeCaps).toEqual([1, 32]);
    quiet(restored.receive(CCS));
    expectAlert(restored, CCS, 'unexpected_message');
  });
});

describe('warning alerts during a handshake', () => {
  it('before the ClientHello: 32 user_canceled are dropped, the 33rd is unexpected_message in the clear', () => {
    const engine = TlsServerEngine.create(server.config, server.deps());
    for (let i = 0; i < 32; i++) {
      const out = engine.receive(USER_CANCELED);
      expect(out.events).toEqual([{ type: 'alertReceived', alert: 'user_canceled' }]);
    }
    expect(engine.snapshot().handshakeSeen).toEqual([0, 32]);
    expectPlainAlert(engine, USER_CANCELED, 'unexpected_message');
  });

  it('the count runs on through the handshake: plaintext before the ClientHello, protected after it', () => {
    const srv = withCaps({ maxHandshakeWarningAlerts: 4 });
    const engine = TlsServerEngine.create(srv.config, srv.deps());
    engine.receive(concat([USER_CANCELED, USER_CANCELED]));
    for (const s of steps.slice(helloAt, finishedAt)) applyStep(engine, s);
    const { sealer } = finishedOf(engine);
    quiet(engine.receive(concat([sealer.seal(21, Uint8Array.of(1, 90)), sealer.seal(21, Uint8Array.of(1, 90))])));
    expect(engine.snapshot().handshakeSeen[1]).toBe(4);
    expectLimit(expectAlert(engine, sealer.seal(21, Uint8Array.of(1, 90)), 'unexpected_message'), 'handshakeWarningAlerts');
  });

  it('a cap of 0 refuses the first one', () => {
    const srv = withCaps({ maxHandshakeWarningAlerts: 0 });
    expectPlainAlert(TlsServerEngine.create(srv.config, srv.deps()), USER_CANCELED, 'unexpected_message');
  });

  it('after the handshake they are not counted', () => {
    const { engine } = waitingForFinished({ maxHandshakeWarningAlerts: 1 });
    const { sealer, finished } = finishedOf(engine);
    engine.receive(sealer.seal(22, finished));
    expect(engine.phase).toBe('established');
    // Under the client application key now: rebuilt from the snapshot.
    const snap = engine.snapshot();
    const app = new RecordSealer(suiteById(snap.negotiated!.cipherSuite)!, snap.read!.secret, Number(snap.read!.seq));
    for (let i = 0; i < 3; i++) expect(engine.receive(app.seal(21, Uint8Array.of(1, 90))).events).toEqual([{ type: 'alertReceived', alert: 'user_canceled' }]);
    expect(engine.phase).toBe('established');
  });
});

it('the ClientHello fixture is a plaintext handshake record', () => {
  expect(hello[0]).toBe(22);
});
