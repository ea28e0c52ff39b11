/**
 * (EC)DHE key exchange for the groups we accept (RFC 8446 section 4.2.8.2 and 7.4):
 * x25519 through `diffieHellman`, NIST curves through `createECDH`.
 * Private keys are raw bytes drawn from the injected random source, so a run is reproducible.
 */
import { createECDH, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import type { RandomSource } from '../../util/random.js';
import { TlsError } from '../errors.js';
import { NamedGroup, type GroupName } from '../wire/constants.js';

export interface KeyShare {
  readonly group: GroupName;
  /** Secret. */
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  /**
   * The private key already imported (x25519), so the shared secret does not import it
   * again. A cache of `privateKey`: the raw bytes stay the truth (snapshots, determinism).
   */
  readonly keyObject?: KeyObject;
}


const CURVES = { secp256r1: ['prime256v1', 32, 65], secp384r1: ['secp384r1', 48, 97] } as const;

// Raw X25519 keys go through JWK: importing DER runs OpenSSL's decoders, about ten times slower.
const b64u = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

function x25519Private(raw: Uint8Array): KeyObject {
  // Node derives the public half from `d`; `x` only has to be a string.
  return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(raw), x: '' }, format: 'jwk' });
}

export function groupName(id: number): GroupName | undefined {
  for (const [name, v] of Object.entries(NamedGroup)) if (v === id) return name as GroupName;
  return undefined;
}

/** Makes the server's key share for `group` from the random source. */
export function generateKeyShare(group: GroupName, random: RandomSource): KeyShare {
  if (group === 'x25519') {
    const privateKey = random.bytes(32);
    const keyObject = x25519Private(privateKey);
    // The private key's JWK carries the public half (`x`): no second KeyObject.
    const jwk = keyObject.export({ format: 'jwk' });
    return { group, privateKey, publicKey: new Uint8Array(Buffer.from(jwk.x!, 'base64url')), keyObject };
  }
  const [curve, len] = CURVES[group];
  // A scalar outside [1, n-1] is rejected by setPrivateKey; draw again (vanishingly rare).
  for (let attempt = 0; attempt < 8; attempt++) {
    const privateKey = random.bytes(len);
    const ecdh = createECDH(curve);
    try {
      ecdh.setPrivateKey(privateKey);
    } catch {
      continue;
    }
    return { group, privateKey, publicKey: new Uint8Array(ecdh.getPublicKey()) };
  }
  throw new TlsError('ecdhe_key_generation_failed', 'could not draw an ECDHE private key');
}

/**
 * The shared secret with the client's share. A malformed or invalid share is
 * `illegal_parameter`; so is an all-zero X25519 result (RFC 8446 section 7.4.2).
 */
export function sharedSecret(share: KeyShare, peerPublic: Uint8Array): Uint8Array {
  if (share.group === 'x25519') {
    if (peerPublic.length !== 32) throw new TlsError('x25519_key_share_wrong_length', 'x25519 key share is not 32 bytes');
    let out: Buffer;
    try {
      out = diffieHellman({
        privateKey: share.keyObject ?? x25519Private(share.privateKey),
        publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(peerPublic) }, format: 'jwk' }),
      });
    } catch {
      throw new TlsError('x25519_key_share_rejected', 'x25519 key share rejected');
    }
    if (out.every((b) => b === 0)) throw new TlsError('x25519_shared_secret_zero', 'x25519 shared secret is all zero');
    return new Uint8Array(out);
  }
  const [curve, , pubLen] = CURVES[share.group];
  // RFC 8446 section 4.2.8.2: only the uncompressed point format is allowed.
  if (peerPublic.length !== pubLen || peerPublic[0] !== 4) {
    throw new TlsError('ec_key_share_not_uncompressed_point', `${share.group} key share is not an uncompressed point`);
  }
  const ecdh = createECDH(curve);
  ecdh.setPrivateKey(share.privateKey);
  try {
    return new Uint8Array(ecdh.computeSecret(peerPublic));
  } catch {
    throw new TlsError('ec_key_share_not_on_curve', `${share.group} key share is not on the curve`);
  }
}
