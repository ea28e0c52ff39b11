/**
 * Mutation fuzzing of the engine's input: valid ClientHellos (Node's client,
 * RFC 8448 section 3) and the protected records of a recorded Node session
 * (client Finished, application data, KeyUpdate, close_notify), mutated and
 * re-chunked. `receive()` must never throw; a failure is always answered with
 * exactly one fatal alert and the connection closes; a closed engine stays
 * inert. Then targeted cases, each with the exact alert the RFC names.
 */
import { describe, expect, it } from 'vitest';
import { RecordOpener, RecordSealer } from '../../src/tls/crypto/record-protection.js';
import { suiteById } from '../../src/tls/crypto/suites.js';
import { TlsServerEngine, type TlsOutput, type TlsSnapshot } from '../../src/tls/index.js';
import { concat, toHex } from '../../src/util/bytes.js';
import { Writer } from '../../src/util/writer.js';
import { ExtensionType } from '../../src/tls/wire/constants.js';
import { checkedCall, checkInert, expectAlert, expectPlainAlert, type Call } from '../helpers/alert-check.js';
import {
  ext,
  helloLayout,
  helloMessage,
  helloRecord,
  lastRecord,
  parseHelloRecord,
  plainRecord,
  without,
  withExtensions,
  type HelloParts,
} from '../helpers/hello-editor.js';
import {
  applyStep,
  deterministicServer,
  recordSession,
  toRecordSteps,
  type DeterministicServer,
  type Step,
} from '../helpers/recorded-session.js';
import { field, step as traceStep, traceSection } from '../vectors/rfc8448.js';

// ---------------------------------------------------------------------------
// Fixtures: one recorded Node session, shared by every test in this file.

interface Context {
  readonly name: string;
  readonly server: DeterministicServer;
  /** Engine state right before the target record. */
  readonly snapshot: TlsSnapshot;
  readonly target: Uint8Array;
  /** What followed the target in the recording (bounded). */
  readonly suffix: readonly Step[];
  /** The target parsed, when it is a ClientHello. */
  readonly hello: HelloParts | null;
}

const server = deterministicServer();
const session = await recordSession(server);
/** A resumption ClientHello carries a real ticket and binder; a HelloRetryRequest run has two ClientHellos. */
const resumed = await recordSession(server, { session: session.sessions.at(-1)! });
const retryServer = deterministicServer({ groups: ['secp256r1'] });
const retried = await recordSession(retryServer);
const recordSteps = toRecordSteps(session.steps);

function engineAfter(steps: readonly Step[], srv: DeterministicServer = server): TlsServerEngine {
  const engine = TlsServerEngine.create(srv.config, srv.deps());
  for (const s of steps) applyStep(engine, s);
  return engine;
}

const clientBytes = (s: Step | undefined): Uint8Array => {
  if (s?.kind !== 'client') throw new Error('expected a client step');
  return s.bytes;
};
const nodeHelloRecord = clientBytes(recordSteps[0]);
const nodeHello = parseHelloRecord(nodeHelloRecord);
const rfcHelloRecord = field(traceStep(traceSection(3), 'client', 'send handshake record'), 'complete record');
const rfcHello = parseHelloRecord(rfcHelloRecord);

/** One context per client record of a recording, each with the engine state right before it. */
function contextsOf(label: string, srv: DeterministicServer, steps: readonly Step[], limit = Infinity): Context[] {
  const out: Context[] = [];
  const engine = TlsServerEngine.create(srv.config, srv.deps());
  let n = 0;
  steps.forEach((s, i) => {
    if (s.kind === 'client' && n++ < limit) {
      const hs = engine.snapshot().handshake.kind;
      const isHello = s.bytes[0] === 22 && (hs === 'expectClientHello' || hs === 'expectRetriedClientHello');
      const what = isHello
        ? hs === 'expectClientHello' ? 'ClientHello' : 'retried ClientHello'
        : s.bytes[0] === 20 ? 'change_cipher_spec' : hs === 'expectFinished' ? 'client Finished' : `protected record #${i}`;
      out.push({
        name: `${label} ${what}`,
        server: srv,
        snapshot: engine.snapshot(),
        target: s.bytes,
        suffix: steps.slice(i + 1, i + 5),
        hello: isHello ? parseHelloRecord(s.bytes) : null,
      });
    }
    applyStep(engine, s);
  });
  return out;
}

