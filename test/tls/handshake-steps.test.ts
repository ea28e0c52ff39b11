/**
 * The handshake's named steps (src/tls/handshake/) on their own, with explicit inputs:
 * chooseParameters reads the clock only when a ServerHello follows; serverHello draws
 * the connection's randomness in its fixed order and is a pure function of it; the
 * server flight is EncryptedExtensions, Certificate, CertificateVerify, Finished, signed
 * once over the RFC 8446 section 4.4.3 context; a HelloRetryRequest restarts the transcript
 * with message_hash. (End to end, the RFC 8448 and recorded-session tests pin the bytes.)
 */
import { describe, expect, it } from 'vitest';
import { suiteByName } from '../../src/tls/crypto/suites.js';
import { helloRetryRequest } from '../../src/tls/handshake/hello-retry.js';
import { chooseParameters, serverFlight, serverHello, type HandshakePreferences, type Parameters } from '../../src/tls/handshake/server-flight.js';
import type { SignRequest } from '../../src/tls/index.js';
import { parseClientHello } from '../../src/tls/wire/client-hello.js';
import { seededRandom, type RandomSource } from '../../src/util/random.js';
import { deterministicServer, recordSession, toRecordSteps } from '../helpers/recorded-session.js';

const server = deterministicServer();
const session = await recordSession(server);
const firstRecord = toRecordSteps(session.steps).flatMap((s) => (s.kind === 'client' ? [s.bytes] : []))[0]!;
// A ClientHello from Node's TLS client: x25519 share, secp256r1 and secp384r1 among its groups.
const ch = parseClientHello(firstRecord.subarray(5));
const aes128 = suiteByName('TLS_AES_128_GCM_SHA256');
const prefer = (groups: HandshakePreferences['groups']): HandshakePreferences => ({ suites: [aes128], groups, alpn: [] });
const credentials = { certificates: server.config.certificates };

function countingClock(): { now(): number; reads: number } {
  return { reads: 0, now() { this.reads++; return 1_700_000_000_000; } };
}

function drawLog(seed: string): RandomSource & { draws: number[] } {
  const inner = seededRandom(seed);
  const draws: number[] = [];
  return { draws, bytes: (n) => (draws.push(n), inner.bytes(n)) };
}

function accepted(): Parameters {
  const p = chooseParameters(ch, null, prefer(['x25519']), credentials, countingClock());
  if (p.kind !== 'serverHello') throw new Error('expected a ServerHello');
  return p;
}

describe('chooseParameters', () => {
  it('answers a share it can use with the parameters of a full handshake, reading the clock once', () => {
    const clock = countingClock();
    const p = chooseParameters(ch, null, prefer(['x25519']), credentials, clock);
    expect(p.kind).toBe('serverHello');
    if (p.kind !== 'serverHello') return;
    expect([p.suite.name, p.group, p.psk, p.alpn, p.retry, p.nowMs]).toEqual(['TLS_AES_128_GCM_SHA256', 'x25519', null, null, null, 1_700_000_000_000]);
    expect(p.signing?.certificate).toBe(server.config.certificates[0]);
    expect(clock.reads).toBe(1);
  });

  it('asks for a HelloRetryRequest when no offered share is of a group it takes, without reading the clock', () => {
    const clock = countingClock();
    expect(chooseParameters(ch, null, prefer(['secp384r1']), credentials, clock)).toEqual({ kind: 'helloRetryRequest', suite: aes128, group: 'secp384r1' });
    expect(clock.reads).toBe(0);
  });
});

describe('serverHello', () => {
  it('draws server random, key share and seed in that order, and is a pure function of them', () => {
    const p = accepted();
    const one = drawLog('steps');
    const hello = serverHello(ch, p, one, 16384);
    expect(one.draws).toEqual([32, 32, 32]);
    expect(hello.message[0]).toBe(2); // server_hello
    expect(hello.negotiated).toMatchObject({ cipherSuite: aes128.id, group: 'x25519', resumed: false, helloRetry: false, maxRecordPlaintext: 16384 });
    const again = serverHello(ch, p, drawLog('steps'), 16384);
    expect(Buffer.from(again.message).equals(Buffer.from(hello.message))).toBe(true);
    expect(Buffer.from(again.server).equals(Buffer.from(hello.server))).toBe(true);
    expect(Buffer.from(again.seed).equals(Buffer.from(hello.seed))).toBe(true);
    expect(Buffer.from(serverHello(ch, p, drawLog('other'), 16384).server).equals(Buffer.from(hello.server))).toBe(false);
  });
});

describe('serverFlight', () => {
  it('is EncryptedExtensions, Certificate, CertificateVerify, Finished, signed once over the section 4.4.3 context', () => {
    const p = accepted();
    const hello = serverHello(ch, p, seededRandom('steps'), 16384);
    const signed: SignRequest[] = [];
    const flight = serverFlight(ch, p, hello, { advertisedGroups: [], maxRecordPlaintext: 16384, sign: (r) => (signed.push(r), new Uint8Array(64)) });
    expect(flight.messages.map((m) => m[0])).toEqual([8, 11, 15, 20]);
    expect(signed).toHaveLength(1);
    const context = Buffer.from(signed[0]!.data.subarray(0, 98)).toString('latin1');
    expect(context).toBe(' '.repeat(64) + 'TLS 1.3, server CertificateVerify\0');
    expect(signed[0]!.data.length).toBe(98 + 32);
    expect(flight.next.kind).toBe('expectFinished');
    expect(flight.next.clientVerifyData.length).toBe(32);
  });
});

describe('helloRetryRequest', () => {
  it('restarts the transcript with message_hash(ClientHello1) and keeps what the retried hello must repeat', () => {
    const cookie = Uint8Array.of(1, 2, 3);
    const retry = helloRetryRequest(ch, aes128, 'secp384r1', cookie);
    expect(retry.message[0]).toBe(2); // a ServerHello with the special random
    expect(retry.changeCipherSpec).toBe(ch.legacySessionId.length > 0);
    expect(retry.next.transcript[0]).toBe(254); // message_hash
    expect(retry.next.transcript.length).toBe(4 + 32 + retry.message.length);
    expect([retry.next.cipherSuite, retry.next.group, retry.next.cookie]).toEqual([aes128.id, 'secp384r1', cookie]);
  });
});
