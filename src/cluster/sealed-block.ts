/**
 * Sealed per-node blocks: how a configuration version carries its secrets (private
 * keys, ticket keys) through the shared store so that only one node can read each
 * copy. HPKE-style (RFC 9180's base mode, built from node:crypto): the sealer makes an
 * ephemeral X25519 key pair, agrees a shared secret with the recipient node's public
 * key, derives an AES-256-GCM key and nonce with HKDF-SHA256 whose info binds the
 * cluster name, the version id, the recipient node's name and its public key, and
 * seals with the same binding as associated data. A block therefore opens only for
 * that node's private key, in that cluster, as that version: a block copied to
 * another node, version or cluster, truncated or changed in one bit, is refused.
 *
 * Layout (the header is in clear, none of it secret):
 *   "BTNB" | format (1) | cluster (u8 len) | versionId (u8 len) | node (u8 len)
 *   | member key id (u8 len; empty in base mode) | recipient public key (32)
 *   | ephemeral public key (32) | ciphertext | tag (16)
 *
 * Two modes, as HPKE has. Base mode authenticates the block, not its sealer: whoever
 * may write the store and knows a node's public key can seal it a block; it is only
 * for a node that runs no version yet (a new or restarted process, which trusts the
 * store's credentials). PSK mode also mixes the cluster's member key (a secret every
 * member holds, carried inside the blocks) into the key schedule: only a member can
 * seal such a block, and a node that runs a version accepts no other kind.
 *
 * Node key pairs are ephemeral, one per process: no private key ever sits on disk,
 * and a restarted node is a new recipient that a member seals the active version for
 * (the path a new node takes anyway).
 */
import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { Reader } from '../util/reader.js';
import { Writer } from '../util/writer.js';
import { equalBytes, utf8 } from '../util/bytes.js';

const MAGIC = utf8('BTNB');
const FORMAT = 1;
const KEY_LEN = 32;
const NONCE_LEN = 12;
const TAG_LEN = 16;
const PUBLIC_LEN = 32;
const INFO_LABEL = utf8('baton config block v1');

/** Why a block was refused; the message names the block, never its content. */
export type SealedBlockReason = 'truncated' | 'format' | 'foreign' | 'other-version' | 'other-cluster' | 'tampered' | 'unauthenticated';

export class SealedBlockError extends Error {
  override readonly name = 'SealedBlockError';
  readonly code = 'BATON_ERR_SEALED_BLOCK';
  constructor(
    readonly reason: SealedBlockReason,
    message: string,
  ) {
    super(message);
  }
}

/** This node's X25519 key pair. The private half never leaves this object; it prints as redacted. */
export class NodeKeyPair {
  private constructor(
    private readonly privateKey: KeyObject,
    /** Raw 32-byte X25519 public key. */
    readonly publicKey: Uint8Array,
  ) {}

  static generate(): NodeKeyPair {
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    return new NodeKeyPair(privateKey, rawPublic(publicKey));
  }

  /** X25519 with `peer` (raw public key): the shared secret. Caller wipes it. */
  agree(peer: Uint8Array): Buffer {
    return x25519(this.privateKey, peer);
  }