const contexts: Context[] = [
  ...contextsOf('node', server, recordSteps),
  ...contextsOf('node resumption', server, toRecordSteps(resumed.steps), 3),
  ...contextsOf('node HRR', retryServer, toRecordSteps(retried.steps), 3),
  {
    name: 'RFC 8448 ClientHello',
    server,
    snapshot: TlsServerEngine.create(server.config, server.deps()).snapshot(),
    target: rfcHelloRecord,
    suffix: [],
    hello: rfcHello,
  },
];

// ---------------------------------------------------------------------------
// Mutations, from a seeded PRNG (mulberry32) so every run is the same.

function prng(seed: number): { int(n: number): number; bytes(n: number): Uint8Array; pick<T>(xs: readonly T[]): T } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return { int, bytes: (n) => Uint8Array.from({ length: n }, () => int(256)), pick: (xs) => xs[int(xs.length)]! };
}
type Rng = ReturnType<typeof prng>;

function setU16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

/** A length value near the true one, or anywhere. */
function corruptLength(rng: Rng, v: number, max: number): number {
  const choice = rng.int(4);
  if (choice === 0) return rng.int(max + 1);
  if (choice === 1) return 0;
  if (choice === 2) return max;
  return Math.max(0, Math.min(max, v + rng.pick([-3, -2, -1, 1, 2, 3, 16, -16])));
}

