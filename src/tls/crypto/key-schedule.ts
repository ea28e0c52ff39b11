/**
 * The TLS 1.3 key schedule (RFC 8446 section 7.1) as a chain of stages:
 * early -> handshake -> master. Each stage is its own type, so a secret cannot
 * be derived from the wrong stage. Every value here is secret.
 */
import { deriveSecret, expandLabel, hashOf, hkdfExtract, hmac, type HashName } from './hkdf.js';

export interface EarlySecret {
  readonly stage: 'early';
  readonly hash: HashName;
  readonly secret: Uint8Array;
}
export interface HandshakeSecret {
  readonly stage: 'handshake';
  readonly hash: HashName;
  readonly secret: Uint8Array;
}
export interface MasterSecret {
  readonly stage: 'master';
  readonly hash: HashName;
  readonly secret: Uint8Array;
}

function hashLen(hash: HashName): number {
  return hash === 'sha256' ? 32 : 48;
}

/**
 * What depends on the hash alone, computed once per hash: Hash(""), the Early Secret of
 * a handshake without PSK, and its "derived" salt. These are public values (no secret
 * goes into them), the same in every full handshake.
 */
interface HashConstants {
  readonly emptyHash: Uint8Array;
  readonly noPskEarly: EarlySecret;
  readonly noPskDerived: Uint8Array;
}
const constants = new Map<HashName, HashConstants>();

function constantsOf(hash: HashName): HashConstants {
  let c = constants.get(hash);
  if (!c) {
    const emptyHash = hashOf(hash, new Uint8Array(0));
    const noPskEarly: EarlySecret = {
      stage: 'early',
      hash,
      secret: hkdfExtract(hash, new Uint8Array(0), new Uint8Array(hashLen(hash))),
    };
    c = { emptyHash, noPskEarly, noPskDerived: deriveSecret(hash, noPskEarly.secret, 'derived', emptyHash) };
    constants.set(hash, c);
  }
  return c;
}

function emptyHash(hash: HashName): Uint8Array {
  return constantsOf(hash).emptyHash;
}

/** Early Secret = HKDF-Extract(0, PSK or zeros). */
export function earlySecret(hash: HashName, psk: Uint8Array | null): EarlySecret {
  if (psk === null) return constantsOf(hash).noPskEarly;
  return { stage: 'early', hash, secret: hkdfExtract(hash, new Uint8Array(0), psk) };
}

/** binder_key = Derive-Secret(Early Secret, "res binder", ""). */
export function resumptionBinderKey(early: EarlySecret): Uint8Array {
  return deriveSecret(early.hash, early.secret, 'res binder', emptyHash(early.hash));
}

/** Handshake Secret = HKDF-Extract(Derive-Secret(Early, "derived", ""), (EC)DHE). */
export function handshakeSecret(early: EarlySecret, ecdhe: Uint8Array): HandshakeSecret {
  const c = constantsOf(early.hash);
  const salt = early === c.noPskEarly ? c.noPskDerived : deriveSecret(early.hash, early.secret, 'derived', c.emptyHash);
  return { stage: 'handshake', hash: early.hash, secret: hkdfExtract(early.hash, salt, ecdhe) };
}

/** client/server handshake traffic secrets, over Transcript-Hash(ClientHello..ServerHello). */
export function handshakeTrafficSecrets(hs: HandshakeSecret, helloHash: Uint8Array): { client: Uint8Array; server: Uint8Array } {
  return {
    client: deriveSecret(hs.hash, hs.secret, 'c hs traffic', helloHash),
    server: deriveSecret(hs.hash, hs.secret, 's hs traffic', helloHash),
  };
}

/** Master Secret = HKDF-Extract(Derive-Secret(Handshake, "derived", ""), 0). */
export function masterSecret(hs: HandshakeSecret): MasterSecret {
  const salt = deriveSecret(hs.hash, hs.secret, 'derived', emptyHash(hs.hash));
  return { stage: 'master', hash: hs.hash, secret: hkdfExtract(hs.hash, salt, new Uint8Array(hashLen(hs.hash))) };
}

/** Application traffic secrets and exporter secret, over Transcript-Hash(ClientHello..server Finished). */
export function applicationSecrets(
  ms: MasterSecret,
  serverFinishedHash: Uint8Array,
): { client: Uint8Array; server: Uint8Array; exporter: Uint8Array } {
  return {
    client: deriveSecret(ms.hash, ms.secret, 'c ap traffic', serverFinishedHash),
    server: deriveSecret(ms.hash, ms.secret, 's ap traffic', serverFinishedHash),
    exporter: deriveSecret(ms.hash, ms.secret, 'exp master', serverFinishedHash),
  };
}

/** resumption_master_secret, over Transcript-Hash(ClientHello..client Finished). */
export function resumptionMasterSecret(ms: MasterSecret, clientFinishedHash: Uint8Array): Uint8Array {
  return deriveSecret(ms.hash, ms.secret, 'res master', clientFinishedHash);
}

/** The PSK of one ticket: HKDF-Expand-Label(resumption_master_secret, "resumption", nonce), section 4.6.1. */
export function ticketPsk(hash: HashName, resumptionMaster: Uint8Array, nonce: Uint8Array): Uint8Array {
  return expandLabel(hash, resumptionMaster, 'resumption', nonce, hashLen(hash));
}

/** verify_data = HMAC(finished_key, transcript hash), section 4.4.4. */
export function finishedVerifyData(hash: HashName, baseKey: Uint8Array, transcriptHash: Uint8Array): Uint8Array {
  const finishedKey = expandLabel(hash, baseKey, 'finished', new Uint8Array(0), hashLen(hash));
  return hmac(hash, finishedKey, transcriptHash);
}

/** application_traffic_secret_N+1, section 7.2. */
export function nextTrafficSecret(hash: HashName, secret: Uint8Array): Uint8Array {
  return expandLabel(hash, secret, 'traffic upd', new Uint8Array(0), hashLen(hash));
}

/** write_key and write_iv for a traffic secret, section 7.3. */
export function trafficKeys(hash: HashName, secret: Uint8Array, keyLen: number): { key: Uint8Array; iv: Uint8Array } {
  return {
    key: expandLabel(hash, secret, 'key', new Uint8Array(0), keyLen),
    iv: expandLabel(hash, secret, 'iv', new Uint8Array(0), 12),
  };
}