  toString(): string {
    return `NodeKeyPair(<redacted>, public ${Buffer.from(this.publicKey).toString('base64url')})`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** The cluster's member key: the PSK of HPKE's PSK mode. Secret. */
export interface MemberKey {
  /** Public: names the key in a block's header. */
  readonly id: string;
  readonly secret: Uint8Array;
}

/** What a block is bound to: all of it must match for it to open. */
export interface BlockBinding {
  readonly cluster: string;
  readonly versionId: string;
  readonly node: string;
  /** The recipient node's raw X25519 public key. */
  readonly recipientPublicKey: Uint8Array;
}

interface HeaderFields extends BlockBinding {
  /** Empty: base mode. */
  readonly memberKeyId: string;
}

function rawPublic(k: KeyObject): Uint8Array {
  const x = k.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new TypeError('an X25519 public key exports an x coordinate');
  return new Uint8Array(Buffer.from(x, 'base64url'));
}

function importPublic(raw: Uint8Array): KeyObject {
  if (raw.length !== PUBLIC_LEN) throw new SealedBlockError('format', `an X25519 public key is ${PUBLIC_LEN} bytes, not ${raw.length}`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

function x25519(privateKey: KeyObject, peer: Uint8Array): Buffer {
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey: importPublic(peer) });
  } catch (e) {
    if (e instanceof SealedBlockError) throw e;
    // A small-order point gives no shared secret (OpenSSL refuses the all-zero result).
    throw new SealedBlockError('tampered', 'the block\'s ephemeral key gives no X25519 shared secret');
  }
  if (shared.every((b) => b === 0)) throw new SealedBlockError('tampered', 'the block\'s ephemeral key gives an all-zero X25519 shared secret');
  return shared;
}

function checkName(what: string, v: string): Uint8Array {
  const b = utf8(v);
  if (b.length === 0 || b.length > 255) throw new RangeError(`${what} must be 1 to 255 bytes, not ${b.length}`);
  return b;
}

/** The header: also the associated data, built from the values the opener expects. */
function header(h: HeaderFields): Uint8Array {
  return new Writer(128)
    .bytes(MAGIC)
    .u8(FORMAT)
    .vecBytes(1, checkName('cluster name', h.cluster))
    .vecBytes(1, checkName('version id', h.versionId))
    .vecBytes(1, checkName('node name', h.node))
    .vecBytes(1, utf8(h.memberKeyId))
    .bytes(h.recipientPublicKey)
    .finish();
}

/**
 * Key and nonce for one block: HKDF-SHA256(ikm = shared || psk, salt = enc || pkR,
 * info = label || header). Base mode has an empty psk.
 */
function keyAndNonce(shared: Uint8Array, psk: Uint8Array, enc: Uint8Array, aad: Uint8Array, recipient: Uint8Array): { key: Buffer; nonce: Buffer; okm: Buffer } {
  const salt = Buffer.concat([enc, recipient]);
  const ikm = Buffer.concat([shared, psk]);
  const okm = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.concat([INFO_LABEL, aad]), KEY_LEN + NONCE_LEN));
  ikm.fill(0);
  return { key: okm.subarray(0, KEY_LEN), nonce: okm.subarray(KEY_LEN), okm };
}

/**
 * Seals `plaintext` for the node named in `binding`; with `memberKey`, in PSK mode
 * (only a holder of the member key could have sealed it). Each call has its own
 * ephemeral key.
 */
export function sealBlock(binding: BlockBinding, plaintext: Uint8Array, memberKey?: MemberKey): Uint8Array {
  if (binding.recipientPublicKey.length !== PUBLIC_LEN) throw new RangeError(`the recipient public key must be ${PUBLIC_LEN} bytes`);
  if (memberKey && (memberKey.id.length === 0 || memberKey.secret.length < 32)) throw new RangeError('a member key has an id and at least 32 secret bytes');
  const aad = header({ ...binding, memberKeyId: memberKey?.id ?? '' });
  const eph = generateKeyPairSync('x25519');
  const enc = rawPublic(eph.publicKey);
  const shared = x25519(eph.privateKey, binding.recipientPublicKey);
  const { key, nonce, okm } = keyAndNonce(shared, memberKey?.secret ?? new Uint8Array(0), enc, aad, binding.recipientPublicKey);
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LEN });
  c.setAAD(aad);
  const sealed = Buffer.concat([aad, enc, c.update(plaintext), c.final(), c.getAuthTag()]);
  // Best effort: JavaScript cannot promise that no copy of a secret survives elsewhere.
  shared.fill(0);
  okm.fill(0);
  return new Uint8Array(sealed);
}

/** The clear header of a block, for messages and for choosing which key to use. */
export interface BlockHeader {
  readonly cluster: string;
  readonly versionId: string;
  readonly node: string;
  /** The member key it was sealed under; empty: base mode. */
  readonly memberKeyId: string;
  readonly recipientPublicKey: Uint8Array;
}

