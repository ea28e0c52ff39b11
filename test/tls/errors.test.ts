/**
 * The one failure table (src/tls/errors.ts, issue 12): every reason maps to a fatal alert
 * of RFC 8446 section 6, once; every throw site in src/tls names a reason of the table
 * (so none picks an alert of its own) and every reason has a site; and malformed input
 * ends with the code that names what was wrong, on the alert the wire has always carried.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RecordSealer } from '../../src/tls/crypto/record-protection.js';
import { suiteById } from '../../src/tls/crypto/suites.js';
import {
  AlertDescription,
  alertFor,
  FAILURE_ALERTS,
  failureCode,
  failureReasonOf,
  SnapshotError,
  TlsConfigError,
  TlsError,
  TlsServerEngine,
  type AlertName,
  type FailureReason,
  type TlsErrorCode,
  type TlsOutput,
} from '../../src/tls/index.js';
import { ExtensionType, NamedGroup } from '../../src/tls/wire/constants.js';
import { concat } from '../../src/util/bytes.js';
import { DecodeError } from '../../src/util/reader.js';
import { Writer } from '../../src/util/writer.js';
import { expectAlert, expectPlainAlert } from '../helpers/alert-check.js';
import { helloRecord, parseHelloRecord, plainRecord, withExtensions, type HelloParts } from '../helpers/hello-editor.js';
import { applyStep, deterministicServer, recordSession, toRecordSteps, type DeterministicServer, type Step } from '../helpers/recorded-session.js';

const TLS = fileURLToPath(new URL('../../src/tls/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

const reasons = Object.keys(FAILURE_ALERTS) as FailureReason[];

describe('the failure table', () => {
  it('maps every reason to a fatal alert of RFC 8446 section 6', () => {
    expect(reasons.length).toBeGreaterThan(60);
    for (const reason of reasons) {
      const alert: string = FAILURE_ALERTS[reason];
      expect(Object.keys(AlertDescription), reason).toContain(alert);
      // close_notify and user_canceled end nothing in error: no failure answers with them.
      expect(['close_notify', 'user_canceled'], reason).not.toContain(alert);
      expect(reason, 'reasons are snake_case').toMatch(/^[a-z0-9]+(_[a-z0-9]+)*$/);
    }
  });

  it('lists each reason once in its source, and their codes are distinct from each other and from the other TLS codes', () => {
    const text = readFileSync(join(TLS, 'errors.ts'), 'utf8');
    const table = /export const FAILURE_ALERTS = \{\n([\s\S]*?)\n\} as const/.exec(text)?.[1];
    expect(table).toBeDefined();
    const keys = [...table!.matchAll(/^ {2}([a-z0-9_]+): '([a-z_]+)',$/gm)].map((m) => m[1]!);
    const entries = table!.split('\n').filter((l) => !/^\s*\/\//.test(l));
    expect(keys.length, 'every entry line is `reason: alert`').toBe(entries.length);
    expect(keys).toEqual(reasons);
    expect(new Set(keys).size).toBe(keys.length);
    const codes = reasons.map(failureCode);
    expect(new Set(codes).size).toBe(codes.length);
    expect(codes).not.toContain(new SnapshotError('x').code);
    expect(codes).not.toContain(new TlsConfigError('x').code);
    // The check sees a repeated key where there is one.
    const twice = "  key_share_empty: 'illegal_parameter',\n  key_share_empty: 'decode_error',";
    const found = [...twice.matchAll(/^ {2}([a-z0-9_]+): '([a-z_]+)',$/gm)].map((m) => m[1]!);
    expect(new Set(found).size).toBeLessThan(found.length);
  });

  it('is where every throw site in src/tls gets its alert: each names a reason of the table, and each reason has a site', () => {
    const site = /new (TlsError|TlsLimitError)\(\s*(?:'(\w+)',\s*)?'(\w+)'/g;
    const named = new Set<string>();
    let sites = 0;
    for (const file of sources(TLS)) {
      const text = readFileSync(file, 'utf8');
      const all = text.match(/new (TlsError|TlsLimitError)\(/g)?.length ?? 0;
      const matched = [...text.matchAll(site)];
      // A site whose reason is not a literal would escape this check.
      expect(matched.length, `${relative(TLS, file)}: every site names its reason as a literal`).toBe(all);
      for (const m of matched) {
        const reason = m[1] === 'TlsLimitError' ? m[3]! : m[2] === undefined ? m[3]! : m[2];
        expect(reasons, `${relative(TLS, file)}: ${m[0]}`).toContain(reason);
        named.add(reason);
        sites++;
      }
    }
    expect(sites).toBeGreaterThanOrEqual(64);
    // Two reasons have no throw site: failureReasonOf gives them to errors that are not TlsErrors.
    const unused = reasons.filter((r) => !named.has(r));
    expect(unused.sort()).toEqual(['internal_failure', 'malformed_message']);
  });
});

describe('TlsError', () => {
  it('takes its alert from the table and its code from its reason; the message is `<alert>: <detail>`', () => {
    const err = new TlsError('key_share_empty', 'empty key_exchange');
    expect(err).toMatchObject({ name: 'TlsError', reason: 'key_share_empty', alert: 'illegal_parameter', code: 'TLS_ERR_KEY_SHARE_EMPTY' });
    expect(err.message).toBe('illegal_parameter: empty key_exchange');
    expect(new TlsError('empty_alert_record').message).toBe('unexpected_message: empty alert record');
  });

  it('gives errors that are not TlsErrors a reason too: a DecodeError is malformed_message, anything else internal_failure', () => {
    expect(failureReasonOf(new DecodeError('truncated random'))).toBe('malformed_message');
    expect(alertFor(new DecodeError('truncated random'))).toBe('decode_error');
    expect(failureReasonOf(new RangeError('a bug'))).toBe('internal_failure');
    expect(alertFor('not even an Error')).toBe('internal_error');
    expect(alertFor(new TlsError('hrr_client_hello_mismatch'))).toBe('illegal_parameter');
  });
});

// ---- the codes of malformed input, end to end ----

const server = deterministicServer();
const session = await recordSession(server);
const recordSteps = toRecordSteps(session.steps);
const nodeHello = parseHelloRecord((recordSteps[0] as Extract<Step, { kind: 'client' }>).bytes);
const fresh = (srv: DeterministicServer = server): TlsServerEngine => TlsServerEngine.create(srv.config, srv.deps());

/** The one alertSent of `out`: its alert and code. */
function sent(out: TlsOutput): { alert: AlertName; code: TlsErrorCode; reason: string } {
  const events = out.events.flatMap((e) => (e.type === 'alertSent' ? [e] : []));
  expect(events).toHaveLength(1);
  return events[0]!;
}

