/**
 * RFC 8448 traces: with the trace's randoms, ephemeral keys, certificate and
 * CertificateVerify signature injected, the engine reproduces every secret and
 * the server's records byte for byte (sections 3, 5 and 7), and the key
 * schedule reproduces every intermediate value of section 3.
 */
import { constants, createPublicKey, randomBytes, verify, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/util/bytes.js';
import { manualClock } from '../../src/util/clock.js';
import { Reader } from '../../src/util/reader.js';
import { hkdfLabel } from '../../src/tls/crypto/hkdf.js';
import {
  applicationSecrets,
  earlySecret,
  finishedVerifyData,
  handshakeSecret,
  handshakeTrafficSecrets,
  masterSecret,
  resumptionMasterSecret,
  ticketPsk,
  trafficKeys,
} from '../../src/tls/crypto/key-schedule.js';
import { TlsServerEngine, type SignRequest, type TlsEvent, type TlsServerConfig } from '../../src/tls/index.js';
import { scriptedRandom } from '../helpers/scripted.js';
import { rfc8448ServerKey } from '../vectors/rfc8448-keys.js';
import { field, step, traceSection, type TraceStep } from '../vectors/rfc8448.js';

const hex = (b: Uint8Array) => toHex(b);

/** The leaf certificate's DER from a Certificate handshake message. */
function certificateDer(message: Uint8Array): Uint8Array {
  const r = new Reader(message.subarray(4));
  r.vec(1, 'context');
  const list = r.sub(3, 'certificate_list');
  return list.vec(3, 'cert_data');
}

/** The signature inside a CertificateVerify handshake message. */
function certificateVerifySignature(message: Uint8Array): Uint8Array {
  const r = new Reader(message.subarray(4));
  r.u16();
  return r.vec(2, 'signature');
}

function keyLogSecrets(events: readonly TlsEvent[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of events) if (e.type === 'keyLog') m.set(e.line.split(' ')[0]!, e.line.split(' ')[2]!);
  return m;
}

interface Setup {
  readonly trace: TraceStep[];
  readonly engine: TlsServerEngine;
  readonly signed: SignRequest[];
}

function setup(section: number, config: Partial<TlsServerConfig>, serverHelloIndex = 0, cookie?: Uint8Array): Setup {
  const trace = traceSection(section);
  const serverHello = field(step(trace, 'server', 'construct a ServerHello', serverHelloIndex), 'ServerHello');
  const ephemeral = field(step(trace, 'server', 'create an ephemeral'), 'private key');
  const chain = [certificateDer(field(step(trace, 'server', 'construct a Certificate'), 'Certificate'))];
  const signature = certificateVerifySignature(
    field(step(trace, 'server', 'construct a CertificateVerify'), 'CertificateVerify'),
  );
  const signed: SignRequest[] = [];
  const engine = TlsServerEngine.create(
    {
      certificates: [{ chain, privateKey: rfc8448ServerKey(), keyKind: 'rsa', names: ['server'] }],
      keyLog: true,
      advertisedGroups: [0x1d, 0x17, 0x18, 0x19, 0x100, 0x101, 0x102, 0x103, 0x104],
      ...config,
    },
    {
      random: scriptedRandom([serverHello.subarray(6, 38), ephemeral, new Uint8Array(32).fill(7)]),
      clock: manualClock(),
      sign: (req) => {
        signed.push(req);
        return signature;
      },
      ...(cookie ? { helloRetryCookie: () => cookie } : {}),
    },
  );
  return { trace, engine, signed };
}

/** The CertificateVerify content we asked to sign verifies under the trace's certificate with the trace's signature. */
function expectSignedContentVerifies(s: Setup): void {
  expect(s.signed).toHaveLength(1);
  const req = s.signed[0]!;
  expect(req.scheme).toBe('rsa_pss_rsae_sha256');
  const cert = new X509Certificate(Buffer.from(req.certificate.chain[0]!));
  const ok = verify(
    'sha256',
    req.data,
    { key: createPublicKey(cert.publicKey.export({ format: 'pem', type: 'spki' })), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
    certificateVerifySignature(field(step(s.trace, 'server', 'construct a CertificateVerify'), 'CertificateVerify')),
  );
  expect(ok).toBe(true);
}

function expectSecrets(trace: TraceStep[], events: readonly TlsEvent[]): void {
  const logged = keyLogSecrets(events);
  const expanded = (title: string) => hex(field(step(trace, 'server', title), 'expanded'));
  expect(logged.get('CLIENT_HANDSHAKE_TRAFFIC_SECRET')).toBe(expanded('derive secret "tls13 c hs traffic"'));
  expect(logged.get('SERVER_HANDSHAKE_TRAFFIC_SECRET')).toBe(expanded('derive secret "tls13 s hs traffic"'));
  expect(logged.get('CLIENT_TRAFFIC_SECRET_0')).toBe(expanded('derive secret "tls13 c ap traffic"'));
  expect(logged.get('SERVER_TRAFFIC_SECRET_0')).toBe(expanded('derive secret "tls13 s ap traffic"'));
  expect(logged.get('EXPORTER_SECRET')).toBe(expanded('derive secret "tls13 exp master"'));
}

const record = (trace: TraceStep[], actor: 'client' | 'server', title: string, nth = 0) =>
  hex(field(step(trace, actor, title, nth), 'complete record'));
/** The client-bound bytes of one call (sealed records arrive in pieces), as hex. */
const records = (out: { toClient: Uint8Array[] }) => hex(Buffer.concat(out.toClient));
const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

describe('RFC 8448 section 3: simple 1-RTT handshake', () => {
  it('reproduces the key schedule: every intermediate secret, key and IV', () => {
    const t = traceSection(3);
    const early = earlySecret('sha256', null);
    expect(hex(early.secret)).toBe(hex(field(step(t, 'server', 'extract secret "early"'), 'secret')));
    const ikm = field(step(t, 'server', 'extract secret "handshake"'), 'IKM');
    const hs = handshakeSecret(early, ikm);
    expect(hex(hs.secret)).toBe(hex(field(step(t, 'server', 'extract secret "handshake"'), 'secret')));
    const helloHash = field(step(t, 'server', 'derive secret "tls13 c hs traffic"'), 'hash');
    const hsTraffic = handshakeTrafficSecrets(hs, helloHash);
    expect(hex(hsTraffic.client)).toBe(hex(field(step(t, 'server', 'derive secret "tls13 c hs traffic"'), 'expanded')));
    expect(hex(hsTraffic.server)).toBe(hex(field(step(t, 'server', 'derive secret "tls13 s hs traffic"'), 'expanded')));
    expect(hex(hkdfLabel('c hs traffic', helloHash, 32))).toBe(hex(field(step(t, 'server', 'derive secret "tls13 c hs traffic"'), 'info')));
    const ms = masterSecret(hs);
    expect(hex(ms.secret)).toBe(hex(field(step(t, 'server', 'extract secret "master"'), 'secret')));
    const serverHsKeys = step(t, 'server', 'derive write traffic keys for handshake data');
    const k = trafficKeys('sha256', hsTraffic.server, 16);
    expect(hex(k.key)).toBe(hex(field(serverHsKeys, 'key expanded')));
    expect(hex(k.iv)).toBe(hex(field(serverHsKeys, 'iv expanded')));
    const clientHsKeys = step(t, 'server', 'derive read traffic keys for handshake data');
    const ck = trafficKeys('sha256', hsTraffic.client, 16);
    expect(hex(ck.key)).toBe(hex(field(clientHsKeys, 'key expanded')));
    expect(hex(ck.iv)).toBe(hex(field(clientHsKeys, 'iv expanded')));
    const sFin = step(t, 'server', 'calculate finished "tls13 finished"');
    // The "hash" of the finished step is not printed; the PRK is the server handshake secret.
    expect(hex(field(sFin, 'PRK'))).toBe(hex(hsTraffic.server));
    const finishedHash = field(step(t, 'server', 'derive secret "tls13 c ap traffic"'), 'hash');
    const app = applicationSecrets(ms, finishedHash);
    expect(hex(app.client)).toBe(hex(field(step(t, 'server', 'derive secret "tls13 c ap traffic"'), 'expanded')));
    expect(hex(app.server)).toBe(hex(field(step(t, 'server', 'derive secret "tls13 s ap traffic"'), 'expanded')));
    expect(hex(app.exporter)).toBe(hex(field(step(t, 'server', 'derive secret "tls13 exp master"'), 'expanded')));
    const appKeys = step(t, 'server', 'derive write traffic keys for application data');
    const ak = trafficKeys('sha256', app.server, 16);
    expect(hex(ak.key)).toBe(hex(field(appKeys, 'key expanded')));
    expect(hex(ak.iv)).toBe(hex(field(appKeys, 'iv expanded')));
    const clientAppKeys = step(t, 'client', 'derive write traffic keys for application data');
    const cak = trafficKeys('sha256', app.client, 16);
    expect(hex(cak.key)).toBe(hex(field(clientAppKeys, 'key expanded')));
    expect(hex(cak.iv)).toBe(hex(field(clientAppKeys, 'iv expanded')));
    const resStep = step(t, 'client', 'derive secret "tls13 res master"');
    const res = resumptionMasterSecret(ms, field(resStep, 'hash'));
    expect(hex(res)).toBe(hex(field(resStep, 'expanded')));
    const pskStep = step(t, 'server', 'generate resumption secret "tls13 resumption"');
    expect(hex(ticketPsk('sha256', res, field(pskStep, 'hash')))).toBe(hex(field(pskStep, 'expanded')));
    const cFin = step(t, 'client', 'calculate finished "tls13 finished":');
    const clientFinished = field(step(t, 'client', 'construct a Finished'), 'Finished');
    // verify_data = HMAC(finished_key, H(ClientHello..server Finished)), which is the c ap traffic hash.
    expect(hex(finishedVerifyData('sha256', hsTraffic.client, finishedHash))).toBe(hex(clientFinished.subarray(4)));
    expect(hex(field(cFin, 'finished'))).toBe(hex(clientFinished.subarray(4)));
  });

  it('reproduces the server records byte for byte and carries data both ways', () => {
    const s = setup(3, {
      ticketKeys: { current: { id: randomBytes(16), secret: randomBytes(32) } },
      ticketCount: 1,
    });
    const { trace: t, engine } = s;
    const flight = engine.receive(bytes(record(t, 'client', 'send handshake record', 0)));
    expect(flight.events.filter((e) => e.type === 'alertSent')).toEqual([]);
    expect(records(flight)).toEqual([record(t, 'server', 'send handshake record', 0), record(t, 'server', 'send handshake record', 1)].join(''));
    expectSecrets(t, flight.events);
    expectSignedContentVerifies(s);

    const done = engine.receive(bytes(record(t, 'client', 'send handshake record', 1)));
    expect(done.events).toContainEqual(expect.objectContaining({ type: 'handshakeDone', cipherSuite: 'TLS_AES_128_GCM_SHA256', group: 'x25519', resumed: false }));
    // One NewSessionTicket: ours carries our own ticket, so only its record length is comparable in shape.
    const ticketRecord = Buffer.concat(done.toClient);
    expect(ticketRecord.readUInt16BE(3) + 5).toBe(ticketRecord.length);
    expect(engine.phase).toBe('established');

    const payload = field(step(t, 'client', 'send application_data record'), 'payload');
    const fromClient = engine.receive(bytes(record(t, 'client', 'send application_data record')));
    expect(fromClient.plaintext.map(hex)).toEqual([hex(payload)]);
    expect(records(engine.send(payload))).toEqual([record(t, 'server', 'send application_data record')].join(''));

    const closing = engine.receive(bytes(record(t, 'client', 'send alert record')));
    expect(closing.events).toContainEqual({ type: 'peerClosed' });
    const closed = engine.close();
    expect(records(closed)).toEqual([record(t, 'server', 'send alert record')].join(''));
    expect(closed.events).toContainEqual({ type: 'closed', error: false });
  });
});

describe('RFC 8448 section 5: HelloRetryRequest', () => {
  it('asks for P-256, then reproduces the retried handshake byte for byte', () => {
    const t = traceSection(5);
    const hrr = field(step(t, 'server', 'construct a ServerHello', 0), 'ServerHello');
    // The trace's HelloRetryRequest carries an opaque server cookie (extension 44); inject it.
    const r = new Reader(hrr.subarray(4 + 2 + 32));
    r.vec(1, 'session id');
    r.u16();
    r.u8();
    const exts = r.sub(2, 'extensions');
    let cookie: Uint8Array | undefined;
    while (!exts.atEnd()) {
      const type = exts.u16();
      const data = exts.vec(2, 'ext');
      if (type === 44) cookie = new Reader(data).vec(2, 'cookie');
    }
    const s = setup(5, { groups: ['secp256r1', 'secp384r1'], advertisedGroups: [0x17, 0x18, 0x1d] }, 1, cookie);
    const engine = s.engine;
    const retry = engine.receive(bytes(record(t, 'client', 'send handshake record', 0)));
    expect(records(retry)).toEqual([record(t, 'server', 'send handshake record', 0)].join(''));
    const flight = engine.receive(bytes(record(t, 'client', 'send handshake record', 1)));
    expect(records(flight)).toEqual([record(t, 'server', 'send handshake record', 1), record(t, 'server', 'send handshake record', 2)].join(''));
    expectSecrets(t, flight.events);
    expectSignedContentVerifies(s);
    const done = engine.receive(bytes(record(t, 'client', 'send handshake record', 2)));
    expect(done.events).toContainEqual(expect.objectContaining({ type: 'handshakeDone', group: 'secp256r1', helloRetry: true }));
    expect(done.toClient).toEqual([]);
    expect(engine.receive(bytes(record(t, 'client', 'send alert record'))).events).toContainEqual({ type: 'peerClosed' });
    expect(records(engine.close())).toEqual([record(t, 'server', 'send alert record')].join(''));
  });
});

describe('RFC 8448 section 7: compatibility mode', () => {
  it('echoes the session id, sends one dummy change_cipher_spec, and reproduces the records', () => {
    const s = setup(7, {});
    const { trace: t, engine } = s;
    const flight = engine.receive(bytes(record(t, 'client', 'send handshake record', 0)));
    expect(records(flight)).toEqual([
      record(t, 'server', 'send handshake record', 0),
      record(t, 'server', 'send change_cipher_spec record'),
      record(t, 'server', 'send handshake record', 1),
    ].join(''));
    expectSecrets(t, flight.events);
    // The client's dummy change_cipher_spec is dropped, then its Finished completes the handshake.
    expect(engine.receive(bytes(record(t, 'client', 'send change_cipher_spec record'))).events).toEqual([]);
    const done = engine.receive(bytes(record(t, 'client', 'send handshake record', 1)));
    expect(done.events).toContainEqual(expect.objectContaining({ type: 'handshakeDone' }));
    expect(engine.receive(bytes(record(t, 'client', 'send alert record'))).events).toContainEqual({ type: 'peerClosed' });
    expect(records(engine.close())).toEqual([record(t, 'server', 'send alert record')].join(''));
  });
});