/** Structural edits of a ClientHello that keep every length consistent. */
const helloEdits: Record<string, (p: HelloParts, rng: Rng) => HelloParts> = {
  removeExtension: (p, rng) => withExtensions(p, p.extensions.filter((_, i) => i !== rng.int(p.extensions.length))),
  duplicateExtension: (p, rng) => {
    const xs = [...p.extensions];
    xs.splice(rng.int(xs.length + 1), 0, rng.pick(p.extensions));
    return withExtensions(p, xs);
  },
  shuffleExtensions: (p, rng) => {
    const xs = [...p.extensions];
    for (let i = xs.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return withExtensions(p, xs);
  },
  randomExtensionData: (p, rng) => {
    const i = rng.int(p.extensions.length);
    return withExtensions(p, p.extensions.map((x, k) => (k === i ? { type: x.type, data: rng.bytes(rng.int(48)) } : x)));
  },
  truncateExtensionData: (p, rng) => {
    const i = rng.int(p.extensions.length);
    return withExtensions(p, p.extensions.map((x, k) => (k === i ? { type: x.type, data: x.data.subarray(0, rng.int(x.data.length + 1)) } : x)));
  },
  unknownExtension: (p, rng) => {
    const xs = [...p.extensions];
    xs.splice(rng.int(xs.length + 1), 0, { type: rng.int(0x10000), data: rng.bytes(rng.int(16)) });
    return withExtensions(p, xs);
  },
  cipherSuites: (p, rng) => ({ ...p, cipherSuites: Array.from({ length: rng.int(4) }, () => rng.pick([0x1301, 0x1302, 0x1303, 0x00ff, rng.int(0x10000)])) }),
  sessionId: (p, rng) => ({ ...p, sessionId: rng.bytes(rng.int(33)) }),
  compression: (p, rng) => ({ ...p, compression: rng.bytes(rng.int(3)) }),
  /** A syntactically valid pre_shared_key, last, with a random (sometimes our key id) ticket and binder. */
  addPsk: (p, rng) => {
    const keyId = server.config.ticketKeys!.current.id;
    const identity = rng.int(2) ? concat([keyId, rng.bytes(12 + rng.int(120))]) : rng.bytes(1 + rng.int(64));
    const psk = {
      type: ExtensionType.pre_shared_key,
      data: new Writer()
        .vec(2, (w) => w.vecBytes(2, identity).u32(rng.int(2 ** 32)))
        .vec(2, (w) => w.vecBytes(1, rng.bytes(rng.pick([32, 48, 33]))))
        .finish(),
    };
    const modes = p.extensions.some((x) => x.type === ExtensionType.psk_key_exchange_modes)
      ? []
      : [{ type: ExtensionType.psk_key_exchange_modes, data: Uint8Array.of(1, rng.pick([0, 1])) }];
    return withExtensions(p, [...p.extensions.filter((x) => x.type !== ExtensionType.pre_shared_key), ...modes, psk]);
  },
};

/** Byte-level mutations of any record; the hello layout (if any) enables length-field corruption. */
function mutateBytes(b: Uint8Array, rng: Rng, hello: HelloParts | null): { bytes: Uint8Array; name: string } {
  const kinds = ['bitFlip', 'byteReplace', 'truncate', 'append', 'recordLength', 'recordHeader'];
  if (hello) kinds.push('handshakeLength', 'extensionsLength', 'extensionLength', 'extensionLength', 'fragment');
  const kind = rng.pick(kinds);
  const out = new Uint8Array(b);
  switch (kind) {
    case 'bitFlip': {
      for (let n = 1 + rng.int(3); n > 0; n--) {
        const at = rng.int(out.length);
        out[at] = out[at]! ^ (1 << rng.int(8));
      }
      return { bytes: out, name: kind };
    }
    case 'byteReplace': {
      for (let n = 1 + rng.int(3); n > 0; n--) out[rng.int(out.length)] = rng.int(256);
      return { bytes: out, name: kind };
    }
    case 'truncate':
      return { bytes: out.subarray(0, rng.int(out.length)), name: kind };
    case 'append':
      return { bytes: concat([out, rng.bytes(1 + rng.int(64))]), name: kind };
    case 'recordLength':
      setU16(out, 3, corruptLength(rng, (out[3]! << 8) | out[4]!, 0xffff));
      return { bytes: out, name: kind };
    case 'recordHeader':
      out[rng.int(3)] = rng.pick([0, 20, 21, 22, 23, 24, 0xff, 3, 1, 4]);
      return { bytes: out, name: kind };
    case 'handshakeLength': {
      const v = corruptLength(rng, (out[6]! << 16) | (out[7]! << 8) | out[8]!, 0xffffff);
      out[6] = v >>> 16;
      setU16(out, 7, v & 0xffff);
      return { bytes: out, name: kind };
    }
    case 'fragment': {
      // The handshake message over several records (valid on its own: section 5.1 allows it).
      const message = out.subarray(5);
      const cuts = Array.from({ length: 1 + rng.int(3) }, () => rng.int(message.length + 1)).sort((x, y) => x - y);
      const records: Uint8Array[] = [];
      let at = 0;
      for (const c of [...cuts, message.length]) {
        records.push(plainRecord(22, message.subarray(at, c), 0x0301));
        at = c;
      }
      return { bytes: concat(records), name: kind };
    }
    case 'extensionsLength': {
      const at = helloLayout(hello!).extensionsLengthAt;
      if (at + 2 <= out.length) setU16(out, at, corruptLength(rng, (out[at]! << 8) | out[at + 1]!, 0xffff));
      return { bytes: out, name: kind };
    }
    default: {
      const { extensionAt } = helloLayout(hello!);
      const at = rng.pick(extensionAt) + 2;
      if (at + 2 <= out.length) setU16(out, at, corruptLength(rng, (out[at]! << 8) | out[at + 1]!, 0xffff));
      return { bytes: out, name: kind };
    }
  }
}

/** Splits `b` into 1..5 chunks, or (short inputs, now and then) single bytes. */
function chunks(b: Uint8Array, rng: Rng): Uint8Array[] {
  if (rng.int(20) === 0 && b.length <= 1024) return Array.from(b, (_, i) => b.subarray(i, i + 1));
  const cuts = Array.from({ length: rng.int(5) }, () => rng.int(b.length + 1)).sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const c of [...cuts, b.length]) {
    out.push(b.subarray(at, c));
    at = c;
  }
  return out;
}

interface FuzzCase {
  readonly context: Context;
  readonly bytes: Uint8Array;
  readonly mutations: string[];
}

function makeCase(rng: Rng): FuzzCase {
  // Half the cases on the two ClientHellos, the rest over every recorded record.
  const hellos = contexts.filter((c) => c.hello);
  const context = rng.int(2) === 0 ? rng.pick(hellos) : rng.pick(contexts);
  const mutations: string[] = [];
  let bytes = context.target;
  let hello = context.hello;
  if (hello && rng.int(2) === 0) {
    const name = rng.pick(Object.keys(helloEdits));
    hello = helloEdits[name]!(hello, rng);
    bytes = helloRecord(hello);
    mutations.push(name);
  }
  for (let n = mutations.length ? rng.int(2) : 1 + rng.int(2); n > 0; n--) {
    const m = mutateBytes(bytes, rng, hello);
    bytes = m.bytes;
    mutations.push(m.name);
  }
  return { context, bytes, mutations };
}

const FUZZ_CASES = 2500;
/** Generous: the budget is the case count, not the clock (a loaded 2-core machine is slow). */
const SLOW = { timeout: 60_000 };

