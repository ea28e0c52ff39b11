/**
 * CertificateVerify signatures (RFC 8446 sections 4.2.3 and 4.4.3): which schemes a key
 * kind can make, and the default signer through node:crypto.
 */
import { constants, sign } from 'node:crypto';
import { TlsError } from '../errors.js';
import type { KeyKind, SignRequest } from '../types.js';
import type { SignatureSchemeName } from '../wire/constants.js';

/**
 * The signature schemes a key kind can make for CertificateVerify, in server
 * preference order (RFC 8446 section 4.2.3: ECDSA schemes bind the curve, and
 * RSASSA-PKCS1-v1_5 MUST NOT be used for CertificateVerify in TLS 1.3).
 */
export function signatureSchemesFor(keyKind: KeyKind): SignatureSchemeName[] {
  switch (keyKind) {
    case 'ecdsa-p256':
      return ['ecdsa_secp256r1_sha256'];
    case 'ecdsa-p384':
      return ['ecdsa_secp384r1_sha384'];
    case 'rsa':
      return ['rsa_pss_rsae_sha256', 'rsa_pss_rsae_sha384', 'rsa_pss_rsae_sha512'];
    case 'ed25519':
      return ['ed25519'];
    default:
      return assertNever(keyKind);
  }
}

const HASH_OF: Record<SignatureSchemeName, { hash: string; bytes: number } | null> = {
  ecdsa_secp256r1_sha256: { hash: 'sha256', bytes: 32 },
  ecdsa_secp384r1_sha384: { hash: 'sha384', bytes: 48 },
  ecdsa_secp521r1_sha512: { hash: 'sha512', bytes: 64 },
  rsa_pss_rsae_sha256: { hash: 'sha256', bytes: 32 },
  rsa_pss_rsae_sha384: { hash: 'sha384', bytes: 48 },
  rsa_pss_rsae_sha512: { hash: 'sha512', bytes: 64 },
  ed25519: null,
};

/**
 * The default CertificateVerify signer (RFC 8446 section 4.4.3): signs
 * `req.data` (the full content: 64 spaces, context string, 0x00, transcript
 * hash) with the certificate's key. ECDSA uses the scheme's hash and a DER
 * signature; RSA uses RSASSA-PSS with MGF1 over the same hash and a salt as
 * long as the hash (RFC 8446 section 4.2.3); Ed25519 signs the data directly.
 *
 * @throws TlsError(signature_scheme_key_mismatch, internal_error) when the scheme does not fit the key kind:
 *   the caller picked it wrongly, a bug of ours.
 */
export function signCertificateVerify(req: SignRequest): Uint8Array {
  const { scheme, certificate, data } = req;
  if (!signatureSchemesFor(certificate.keyKind).includes(scheme)) {
    throw new TlsError('signature_scheme_key_mismatch', `scheme ${scheme} cannot be made with a ${certificate.keyKind} key`);
  }
  const key = certificate.privateKey;
  const h = HASH_OF[scheme];
  let sig: Buffer;
  if (h === null) {
    sig = sign(null, data, key);
  } else if (certificate.keyKind === 'rsa') {
    sig = sign(h.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: h.bytes });
  } else {
    sig = sign(h.hash, data, { key, dsaEncoding: 'der' });
  }
  return new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength);
}

function assertNever(x: never): never {
  throw new TlsError('unreachable_value', `unexpected value ${String(x)}`);
}
