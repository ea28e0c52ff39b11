/**
 * TLS 1.3 conformance cases an independent suite found, each from hand-built
 * ClientHellos and records, each checked by the exact alert the engine sends (and
 * that the connection closes): empty alert records, legacy_version, SSLv2-format
 * hellos, the largest plaintext record, key share lengths, the retried ClientHello,
 * interleaved handshake fragments and record padding.
 */
import { describe, expect, it } from 'vitest';
import { RecordOpener, RecordSealer } from '../../src/tls/crypto/record-protection.js';
import { suiteById } from '../../src/tls/crypto/suites.js';
import { TlsServerEngine, type TlsSnapshot } from '../../src/tls/index.js';
import { ExtensionType, NamedGroup } from '../../src/tls/wire/constants.js';
import { concat, toHex } from '../../src/util/bytes.js';
import { Writer } from '../../src/util/writer.js';
import { expectAlert, expectPlainAlert } from '../helpers/alert-check.js';
import { ext, helloMessage, helloRecord, parseHelloRecord, plainRecord, withExtensions, type Extension, type HelloParts } from '../helpers/hello-editor.js';
import { applyStep, deterministicServer, recordSession, toRecordSteps, type DeterministicServer, type Step } from '../helpers/recorded-session.js';

const server = deterministicServer();
const session = await recordSession(server);
const recordSteps = toRecordSteps(session.steps);

const fresh = (srv: DeterministicServer = server): TlsServerEngine => TlsServerEngine.create(srv.config, srv.deps());

function engineAfter(steps: readonly Step[], srv: DeterministicServer = server): TlsServerEngine {
  const engine = fresh(srv);
  for (const s of steps) applyStep(engine, s);
  return engine;
}

const clientRecords = recordSteps.flatMap((s) => (s.kind === 'client' ? [s.bytes] : []));
const nodeHello = parseHelloRecord(clientRecords[0]!);
/** The step index of the client Finished (the first protected client record). */
const finishedAt = recordSteps.findIndex((s) => s.kind === 'client' && s.bytes[0] === 23);
/** The step index of the first client record after the handshake. */
const dataAt = recordSteps.findIndex((s, i) => i > finishedAt && s.kind === 'client');

function recordBytesAt(i: number): Uint8Array {
  const s = recordSteps[i];
  if (s?.kind !== 'client') throw new Error('expected a client record');
  return s.bytes;
}

/** An engine at a record boundary, and a sealer for the client's next record under its current key. */
function engineWithClientKey(steps: readonly Step[]): { engine: TlsServerEngine; sealer: RecordSealer } {
  const engine = engineAfter(steps);
  const snap = engine.snapshot();
  return { engine, sealer: new RecordSealer(suiteById(snap.negotiated!.cipherSuite)!, snap.read!.secret, Number(snap.read!.seq)) };
}
/** Waiting for the client Finished, under the client handshake key. */
const handshakeKeys = () => engineWithClientKey(recordSteps.slice(0, finishedAt));
/** Established, under the client application key. */
const applicationKeys = () => engineWithClientKey(recordSteps.slice(0, dataAt));

/** The recorded client Finished, opened: the message to split. */
function clientFinished(): { engine: TlsServerEngine; sealer: RecordSealer; finished: Uint8Array } {
  const { engine, sealer } = handshakeKeys();
  const snap = engine.snapshot();
  const record = recordBytesAt(finishedAt);
  const finished = new RecordOpener(suiteById(snap.negotiated!.cipherSuite)!, snap.read!.secret, Number(snap.read!.seq)).open(record.subarray(0, 5), record.subarray(5)).content;
  expect(finished[0]).toBe(20);
  return { engine, sealer, finished };
}

const EMPTY = new Uint8Array(0);