/** `bytes` to a fresh engine: the plaintext `alert` on the wire, and `code` in its alertSent event. */
function expectPlainFailure(bytes: Uint8Array, alert: AlertName, code: TlsErrorCode): void {
  const got = sent(expectPlainAlert(fresh(), bytes, alert));
  expect(got.code).toBe(code);
  expect(got.reason.startsWith(`${alert}: `)).toBe(true);
}

const keyShares = (shares: readonly (readonly [group: number, key: Uint8Array])[]): Uint8Array =>
  new Writer().vec(2, (w) => shares.forEach(([group, key]) => w.u16(group).vecBytes(2, key))).finish();
const withKeyShare = (p: HelloParts, data: Uint8Array): HelloParts =>
  withExtensions(p, p.extensions.map((x) => (x.type === ExtensionType.key_share ? { type: x.type, data } : x)));

describe('malformed input carries the code of its reason, on the alert it always had', () => {
  it('an empty x25519 key_exchange: TLS_ERR_KEY_SHARE_EMPTY, illegal_parameter', () => {
    const hello = helloRecord(withKeyShare(nodeHello, keyShares([[NamedGroup.x25519, new Uint8Array(0)]])));
    expectPlainFailure(hello, 'illegal_parameter', 'TLS_ERR_KEY_SHARE_EMPTY');
  });

  it('an x25519 key_exchange of 31 bytes: TLS_ERR_X25519_KEY_SHARE_WRONG_LENGTH, illegal_parameter', () => {
    const hello = helloRecord(withKeyShare(nodeHello, keyShares([[NamedGroup.x25519, new Uint8Array(31).fill(9)]])));
    expectPlainFailure(hello, 'illegal_parameter', 'TLS_ERR_X25519_KEY_SHARE_WRONG_LENGTH');
  });

  it('two shares for one group: TLS_ERR_KEY_SHARE_DUPLICATE_GROUP; a repeated extension: TLS_ERR_DUPLICATE_EXTENSION', () => {
    const share = new Uint8Array(32).fill(9);
    const twoShares = helloRecord(withKeyShare(nodeHello, keyShares([[NamedGroup.x25519, share], [NamedGroup.x25519, share]])));
    expectPlainFailure(twoShares, 'illegal_parameter', 'TLS_ERR_KEY_SHARE_DUPLICATE_GROUP');
    const repeated = nodeHello.extensions[0]!;
    expectPlainFailure(helloRecord(withExtensions(nodeHello, [repeated, ...nodeHello.extensions])), 'illegal_parameter', 'TLS_ERR_DUPLICATE_EXTENSION');
  });

  it('legacy_version 0x0300 and 0x0200: TLS_ERR_LEGACY_VERSION_TOO_OLD and TLS_ERR_LEGACY_VERSION_NOT_TLS, both protocol_version', () => {
    expectPlainFailure(helloRecord({ ...nodeHello, legacyVersion: 0x0300 }), 'protocol_version', 'TLS_ERR_LEGACY_VERSION_TOO_OLD');
    expectPlainFailure(helloRecord({ ...nodeHello, legacyVersion: 0x0200 }), 'protocol_version', 'TLS_ERR_LEGACY_VERSION_NOT_TLS');
  });

  it('no supported_versions: TLS_ERR_TLS13_NOT_OFFERED, protocol_version', () => {
    const old = withExtensions(nodeHello, nodeHello.extensions.filter((x) => x.type !== ExtensionType.supported_versions));
    expectPlainFailure(helloRecord(old), 'protocol_version', 'TLS_ERR_TLS13_NOT_OFFERED');
  });

  it('an SSL 2.0 hello: TLS_ERR_SSLV2_CLIENT_HELLO; an empty alert record: TLS_ERR_EMPTY_ALERT_RECORD', () => {
    expectPlainFailure(Uint8Array.of(0x80, 0x2e, 0x01, 0x03, 0x03), 'protocol_version', 'TLS_ERR_SSLV2_CLIENT_HELLO');
    expectPlainFailure(Uint8Array.of(21, 3, 3, 0, 0), 'unexpected_message', 'TLS_ERR_EMPTY_ALERT_RECORD');
    expectPlainFailure(Uint8Array.of(21, 3, 3, 0, 1, 2), 'decode_error', 'TLS_ERR_ALERT_RECORD_WRONG_LENGTH');
  });

  it('a truncated ClientHello (a framing error of the reader): TLS_ERR_MALFORMED_MESSAGE, decode_error', () => {
    const out = expectPlainAlert(fresh(), plainRecord(22, Uint8Array.of(1, 0, 0, 3, 3, 3, 0)), 'decode_error');
    // Not a TlsError: the message keeps the DecodeError's own.
    expect(sent(out)).toMatchObject({ code: 'TLS_ERR_MALFORMED_MESSAGE', reason: 'DecodeError: truncated random' });
  });

  it('a record that fails authentication under the handshake key: TLS_ERR_RECORD_AUTHENTICATION_FAILED, bad_record_mac', () => {
    const finishedAt = recordSteps.findIndex((s) => s.kind === 'client' && s.bytes[0] === 23);
    const engine = fresh();
    for (const s of recordSteps.slice(0, finishedAt)) applyStep(engine, s);
    const finished = (recordSteps[finishedAt] as Extract<Step, { kind: 'client' }>).bytes.slice();
    finished[finished.length - 1]! ^= 1;
    const out = expectAlert(engine, finished, 'bad_record_mac');
    expect(sent(out).code).toBe('TLS_ERR_RECORD_AUTHENTICATION_FAILED');
  });

  it('an inner plaintext over 2^14 + 1 bytes: TLS_ERR_RECORD_OVERFLOW_INNER_PLAINTEXT, record_overflow', () => {
    const finishedAt = recordSteps.findIndex((s) => s.kind === 'client' && s.bytes[0] === 23);
    const engine = fresh();
    for (const s of recordSteps.slice(0, finishedAt)) applyStep(engine, s);
    const snap = engine.snapshot();
    const sealer = new RecordSealer(suiteById(snap.negotiated!.cipherSuite)!, snap.read!.secret, Number(snap.read!.seq));
    const out = expectAlert(engine, sealer.seal(22, new Uint8Array(16384), 2), 'record_overflow');
    expect(sent(out).code).toBe('TLS_ERR_RECORD_OVERFLOW_INNER_PLAINTEXT');
  });

  it('after a HelloRetryRequest, the same extensions reordered: TLS_ERR_HRR_CLIENT_HELLO_MISMATCH, illegal_parameter', async () => {
    const retryServer = deterministicServer({ groups: ['secp256r1'] });
    const steps = toRecordSteps((await recordSession(retryServer)).steps);
    const secondAt = steps.findIndex((s, i) => i > 0 && s.kind === 'client' && s.bytes[0] === 22);
    const engine = fresh(retryServer);
    for (const s of steps.slice(0, secondAt)) applyStep(engine, s);
    expect(engine.snapshot().handshake.kind).toBe('expectRetriedClientHello');
    const second = parseHelloRecord((steps[secondAt] as Extract<Step, { kind: 'client' }>).bytes);
    const xs = second.extensions;
    const out = expectAlert(engine, helloRecord(withExtensions(second, [xs[1]!, xs[0]!, ...xs.slice(2)])), 'illegal_parameter');
    expect(sent(out).code).toBe('TLS_ERR_HRR_CLIENT_HELLO_MISMATCH');
  });

  it('abort(): TLS_ERR_ABORTED_BY_APPLICATION, internal_error, the detail in the message', () => {
    const out = fresh().abort('backend connection failed');
    expect(sent(out)).toEqual({ type: 'alertSent', alert: 'internal_error', code: 'TLS_ERR_ABORTED_BY_APPLICATION', reason: 'internal_error: backend connection failed' });
    expect(Array.from(concat(out.toClient))).toEqual([21, 3, 3, 0, 2, 2, AlertDescription.internal_error]);
  });
});
