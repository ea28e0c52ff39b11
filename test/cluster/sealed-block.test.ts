/** Sealed per-node blocks: each opens for its node only, and every kind of damage is refused by name. */
import { describe, expect, it } from 'vitest';
import { inspect } from 'node:util';
import { NodeKeyPair, SealedBlockError, openBlock, readBlockHeader, sealBlock, type SealedBlockReason } from '../../src/cluster/sealed-block.js';

const secret = new TextEncoder().encode('-----BEGIN PRIVATE KEY----- not really, but secret');
const a = NodeKeyPair.generate();
const b = NodeKeyPair.generate();
const forA = { cluster: 'prod', versionId: 'v7-aa', node: 'node-a' };

function refusal(fn: () => unknown): SealedBlockError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SealedBlockError) return e;
    throw e;
  }
  throw new Error('the block was opened');
}

function expectRefused(fn: () => unknown, reason: SealedBlockReason, words: RegExp): void {
  const e = refusal(fn);
  expect(e.reason).toBe(reason);
  expect(e.code).toBe('BATON_ERR_SEALED_BLOCK');
  expect(e.message).toMatch(words);
  expect(e.message).not.toContain('not really');
}

describe('sealed blocks', () => {
  const block = sealBlock({ ...forA, recipientPublicKey: a.publicKey }, secret);

  it('opens for its node, in its cluster, as its version; the secret is not in the block in clear', () => {
    expect(openBlock(forA, a, block)).toEqual(secret);
    expect(Buffer.from(block).includes(Buffer.from(secret))).toBe(false);
    const h = readBlockHeader(block);
    expect(h).toMatchObject({ cluster: 'prod', versionId: 'v7-aa', node: 'node-a' });
    expect(h.recipientPublicKey).toEqual(a.publicKey);
  });

  it('two seals of the same content differ (a fresh ephemeral key each time)', () => {
    const again = sealBlock({ ...forA, recipientPublicKey: a.publicKey }, secret);
    expect(Buffer.from(again).equals(Buffer.from(block))).toBe(false);
    expect(openBlock(forA, a, again)).toEqual(secret);
  });

  it('refuses a block sealed for another node', () => {
    const forB = sealBlock({ ...forA, node: 'node-b', recipientPublicKey: b.publicKey }, secret);
    expectRefused(() => openBlock(forA, a, forB), 'foreign', /sealed for another node, not "node-a"/);
    // Node b's block copied under node a's name: the header still names b.
    expectRefused(() => openBlock({ ...forA, node: 'node-b' }, a, forB), 'foreign', /another key of node "node-b"/);
  });

  it('refuses a block sealed for a previous key of the same node (a restart)', () => {
    const previousRun = NodeKeyPair.generate();
    expectRefused(() => openBlock(forA, previousRun, block), 'foreign', /another key of node "node-a"/);
  });

  it('refuses a block replayed into another version or cluster', () => {
    expectRefused(() => openBlock({ ...forA, versionId: 'v8-bb' }, a, block), 'other-version', /sealed for version "v7-aa", not "v8-bb"/);
    expectRefused(() => openBlock({ ...forA, cluster: 'staging' }, a, block), 'other-cluster', /belongs to cluster "prod"/);
  });

  it('refuses a header rewritten to another version: the binding is in the key and the AAD', () => {
    const h = readBlockHeader(block);
    const forged = Buffer.from(sealBlock({ ...forA, versionId: 'v8-bb', recipientPublicKey: a.publicKey }, secret));
    // The body of version v7's block under a header that says v8.
    const v7 = Buffer.from(block);
    const v8Header = forged.subarray(0, h.headerLength);
    const spliced = Buffer.concat([v8Header, v7.subarray(h.headerLength)]);
    expectRefused(() => openBlock({ ...forA, versionId: 'v8-bb' }, a, spliced), 'tampered', /does not authenticate/);
  });

  it('refuses every single-bit change after the magic', () => {
    const h = readBlockHeader(block);
    // Every byte of the ephemeral key, body and tag, and one of each header field.
    const positions = [4, 6, h.headerLength - 1, ...Array.from({ length: block.length - h.headerLength }, (_, i) => h.headerLength + i)];
    for (const at of positions) {
      const bad = new Uint8Array(block);
      bad[at]! ^= 0x01;
      const e = refusal(() => openBlock(forA, a, bad));
      expect(['tampered', 'format', 'foreign', 'other-version', 'other-cluster', 'truncated']).toContain(e.reason);
    }
  });

  it('refuses truncated blocks at every length', () => {
    for (let n = 0; n < block.length; n++) {
      const e = refusal(() => openBlock(forA, a, block.subarray(0, n)));
      expect(['truncated', 'tampered', 'format']).toContain(e.reason);
    }
    expectRefused(() => openBlock(forA, a, block.subarray(0, 3)), 'truncated', /too short/);
    expectRefused(() => openBlock(forA, a, block.subarray(0, block.length - 1)), 'tampered', /does not authenticate/);
  });

  it('refuses what is not a block', () => {
    expectRefused(() => openBlock(forA, a, new TextEncoder().encode('{"json":true}')), 'format', /bad magic/);
  });

  describe('PSK mode: sealed under the cluster\'s member key', () => {
    const member = { id: '0123456789abcdef', secret: new Uint8Array(32).fill(7) };
    const sealed = sealBlock({ ...forA, recipientPublicKey: a.publicKey }, secret, member);

    it('opens for a node that holds the member key', () => {
      expect(readBlockHeader(sealed).memberKeyId).toBe(member.id);
      expect(openBlock({ ...forA, memberKey: member }, a, sealed)).toEqual(secret);
    });

    it('a node that runs a version refuses a base-mode block: anyone could have sealed it', () => {
      expectRefused(() => openBlock({ ...forA, memberKey: member }, a, block), 'unauthenticated', /not sealed under the cluster's member key/);
    });

    it('refuses a block under another member key, by id or by secret', () => {
      expectRefused(() => openBlock({ ...forA, memberKey: { ...member, id: 'fedcba9876543210' } }, a, sealed), 'unauthenticated', /sealed under member key "0123456789abcdef", not this cluster's "fedcba9876543210"/);
      const forged = sealBlock({ ...forA, recipientPublicKey: a.publicKey }, secret, { id: member.id, secret: new Uint8Array(32).fill(8) });
      expectRefused(() => openBlock({ ...forA, memberKey: member }, a, forged), 'tampered', /does not authenticate/);
    });

    it('a node that holds no member key yet cannot take a PSK block', () => {
      expectRefused(() => openBlock(forA, a, sealed), 'unauthenticated', /which a node that runs no version yet cannot hold/);
    });
  });

  it('a key pair prints redacted', () => {
    expect(String(a)).toContain('<redacted>');
    expect(inspect(a)).toContain('<redacted>');
    expect(JSON.stringify({ a })).toContain('<redacted>');
  });
});