/** Reads the clear header; throws SealedBlockError (truncated, format) when it is not one. */
export function readBlockHeader(block: Uint8Array): BlockHeader & { readonly headerLength: number } {
  if (block.length < MAGIC.length + 1) throw new SealedBlockError('truncated', `a sealed block of ${block.length} bytes is too short to be one`);
  if (!equalBytes(block.subarray(0, MAGIC.length), MAGIC)) throw new SealedBlockError('format', 'not a sealed configuration block (bad magic)');
  try {
    const r = new Reader(block);
    r.bytes(MAGIC.length);
    const format = r.u8();
    if (format !== FORMAT) throw new SealedBlockError('format', `sealed block format ${format} is not the supported ${FORMAT}`);
    const text = (what: string) => Buffer.from(r.vec(1, what, 1)).toString('utf8');
    const cluster = text('cluster');
    const versionId = text('version id');
    const node = text('node');
    const memberKeyId = Buffer.from(r.vec(1, 'member key id')).toString('utf8');
    const recipientPublicKey = new Uint8Array(r.bytes(PUBLIC_LEN, 'recipient public key'));
    return { cluster, versionId, node, memberKeyId, recipientPublicKey, headerLength: r.offset };
  } catch (e) {
    if (e instanceof SealedBlockError) throw e;
    throw new SealedBlockError('truncated', 'the sealed block ends inside its header');
  }
}

/** What the opener expects the block to be for (its own node, and the version it asked for). */
export interface OpenExpectation {
  readonly cluster: string;
  readonly versionId: string;
  readonly node: string;
  /**
   * The member key this node holds: the block must be sealed under it. Absent: a node
   * that runs no version yet, which takes a base-mode block (a PSK one it cannot open).
   */
  readonly memberKey?: MemberKey;
}

/**
 * Opens a block sealed for this node. Throws SealedBlockError naming why a block is
 * refused: truncated, not a block, sealed for another node (or another key of this
 * one: a previous run), another version or cluster, not under the member key the node
 * holds, or changed (authentication fails).
 */
export function openBlock(expect: OpenExpectation, keys: NodeKeyPair, block: Uint8Array): Uint8Array {
  const h = readBlockHeader(block);
  const where = `sealed block of version ${JSON.stringify(h.versionId)} for node ${JSON.stringify(h.node)}`;
  if (h.cluster !== expect.cluster) throw new SealedBlockError('other-cluster', `${where} belongs to cluster ${JSON.stringify(h.cluster)}, not ${JSON.stringify(expect.cluster)}`);
  if (h.node !== expect.node) throw new SealedBlockError('foreign', `${where} is sealed for another node, not ${JSON.stringify(expect.node)}`);
  if (!equalBytes(h.recipientPublicKey, keys.publicKey)) {
    throw new SealedBlockError('foreign', `${where} is sealed for another key of node ${JSON.stringify(expect.node)} (a previous run of it), not this one`);
  }
  if (h.versionId !== expect.versionId) {
    throw new SealedBlockError('other-version', `${where} was sealed for version ${JSON.stringify(h.versionId)}, not ${JSON.stringify(expect.versionId)}`);
  }
  const memberKeyId = expect.memberKey?.id ?? '';
  if (h.memberKeyId !== memberKeyId) {
    throw new SealedBlockError(
      'unauthenticated',
      memberKeyId === ''
        ? `${where} is sealed under member key ${JSON.stringify(h.memberKeyId)}, which a node that runs no version yet cannot hold`
        : h.memberKeyId === ''
          ? `${where} is not sealed under the cluster's member key: anyone could have sealed it, and this node runs a version, so it takes only blocks sealed by a member`
          : `${where} is sealed under member key ${JSON.stringify(h.memberKeyId)}, not this cluster's ${JSON.stringify(memberKeyId)}`,
    );
  }
  if (block.length < h.headerLength + PUBLIC_LEN + TAG_LEN) throw new SealedBlockError('truncated', `${where} is truncated (${block.length} bytes)`);
  // Built from what we expect, not what we read: the binding holds even if a check above were missed.
  const aad = header({ cluster: expect.cluster, versionId: expect.versionId, node: expect.node, memberKeyId, recipientPublicKey: keys.publicKey });
  const enc = block.subarray(h.headerLength, h.headerLength + PUBLIC_LEN);
  const body = block.subarray(h.headerLength + PUBLIC_LEN, block.length - TAG_LEN);
  const tag = block.subarray(block.length - TAG_LEN);
  const shared = keys.agree(enc);
  const { key, nonce, okm } = keyAndNonce(shared, expect.memberKey?.secret ?? new Uint8Array(0), enc, aad, keys.publicKey);
  try {
    const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LEN });
    d.setAAD(aad);
    d.setAuthTag(tag);
    return new Uint8Array(Buffer.concat([d.update(body), d.final()]));
  } catch {
    throw new SealedBlockError('tampered', `${where} does not authenticate: changed in the store, cut short, or sealed under another member key`);
  } finally {
    shared.fill(0);
    okm.fill(0);
  }
}