describe('empty alert records (RFC 8446 section 5.4)', () => {
  it('a plaintext alert record with no body, before any key, is unexpected_message', () => {
    expectPlainAlert(fresh(), Uint8Array.of(21, 3, 3, 0, 0), 'unexpected_message');
  });

  it('an empty alert under the client handshake key, with and without padding, is unexpected_message', () => {
    for (const padding of [0, 1, 200]) {
      const { engine, sealer } = handshakeKeys();
      expectAlert(engine, sealer.seal(21, EMPTY, padding), 'unexpected_message');
    }
  });

  it('an empty alert under the client application key, with and without padding, is unexpected_message', () => {
    for (const padding of [0, 1, 200]) {
      const { engine, sealer } = applicationKeys();
      expectAlert(engine, sealer.seal(21, EMPTY, padding), 'unexpected_message');
    }
  });

  it('a one-byte alert is still decode_error', () => {
    const { engine, sealer } = applicationKeys();
    expectAlert(engine, sealer.seal(21, Uint8Array.of(2)), 'decode_error');
  });
});

describe('ClientHello.legacy_version (RFC 8446 appendix D.5)', () => {
  const hex = (v: number): string => `0x${v.toString(16).padStart(4, '0')}`;

  it.each([0x0300, 0x0000, 0x0001, 0x0002, 0x0100, 0x0102, 0x0103, 0x0200, 0x0400, 0xfefd].map(hex))(
    'legacy_version %s (SSL 3.0 or below, or a major other than 3) is protocol_version despite TLS 1.3 in supported_versions',
    (name) => {
      const v = Number(name);
      expect(nodeHello.legacyVersion, 'the recorded hello is a normal one').toBe(0x0303);
      expect(ext(nodeHello, ExtensionType.supported_versions)).toBeDefined();
      expectPlainAlert(fresh(), helloRecord({ ...nodeHello, legacyVersion: v }), 'protocol_version');
    },
  );

  it.each([0x0301, 0x0302, 0x0303, 0x0304, 0x03ff].map(hex))('legacy_version %s (major 3, above SSL 3.0) is still accepted', (name) => {
    const v = Number(name);
    const engine = fresh();
    const out = engine.receive(helloRecord({ ...nodeHello, legacyVersion: v }));
    expect(out.events.filter((e) => e.type === 'alertSent')).toEqual([]);
    expect(engine.snapshot().handshake.kind).toBe('expectFinished');
  });
});

describe('SSL 2.0 compatible ClientHello (RFC 8446 appendix D.5)', () => {
  /** An SSLv2 CLIENT-HELLO (RFC 6101 appendix E.2) offering TLS 1.3 suites as 3-byte cipher specs. */
  function sslv2Hello(version: number): Uint8Array {
    const specs = [0x001301, 0x001302, 0x001303, 0x00c02f, 0x00c030, 0x00009c, 0x0000ff];
    const body = new Writer()
      .u8(1) // msg_type: CLIENT-HELLO
      .u16(version)
      .u16(3 * specs.length)
      .u16(0) // session id length
      .u16(16) // challenge length
      .bytes(new Uint8Array(specs.flatMap((s) => [s >>> 16, (s >>> 8) & 0xff, s & 0xff])))
      .bytes(new Uint8Array(16).fill(0x5a))
      .finish();
    return concat([Uint8Array.of(0x80 | (body.length >>> 8), body.length & 0xff), body]);
  }

  it('is answered with a plaintext protocol_version alert and the connection closes', () => {
    const hello = sslv2Hello(0x0303);
    expect(Array.from(hello.subarray(0, 5))).toEqual([0x80, 0x2e, 0x01, 0x03, 0x03]);
    expectPlainAlert(fresh(), hello, 'protocol_version');
    expectPlainAlert(fresh(), sslv2Hello(0x0304), 'protocol_version');
  });

  it('is refused from its first five bytes, without waiting for the "length" its v2 header would claim', () => {
    expectPlainAlert(fresh(), sslv2Hello(0x0303).subarray(0, 5), 'protocol_version');
  });
});