describe('mutation fuzzing', () => {
  it(`${FUZZ_CASES} mutated ClientHellos and records: never a throw, always an alert or a live connection`, SLOW, () => {
    const rng = prng(0xba70);
    const violations = new Map<string, string>();
    const alerts = new Map<string, number>();
    let accepted = 0;
    for (let i = 0; i < FUZZ_CASES; i++) {
      const c = makeCase(rng);
      const engine = TlsServerEngine.restore(c.context.snapshot, c.context.server.config, c.context.server.deps());
      const describeCase = (): string => `case ${i}: ${c.context.name}, mutations [${c.mutations.join(', ')}], bytes ${toHex(c.bytes.subarray(0, 4096))}${c.bytes.length > 4096 ? '...' : ''} (${c.bytes.length} bytes)`;
      const report = (v: string): void => {
        const key = `${c.context.name}: ${v.replace(/\d+/g, 'N')}`;
        if (!violations.has(key)) violations.set(key, `${v} -- ${describeCase()}`);
      };
      let violation: string | null = null;
      const calls: Call[] = [...chunks(c.bytes, rng).map((bytes) => ({ kind: 'receive' as const, bytes })), ...c.context.suffix.map((s): Call => (s.kind === 'client' ? { kind: 'receive', bytes: s.bytes } : s))];
      for (const call of calls) {
        const r = checkedCall(engine, call);
        for (const e of r.out?.events ?? []) if (e.type === 'alertSent') alerts.set(e.alert, (alerts.get(e.alert) ?? 0) + 1);
        if ((violation = r.violation)) break;
      }
      if (!violation && engine.phase === 'closed') violation = checkInert(engine, rng.bytes(1 + rng.int(40)), nodeHelloRecord);
      if (!violation && engine.phase !== 'closed') accepted++;
      if (violation) report(violation);
    }
    // Every distinct violation, with the first input that showed it.
    expect([...violations.values()]).toEqual([]);
    // The fuzzer reached both outcomes and many alerts.
    expect(accepted).toBeGreaterThan(0);
    expect(alerts.size).toBeGreaterThanOrEqual(5);
  });

  it('no mutation surfaces as internal_error (which would mean an unexpected exception inside the engine)', SLOW, () => {
    const rng = prng(0x1e77);
    const internal = new Map<string, string>();
    for (let i = 0; i < 1000; i++) {
      const c = makeCase(rng);
      const engine = TlsServerEngine.restore(c.context.snapshot, c.context.server.config, c.context.server.deps());
      let out: TlsOutput;
      try {
        out = engine.receive(c.bytes);
      } catch {
        continue; // reported by the test above
      }
      for (const e of out.events) {
        if (e.type === 'alertSent' && e.alert === 'internal_error') {
          const key = `${c.context.name}: ${e.reason}`;
          if (!internal.has(key)) internal.set(key, `${key} -- case ${i}, mutations [${c.mutations.join(', ')}], bytes ${toHex(c.bytes)}`);
        }
      }
    }
    expect([...internal.values()]).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Targeted cases: each fatal-alert path with its exact alert.

const fresh = (srv: DeterministicServer = server): TlsServerEngine => TlsServerEngine.create(srv.config, srv.deps());

describe('targeted alerts', () => {
  it('the unmodified recorded ClientHello is accepted (the editor round-trips it)', () => {
    expect(toHex(helloRecord(nodeHello))).toBe(toHex(nodeHelloRecord));
    expect(toHex(helloRecord(rfcHello))).toBe(toHex(rfcHelloRecord));
    const engine = fresh();
    const out = engine.receive(helloRecord(nodeHello));
    expect(out.events.filter((e) => e.type === 'alertSent')).toEqual([]);
    expect(engine.snapshot().handshake.kind).toBe('expectFinished');
  });

  it('a record longer than 2^14 + 256 is record_overflow (from its header alone)', () => {
    expectPlainAlert(fresh(), Uint8Array.of(22, 3, 1, 0x41, 0x01), 'record_overflow');
  });

  it('a plaintext handshake record longer than 2^14 is record_overflow', () => {
    expectPlainAlert(fresh(), plainRecord(22, new Uint8Array((1 << 14) + 1).fill(1), 0x0301), 'record_overflow');
  });

  it('a ClientHello without supported_versions (TLS 1.2 only) is protocol_version', () => {
    expectPlainAlert(fresh(), helloRecord(without(nodeHello, ExtensionType.supported_versions)), 'protocol_version');
  });

  it('a ClientHello offering only TLS 1.2 in supported_versions is protocol_version', () => {
    const p = withExtensions(
      nodeHello,
      nodeHello.extensions.map((x) => (x.type === ExtensionType.supported_versions ? { type: x.type, data: Uint8Array.of(2, 3, 3) } : x)),
    );
    expectPlainAlert(fresh(), helloRecord(p), 'protocol_version');
  });

  it('a duplicate extension is illegal_parameter', () => {
    const groups = ext(nodeHello, ExtensionType.supported_groups);
    expectPlainAlert(fresh(), helloRecord(withExtensions(nodeHello, [...nodeHello.extensions, groups])), 'illegal_parameter');
    // Also an extension the engine ignores (not parsed), duplicated.
    const unknown = { type: 0x7a7a, data: new Uint8Array(0) };
    expectPlainAlert(fresh(), helloRecord(withExtensions(nodeHello, [unknown, ...nodeHello.extensions, unknown])), 'illegal_parameter');
  });

  it('pre_shared_key not last is illegal_parameter', () => {
    // identities<7..>: one identity "x" with an age; binders<33..>: one 32-byte binder.
    const psk = {
      type: ExtensionType.pre_shared_key,
      data: new Writer()
        .vec(2, (w) => w.vecBytes(2, Uint8Array.of(0x78)).u32(0))
        .vec(2, (w) => w.vecBytes(1, new Uint8Array(32)))
        .finish(),
    };
    const p = withExtensions(nodeHello, [psk, ...nodeHello.extensions]);
    expectPlainAlert(fresh(), helloRecord(p), 'illegal_parameter');
  });

  it('key_share without supported_groups is missing_extension', () => {
    expectPlainAlert(fresh(), helloRecord(without(nodeHello, ExtensionType.supported_groups)), 'missing_extension');
  });

  it('ALPN without overlap is no_application_protocol (server offers h2 only)', () => {
    const alpn = {
      type: ExtensionType.application_layer_protocol_negotiation,
      data: new Writer().vec(2, (w) => w.vecBytes(1, new Uint8Array(Buffer.from('http/1.1')))).finish(),
    };
    const p = withExtensions(nodeHello, [...nodeHello.extensions, alpn]);
    expectPlainAlert(fresh(deterministicServer({ alpn: ['h2'] })), helloRecord(p), 'no_application_protocol');
  });

  it('compression methods other than [0] are illegal_parameter', () => {
    expectPlainAlert(fresh(), helloRecord({ ...nodeHello, compression: Uint8Array.of(1) }), 'illegal_parameter');
    expectPlainAlert(fresh(), helloRecord({ ...nodeHello, compression: Uint8Array.of(0, 1) }), 'illegal_parameter');
  });

  it('a truncated ClientHello body (complete record, consistent lengths) is decode_error at every cut', SLOW, () => {
    const message = helloMessage(nodeHello);
    const body = message.subarray(4);
    // A hello that stops right after the compression methods is a valid pre-TLS 1.3 hello (no extensions).
    const noExtensions = helloLayout(nodeHello).extensionsLengthAt - 9;
    const failures: string[] = [];
    for (let cut = 0; cut < body.length; cut++) {
      if (cut === noExtensions) continue;
      const truncated = new Writer().u8(1).vecBytes(3, body.subarray(0, cut)).finish();
      const engine = fresh();
      const out = engine.receive(plainRecord(22, truncated, 0x0301));
      const alerts = out.events.flatMap((e) => (e.type === 'alertSent' ? [e.alert] : []));
      const last = lastRecord(out);
      if (alerts.join() !== 'decode_error' || !last || toHex(last) !== toHex(Uint8Array.of(21, 3, 3, 0, 2, 2, 50))) {
        failures.push(`cut ${cut}/${body.length}: ${alerts.join() || 'no alert'}`);
      }
    }
    expect(failures).toEqual([]);
    // And the boundary case: no extensions at all is a TLS 1.2 hello.
    const engine = fresh();
    const hello12 = new Writer().u8(1).vecBytes(3, body.subarray(0, noExtensions)).finish();
    expectPlainAlert(engine, plainRecord(22, hello12, 0x0301), 'protocol_version');
  });

  it('an unknown content type is unexpected_message', () => {
    expectPlainAlert(fresh(), Uint8Array.of(99, 3, 3, 0, 1, 0), 'unexpected_message');
  });

  it('application data before the handshake is unexpected_message', () => {
    expectPlainAlert(fresh(), Uint8Array.of(23, 3, 3, 0, 1, 0), 'unexpected_message');
  });

  it('a malformed alert (3 bytes) is decode_error', () => {
    expectPlainAlert(fresh(), Uint8Array.of(21, 3, 3, 0, 3, 2, 40, 0), 'decode_error');
  });

  const finishedAt = recordSteps.findIndex((s, i) => s.kind === 'client' && i > 0 && s.bytes[0] === 23);

  it('a tampered client Finished (validly protected, wrong verify_data) is decrypt_error', () => {
    const engine = engineAfter(recordSteps.slice(0, finishedAt));
    const snap = engine.snapshot();
    expect(snap.handshake.kind).toBe('expectFinished');
    const suite = suiteById(snap.negotiated!.cipherSuite)!;
    const record = clientBytes(recordSteps[finishedAt]);
    const opened = new RecordOpener(suite, snap.read!.secret, Number(snap.read!.seq)).open(record.subarray(0, 5), record.subarray(5));
    expect(opened.type).toBe(22);
    expect(opened.content[0]).toBe(20); // finished
    const tampered = new Uint8Array(opened.content);
    tampered[tampered.length - 1] ^= 0x01;
    const resealed = new RecordSealer(suite, snap.read!.secret, Number(snap.read!.seq)).seal(22, tampered);
    expectAlert(engine, resealed, 'decrypt_error');
  });

  it('a flipped bit in the client Finished record is bad_record_mac', () => {
    const engine = engineAfter(recordSteps.slice(0, finishedAt));
    const record = new Uint8Array(clientBytes(recordSteps[finishedAt]));
    record[10] ^= 0x80;
    expectAlert(engine, record, 'bad_record_mac');
  });

  it('a flipped bit in an application-data record is bad_record_mac', () => {
    const dataAt = recordSteps.findIndex((s, i) => i > finishedAt && s.kind === 'client');
    const engine = engineAfter(recordSteps.slice(0, dataAt));
    expect(engine.phase).toBe('established');
    const record = new Uint8Array(clientBytes(recordSteps[dataAt]));
    record[record.length - 20] ^= 0x04;
    expectAlert(engine, record, 'bad_record_mac');
  });

  /** An established engine and a sealer for the client's next record. */
  function established(): { engine: TlsServerEngine; sealer: RecordSealer } {
    const dataAt = recordSteps.findIndex((s, i) => i > finishedAt && s.kind === 'client');
    const engine = engineAfter(recordSteps.slice(0, dataAt));
    const snap = engine.snapshot();
    return { engine, sealer: new RecordSealer(suiteById(snap.negotiated!.cipherSuite)!, snap.read!.secret, Number(snap.read!.seq)) };
  }

  it('a protected record whose inner plaintext is all zeros (no content type) is unexpected_message', () => {
    const { engine, sealer } = established();
    expectAlert(engine, sealer.seal(0, new Uint8Array(0), 3), 'unexpected_message');
  });

  it('a protected record whose inner plaintext exceeds 2^14 + 1 bytes is record_overflow', () => {
    const { engine, sealer } = established();
    expectAlert(engine, sealer.seal(23, new Uint8Array((1 << 14) + 1)), 'record_overflow');
  });

  it('a KeyUpdate with request_update 2 is illegal_parameter', () => {
    const { engine, sealer } = established();
    expectAlert(engine, sealer.seal(22, Uint8Array.of(24, 0, 0, 1, 2)), 'illegal_parameter');
  });

  it('every single-bit flip of the first application-data record is bad_record_mac', SLOW, () => {
    const dataAt = recordSteps.findIndex((s, i) => i > finishedAt && s.kind === 'client');
    const snap = engineAfter(recordSteps.slice(0, dataAt)).snapshot();
    const record = clientBytes(recordSteps[dataAt]);
    const failures: string[] = [];
    for (let bit = 5 * 8; bit < record.length * 8; bit++) {
      const engine = TlsServerEngine.restore(snap, server.config, server.deps());
      const flipped = new Uint8Array(record);
      flipped[bit >> 3] ^= 1 << (bit & 7);
      const { out, violation } = checkedCall(engine, { kind: 'receive', bytes: flipped });
      const alerts = out?.events.flatMap((e) => (e.type === 'alertSent' ? [e.alert] : [])) ?? [];
      if (violation || alerts.join() !== 'bad_record_mac') failures.push(`bit ${bit}: ${violation ?? (alerts.join() || 'no alert')}`);
    }
    expect(failures).toEqual([]);
  });
});
