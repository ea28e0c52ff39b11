/**
 * The invariants of an engine call on bad input, and the expected-alert checks
 * built on them: a failure is answered with exactly one fatal alert (in the clear
 * before keys, else protected under the engine's write key) and the connection
 * closes; a closed engine stays inert.
 */
import { expect } from 'vitest';
import { RecordOpener } from '../../src/tls/crypto/record-protection.js';
import { suiteById } from '../../src/tls/crypto/suites.js';
import { AlertDescription, TlsServerEngine, type AlertName, type TlsOutput } from '../../src/tls/index.js';
import { toHex } from '../../src/util/bytes.js';
import { lastRecord, plainRecord } from './hello-editor.js';
import { applyStep, type Step } from './recorded-session.js';

/** Something shaped like a ClientHello, for a closed engine to ignore. */
const INERT_HELLO = plainRecord(22, Uint8Array.of(1, 0, 0, 0));

/** The alert a record carries, decrypting it with the engine's current write key when protected. */
export function alertInRecord(record: Uint8Array, engine: TlsServerEngine): { level: number; description: number } | null {
  if (record[0] === 21 && record.length === 7) return { level: record[5]!, description: record[6]! };
  if (record[0] !== 23) return null;
  const snap = engine.snapshot();
  if (!snap.write || !snap.negotiated) return null;
  const opener = new RecordOpener(suiteById(snap.negotiated.cipherSuite)!, snap.write.secret, Number(snap.write.seq) - 1);
  const opened = opener.open(record.subarray(0, 5), record.subarray(5));
  if (opened.type !== 21 || opened.content.length !== 2) return null;
  return { level: opened.content[0]!, description: opened.content[1]! };
}

export type Call = { readonly kind: 'receive'; readonly bytes: Uint8Array } | Exclude<Step, { kind: 'client' }>;

/**
 * Makes one call and checks the invariants; returns a description of the first
 * violation, or null. `closedOk` says whether the call may legitimately close
 * the connection without an alert of ours (our own close()).
 */
export function checkedCall(engine: TlsServerEngine, call: Call): { out: TlsOutput | null; violation: string | null } {
  const phaseBefore = engine.phase;
  const writeClosedBefore = engine.snapshot().writeClosed;
  let out: TlsOutput;
  try {
    out = call.kind === 'receive' ? engine.receive(call.bytes) : applyStep(engine, call);
  } catch (err) {
    return { out: null, violation: `${call.kind} threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}` };
  }
  const phase = engine.phase;
  const types = out.events.map((e) => e.type);
  const sent = out.events.filter((e) => e.type === 'alertSent');
  if (phaseBefore === 'closed') {
    if (out.toClient.length || out.plaintext.length || out.events.length) return { out, violation: `${call.kind} on a closed engine produced output` };
    return { out, violation: null };
  }
  if (sent.length > 1) return { out, violation: `more than one alertSent: ${types.join(',')}` };
  if (types.filter((t) => t === 'closed').length > 1) return { out, violation: `more than one closed event` };
  if (types.includes('closed') && phase !== 'closed') return { out, violation: `closed event but phase ${phase}` };
  if (sent.length === 1) {
    const alert = sent[0]!.alert;
    if (!types.includes('closed') || phase !== 'closed') return { out, violation: `alertSent(${alert}) without closing (phase ${phase})` };
    if (types.at(-1) !== 'closed') return { out, violation: `events after closed: ${types.join(',')}` };
    if (writeClosedBefore) {
      // Nothing may be written after our close_notify.
      if (out.toClient.length) return { out, violation: `alert record after our close_notify` };
    } else {
      const last = lastRecord(out);
      if (!last) return { out, violation: `alertSent(${alert}) but no record was sent` };
      const got = alertInRecord(last, engine);
      if (!got || got.level !== 2 || got.description !== AlertDescription[alert]) {
        return { out, violation: `alertSent(${alert}) but the last record is ${got ? `alert ${got.level}/${got.description}` : `not an alert: ${toHex(last.subarray(0, 8))}...`}` };
      }
    }
  } else if (phase === 'closed') {
    const peerEnded = types.includes('alertReceived') || types.includes('peerClosed');
    const weClosed = call.kind === 'close';
    if (!peerEnded && !weClosed) return { out, violation: `closed without an alert either way: ${types.join(',')}` };
    if (!types.includes('closed')) return { out, violation: `phase became closed without a closed event` };
  }
  return { out, violation: null };
}

/** After the connection closed: every call is a no-op that does not throw. */
export function checkInert(engine: TlsServerEngine, junk: Uint8Array, hello: Uint8Array = INERT_HELLO): string | null {
  const calls: Call[] = [
    { kind: 'receive', bytes: junk },
    { kind: 'receive', bytes: hello },
    { kind: 'send', data: Uint8Array.of(1, 2, 3) },
    { kind: 'keyUpdate', requestPeer: true },
    { kind: 'close' },
  ];
  for (const call of calls) {
    const { violation } = checkedCall(engine, call);
    if (violation) return `after closed: ${violation}`;
  }
  return engine.phase === 'closed' ? null : 'phase left closed';
}

/** Feeds `bytes` to `engine` and checks the one fatal alert it must answer with. */
export function expectAlert(engine: TlsServerEngine, bytes: Uint8Array, alert: AlertName): TlsOutput {
  const { out, violation } = checkedCall(engine, { kind: 'receive', bytes });
  expect(violation).toBeNull();
  const sent = out!.events.filter((e) => e.type === 'alertSent');
  expect(sent.map((e) => e.alert)).toEqual([alert]);
  expect(out!.events.at(-1)).toEqual({ type: 'closed', error: true });
  expect(engine.phase).toBe('closed');
  const record = lastRecord(out!)!;
  expect(alertInRecord(record, engine)).toEqual({ level: 2, description: AlertDescription[alert] });
  expect(checkInert(engine, Uint8Array.of(23, 3, 3, 0, 1, 0))).toBeNull();
  return out!;
}

/** Before any key exists the alert goes out in the clear: [21, 3, 3, 0, 2, 2, description]. */
export function expectPlainAlert(engine: TlsServerEngine, bytes: Uint8Array, alert: AlertName): TlsOutput {
  const out = expectAlert(engine, bytes, alert);
  expect(Array.from(lastRecord(out)!)).toEqual([21, 3, 3, 0, 2, 2, AlertDescription[alert]]);
  return out;
}