describe('the largest plaintext record (RFC 8446 section 5.1)', () => {
  /** `p` with a padding extension (RFC 7685) sized so the ClientHello message is `length` bytes. */
  function paddedTo(p: HelloParts, length: number): HelloParts {
    const base = withExtensions(p, [...p.extensions, { type: ExtensionType.padding, data: new Uint8Array(0) }]);
    const pad = length - helloMessage(base).length;
    expect(pad).toBeGreaterThanOrEqual(0);
    return withExtensions(p, [...p.extensions, { type: ExtensionType.padding, data: new Uint8Array(pad) }]);
  }

  it.each([16383, 16384])('a ClientHello whose record fragment is %i bytes is accepted and answered with a ServerHello', (n) => {
    expect(nodeHello.extensions.some((x) => x.type === ExtensionType.padding || x.type === ExtensionType.pre_shared_key)).toBe(false);
    const record = helloRecord(paddedTo(nodeHello, n));
    expect(record.length - 5).toBe(n);
    const engine = fresh();
    const out = engine.receive(record);
    expect(out.events.filter((e) => e.type === 'alertSent')).toEqual([]);
    expect(engine.snapshot().handshake.kind).toBe('expectFinished');
    // The first record out is the plaintext ServerHello.
    expect(Array.from(out.toClient[0]!.subarray(0, 6))).toEqual([22, 3, 3, out.toClient[0]![3], out.toClient[0]![4], 2]);
  });

  it('a ClientHello whose record fragment is 16385 bytes is record_overflow', () => {
    const record = helloRecord(paddedTo(nodeHello, 16385));
    expect(record.length - 5).toBe(16385);
    expectPlainAlert(fresh(), record, 'record_overflow');
  });

  it('a ClientHello larger than a record, over two records of 2^14 bytes and the rest, is accepted', () => {
    const message = helloMessage(paddedTo(nodeHello, 20_000));
    const engine = fresh();
    const out = engine.receive(concat([plainRecord(22, message.subarray(0, 16384)), plainRecord(22, message.subarray(16384))]));
    expect(out.events.filter((e) => e.type === 'alertSent')).toEqual([]);
    expect(engine.snapshot().handshake.kind).toBe('expectFinished');
  });
});

describe('key share lengths (RFC 8446 section 4.2.8)', () => {
  /** `nodeHello` with its key_share replaced by shares of the given groups and key_exchange lengths. */
  function withShares(shares: readonly (readonly [group: number, length: number])[]): Uint8Array {
    const data = new Writer()
      .vec(2, (w) => shares.forEach(([group, n]) => w.u16(group).vecBytes(2, new Uint8Array(n).fill(n === 65 ? 4 : 9))))
      .finish();
    return helloRecord(withExtensions(nodeHello, nodeHello.extensions.map((x) => (x.type === ExtensionType.key_share ? { type: x.type, data } : x))));
  }
  const X25519 = NamedGroup.x25519;
  const P256 = NamedGroup.secp256r1;

  it('an x25519 share with an empty key_exchange is illegal_parameter', () => {
    expectPlainAlert(fresh(), withShares([[X25519, 0]]), 'illegal_parameter');
  });

  it('an empty key_exchange is illegal_parameter even beside the good x25519 share we would pick', () => {
    const shares = ext(nodeHello, ExtensionType.key_share).data;
    const data = new Writer().vec(2, (w) => w.bytes(shares.subarray(2)).u16(P256).u16(0)).finish();
    const p = withExtensions(nodeHello, nodeHello.extensions.map((x) => (x.type === ExtensionType.key_share ? { type: x.type, data } : x)));
    expectPlainAlert(fresh(), helloRecord(p), 'illegal_parameter');
  });

  it.each([1, 31, 33, 65])('an x25519 key_exchange of %i bytes is illegal_parameter', (n) => {
    expectPlainAlert(fresh(), withShares([[X25519, n]]), 'illegal_parameter');
  });

  it.each([0, 1, 32, 33, 64, 66, 97])('a secp256r1 key_exchange of %i bytes is illegal_parameter', (n) => {
    expectPlainAlert(fresh(deterministicServer({ groups: ['secp256r1'] })), withShares([[P256, n]]), 'illegal_parameter');
  });

  it('a 65-byte secp256r1 share that is not on the curve is illegal_parameter', () => {
    expectPlainAlert(fresh(deterministicServer({ groups: ['secp256r1'] })), withShares([[P256, 65]]), 'illegal_parameter');
  });
});

