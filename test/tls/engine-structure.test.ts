/**
 * The engine's structure rules (issue 12): key-schedule stages are made only by the key
 * schedule; connection.ts asserts nothing non-null about its state, because the state it
 * works with carries its data; and a snapshot whose handshake state lacks what that state
 * needs is refused at restore (a SnapshotError naming the field), not failed on later.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeSnapshot, SnapshotError, TlsServerEngine, type TlsSnapshot } from '../../src/tls/index.js';
import { fromHex } from '../../src/util/bytes.js';
import { deterministicServer } from '../helpers/recorded-session.js';

const TLS = fileURLToPath(new URL('../../src/tls/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

describe('engine structure', () => {
  it('builds key-schedule stages only in crypto/key-schedule.ts', () => {
    const files = sources(TLS);
    expect(files.map((f) => relative(TLS, f))).toContain('crypto/key-schedule.ts');
    const elsewhere = files.filter((f) => relative(TLS, f) !== 'crypto/key-schedule.ts' && /\bstage:\s*'(early|handshake|master)'/.test(readFileSync(f, 'utf8')));
    expect(elsewhere.map((f) => relative(TLS, f))).toEqual([]);
    // The check sees a stage literal where there is one.
    expect(/\bstage:\s*'(early|handshake|master)'/.test(readFileSync(join(TLS, 'crypto/key-schedule.ts'), 'utf8'))).toBe(true);
  });

  it('asserts nothing non-null about state in connection.ts (negotiated, seed, keys, ciphers, ticket keys, suite lookups)', () => {
    const text = readFileSync(join(TLS, 'connection.ts'), 'utf8');
    const assertion = /\b(negotiated|seed|sealer|opener|read|write|ticketKeys|resumptionMasterSecret|room)!|suiteById\([^)]*\)!/g;
    expect(text.match(assertion) ?? []).toEqual([]);
    // The pattern finds what it looks for.
    expect('this.s.negotiated!.cipherSuite; suiteById(id)!'.match(assertion)).toEqual(['negotiated!', 'suiteById(id)!']);
  });
});

describe('restoring a snapshot inconsistent with its handshake state', () => {
  const fixture = JSON.parse(readFileSync(new URL('../fixtures/snapshots/format-2.json', import.meta.url), 'utf8')) as {
    readonly config: Record<string, unknown>;
    readonly midHandshake: { readonly snapshot: string };
  };
  const server = deterministicServer(fixture.config);
  const awaitingFinished = (): TlsSnapshot => {
    const s = decodeSnapshot(fromHex(fixture.midHandshake.snapshot));
    expect(s.handshake.kind).toBe('expectFinished');
    return s;
  };
  const refusal = (snapshot: TlsSnapshot): string => {
    try {
      TlsServerEngine.restore(snapshot, server.config, server.deps());
    } catch (err) {
      expect(err).toBeInstanceOf(SnapshotError);
      return (err as SnapshotError).message;
    }
    throw new Error('restored');
  };

  it('restores the consistent one', () => {
    expect(TlsServerEngine.restore(awaitingFinished(), server.config, server.deps()).phase).toBe('handshaking');
  });

  it('refuses one awaiting the client Finished without the connection seed its tickets derive from', () => {
    expect(refusal({ ...awaitingFinished(), seed: null })).toBe('snapshot field "seed" is missing or malformed');
  });

  it('refuses one awaiting the client Finished without a negotiation, or with an unknown cipher suite', () => {
    const s = awaitingFinished();
    expect(refusal({ ...s, negotiated: null, read: null, write: null })).toBe('snapshot field "negotiated" is missing or malformed');
    expect(refusal({ ...s, negotiated: { ...s.negotiated!, cipherSuite: 0xffff } })).toBe('snapshot field "negotiated" is missing or malformed');
  });
});