describe('the ClientHello after a HelloRetryRequest (RFC 8446 section 4.1.2)', async () => {
  const retryServer = deterministicServer({ groups: ['secp256r1'] });
  const cookieServer: DeterministicServer = {
    config: retryServer.config,
    deps: () => ({ ...retryServer.deps(), helloRetryCookie: () => Uint8Array.of(0xc0, 0x0c, 0x1e) }),
  };
  const retried = await recordSession(retryServer);
  const steps = toRecordSteps(retried.steps);
  /** Steps up to (not including) the retried ClientHello, and that ClientHello. */
  const secondAt = steps.findIndex((s, i) => i > 0 && s.kind === 'client' && s.bytes[0] === 22);
  const before = steps.slice(0, secondAt);
  const second = parseHelloRecord(recordBytes(steps[secondAt]));
  const first = parseHelloRecord(recordBytes(steps[0]));

  function recordBytes(s: Step | undefined): Uint8Array {
    if (s?.kind !== 'client') throw new Error('expected a client record');
    return s.bytes;
  }
  /** An engine that sent its HelloRetryRequest after `hello1` (the recorded first hello by default). */
  function afterRetry(hello1: HelloParts = first): TlsServerEngine {
    const engine = fresh(retryServer);
    engine.receive(helloRecord(hello1));
    for (const s of before.slice(1)) applyStep(engine, s);
    expect(engine.snapshot().handshake.kind).toBe('expectRetriedClientHello');
    return engine;
  }
  function expectAccepted(engine: TlsServerEngine, hello2: HelloParts): void {
    const out = engine.receive(helloRecord(hello2));
    expect(out.events.filter((e) => e.type === 'alertSent')).toEqual([]);
    expect(engine.snapshot().handshake.kind).toBe('expectFinished');
  }
  const mapExtensions = (p: HelloParts, f: (x: Extension) => Extension | null): HelloParts =>
    withExtensions(p, p.extensions.flatMap((x) => f(x) ?? []));
  const padding = (n: number): Extension => ({ type: ExtensionType.padding, data: new Uint8Array(n) });
  const earlyData: Extension = { type: ExtensionType.early_data, data: new Uint8Array(0) };

  it('the recorded retry differs from the first hello only in key_share', () => {
    const strip = (p: HelloParts) => withExtensions(p, p.extensions.filter((x) => x.type !== ExtensionType.key_share));
    expect(toHex(helloMessage(strip(second)))).toBe(toHex(helloMessage(strip(first))));
    expectAccepted(afterRetry(), second);
  });

  it('the same extensions in another order are illegal_parameter', () => {
    const xs = second.extensions;
    const swapped = [xs[1]!, xs[0]!, ...xs.slice(2)];
    expect(swapped.slice(0, 2).some((x) => x.type === ExtensionType.key_share)).toBe(false);
    expectAlert(afterRetry(), helloRecord(withExtensions(second, swapped)), 'illegal_parameter');
  });

  it('a changed cipher_suites list (still holding the chosen suite) is illegal_parameter', () => {
    expect(second.cipherSuites.length).toBeGreaterThan(1);
    expectAlert(afterRetry(), helloRecord({ ...second, cipherSuites: [...second.cipherSuites].reverse() }), 'illegal_parameter');
    expectAlert(afterRetry(), helloRecord({ ...second, cipherSuites: [...second.cipherSuites, 0x00ff] }), 'illegal_parameter');
  });

  it('a dropped or added extension is illegal_parameter', () => {
    expectAlert(afterRetry(), helloRecord(mapExtensions(second, (x) => (x.type === ExtensionType.server_name ? null : x))), 'illegal_parameter');
    const unknown: Extension = { type: 0x7a7a, data: Uint8Array.of(1) };
    expectAlert(afterRetry(), helloRecord(withExtensions(second, [unknown, ...second.extensions])), 'illegal_parameter');
  });

  it('a changed extension body, random or legacy_session_id is illegal_parameter', () => {
    const groups = ext(second, ExtensionType.supported_groups);
    const fewer = new Writer().vec(2, (w) => w.u16(NamedGroup.secp256r1)).finish();
    expectAlert(afterRetry(), helloRecord(mapExtensions(second, (x) => (x === groups ? { type: x.type, data: fewer } : x))), 'illegal_parameter');
    expectAlert(afterRetry(), helloRecord({ ...second, random: new Uint8Array(32).fill(7) }), 'illegal_parameter');
    expectAlert(afterRetry(), helloRecord({ ...second, sessionId: new Uint8Array(32).fill(7) }), 'illegal_parameter');
  });

  it('padding added, resized or removed, and early_data removed, are allowed', () => {
    expectAccepted(afterRetry(), withExtensions(second, [...second.extensions, padding(100)]));
    const padded1 = withExtensions(first, [...first.extensions, padding(10)]);
    expectAccepted(afterRetry(padded1), withExtensions(second, [...second.extensions, padding(300)]));
    expectAccepted(afterRetry(padded1), second);
    expectAccepted(afterRetry(withExtensions(first, [...first.extensions, earlyData])), second);
  });

  it('the check survives a snapshot and restore; a snapshot from before it (no firstHello) restores and goes on unchecked', () => {
    const reordered = helloRecord(withExtensions(second, [second.extensions[1]!, second.extensions[0]!, ...second.extensions.slice(2)]));
    const snap = afterRetry().snapshot();
    expectAlert(TlsServerEngine.restore(snap, retryServer.config, retryServer.deps()), reordered, 'illegal_parameter');
    const { firstHello, ...older } = snap.handshake as Extract<TlsSnapshot['handshake'], { kind: 'expectRetriedClientHello' }>;
    expect(firstHello).toBeInstanceOf(Uint8Array);
    const engine = TlsServerEngine.restore({ ...snap, handshake: older }, retryServer.config, retryServer.deps());
    expectAccepted(engine, withExtensions(second, [second.extensions[1]!, second.extensions[0]!, ...second.extensions.slice(2)]));
  });

  it('a cookie echoed as asked is allowed (Node echoes ours)', async () => {
    const withCookie = await recordSession(cookieServer);
    expect(withCookie.output.events).toContainEqual(expect.objectContaining({ type: 'handshakeDone', helloRetry: true }));
  });

  it('an updated pre_shared_key (binder, ticket age) is allowed: a resumption through a HelloRetryRequest', async () => {
    const resumed = await recordSession(retryServer, { session: retried.sessions.at(-1)! });
    expect(resumed.output.events).toContainEqual(expect.objectContaining({ type: 'handshakeDone', helloRetry: true, resumed: true }));
  });
});

describe('handshake messages are not interleaved with other records (RFC 8446 section 5.1)', () => {
  const keyUpdate = Uint8Array.of(24, 0, 0, 1, 0);
  it('a KeyUpdate split over two records with nothing between is accepted', () => {
    const { engine, sealer } = applicationKeys();
    const out = engine.receive(concat([sealer.seal(22, keyUpdate.subarray(0, 2)), sealer.seal(22, keyUpdate.subarray(2))]));
    expect(out.events).toContainEqual({ type: 'keyUpdated', direction: 'read' });
    expect(engine.phase).toBe('established');
  });

  it('a KeyUpdate split over two records with application data between is unexpected_message', () => {
    const { engine, sealer } = applicationKeys();
    const out = engine.receive(sealer.seal(22, keyUpdate.subarray(0, 2)));
    expect(out.events).toEqual([]);
    expect(engine.snapshot().pendingHandshake.length).toBe(2);
    expectAlert(engine, concat([sealer.seal(23, Uint8Array.of(1, 2, 3)), sealer.seal(22, keyUpdate.subarray(2))]), 'unexpected_message');
  });

  it('... or an empty application data record between', () => {
    const { engine, sealer } = applicationKeys();
    engine.receive(sealer.seal(22, keyUpdate.subarray(0, 3)));
    expectAlert(engine, sealer.seal(23, EMPTY, 4), 'unexpected_message');
  });

  it('... or a warning alert (user_canceled) between', () => {
    const { engine, sealer } = applicationKeys();
    engine.receive(sealer.seal(22, keyUpdate.subarray(0, 1)));
    expectAlert(engine, sealer.seal(21, Uint8Array.of(1, 90)), 'unexpected_message');
  });

  it('a client Finished split over two records with a dummy change_cipher_spec between is unexpected_message', () => {
    const { engine, sealer, finished } = clientFinished();
    engine.receive(sealer.seal(22, finished.subarray(0, 10)));
    expectAlert(engine, concat([Uint8Array.of(20, 3, 3, 0, 1, 1), sealer.seal(22, finished.subarray(10))]), 'unexpected_message');
  });

  it('a client Finished split over two records with nothing between is accepted', () => {
    const { engine, sealer, finished } = clientFinished();
    const out = engine.receive(concat([sealer.seal(22, finished.subarray(0, 10)), sealer.seal(22, finished.subarray(10))]));
    expect(out.events.map((e) => e.type)).toContain('handshakeDone');
  });

  it('a ClientHello split over two records with a plaintext alert between is unexpected_message', () => {
    const message = helloMessage(nodeHello);
    const engine = fresh();
    engine.receive(plainRecord(22, message.subarray(0, 100)));
    expectPlainAlert(engine, concat([Uint8Array.of(21, 3, 3, 0, 2, 1, 90), plainRecord(22, message.subarray(100))]), 'unexpected_message');
  });
});

/**
 * Record padding (RFC 8446 section 5.4). The suite expects decode_error for a Finished
 * padded with 16 KiB of zeros; we cannot see its probe, so we follow the RFC: padding
 * counts towards the 2^14 + 1 bytes the full TLSInnerPlaintext may hold (5.2, 5.4), and
 * a record that decrypts to more is record_overflow (section 6.2 names that alert for a
 * plaintext over the limit). Within the limit any amount of padding is accepted and
 * the Finished is processed as usual.
 */
describe('record padding (RFC 8446 sections 5.2 and 5.4)', () => {
  const LIMIT = (1 << 14) + 1;

  it.each([1, 1000, 16_000])('a client Finished with %i bytes of padding is processed normally', (padding) => {
    const { engine, sealer, finished } = clientFinished();
    const out = engine.receive(sealer.seal(22, finished, padding));
    expect(out.events.map((e) => e.type)).toContain('handshakeDone');
    expect(engine.phase).toBe('established');
  });

  it('a client Finished padded to exactly 2^14 + 1 bytes of inner plaintext is processed normally', () => {
    const { engine, sealer, finished } = clientFinished();
    const out = engine.receive(sealer.seal(22, finished, LIMIT - finished.length - 1));
    expect(out.events.map((e) => e.type)).toContain('handshakeDone');
  });

  it('a client Finished padded to 2^14 + 2 bytes of inner plaintext is record_overflow', () => {
    const { engine, sealer, finished } = clientFinished();
    expectAlert(engine, sealer.seal(22, finished, LIMIT - finished.length), 'record_overflow');
  });

  it("the suite's probe: a client Finished and 16 KiB of zeros (inner plaintext 2^14 + 37 bytes) is record_overflow", () => {
    const { engine, sealer, finished } = clientFinished();
    const record = sealer.seal(22, finished, 16_384);
    expect(record.length - 5).toBeLessThanOrEqual((1 << 14) + 256); // within the ciphertext limit
    expectAlert(engine, record, 'record_overflow');
  });

  it('application data padded to the limit is delivered, padding stripped', () => {
    const { engine, sealer } = applicationKeys();
    const out = engine.receive(sealer.seal(23, Uint8Array.of(1, 2, 3), LIMIT - 4));
    expect(out.plaintext.map((p) => Array.from(p))).toEqual([[1, 2, 3]]);
  });
});
