/**
 * Stateful session tickets in the engine (ticketMode 'stateful'): the ticket is an
 * opaque id derived from the connection seed; the session state leaves as a
 * `sessionIssued` event, sealed under the ticket key with the id as AAD; only the
 * id it was sealed for opens it.
 */
import { describe, expect, it } from 'vitest';
import { offeredSessionIds } from '../../src/relay/session-lookup.js';
import { sealSession } from '../../src/tls/crypto/ticket-aead.js';
import { readSessionEntry } from '../../src/tls/session/ticket.js';
import { SESSION_ID_LEN, TlsServerEngine, type TicketKeys, type TlsEvent } from '../../src/tls/index.js';
import { applyStep, deterministicServer, recordSession } from '../helpers/recorded-session.js';

type Issued = Extract<TlsEvent, { type: 'sessionIssued' }>;
const issuedIn = (events: readonly TlsEvent[]) => events.filter((e): e is Issued => e.type === 'sessionIssued');

const stateful = deterministicServer({ ticketMode: 'stateful' });
const keys = stateful.config.ticketKeys!;
const recording = await recordSession(stateful);
const issued = issuedIn(recording.output.events);

describe('issuing', () => {
  it('issues each ticket as an id, its state as a sealed entry', () => {
    expect(issued).toHaveLength(2);
    for (const { id, entry } of issued) {
      expect(id.length).toBe(SESSION_ID_LEN);
      const contents = readSessionEntry(keys, id, entry);
      expect(contents).not.toBeNull();
      expect(contents!.psk.length).toBe(32);
      // The secret does not sit in the entry in clear.
      expect(Buffer.from(entry).includes(Buffer.from(contents!.psk))).toBe(false);
    }
    expect(Buffer.from(issued[0]!.id).equals(Buffer.from(issued[1]!.id))).toBe(false);
  });

  it('derives ids and entries from the connection seed: a replay issues the same ones', async () => {
    // The recorded client bytes again, into a fresh engine: what a takeover's replay does.
    const engine = TlsServerEngine.create(stateful.config, stateful.deps());
    const again = issuedIn(recording.steps.flatMap((step) => applyStep(engine, step).events));
    expect(again.map((e) => Buffer.from(e.id).toString('hex'))).toEqual(issued.map((e) => Buffer.from(e.id).toString('hex')));
    expect(again.map((e) => Buffer.from(e.entry).toString('hex'))).toEqual(issued.map((e) => Buffer.from(e.entry).toString('hex')));
  });

  it('issues no entries in the default (stateless) mode', async () => {
    expect(issuedIn((await recordSession(deterministicServer())).output.events)).toHaveLength(0);
  });

  it('sends the id as the ticket: the resuming ClientHello offers it', async () => {
    const resuming = await recordSession(stateful, { session: recording.sessions[0]! });
    const hello = resuming.steps.find((s) => s.kind === 'client')!;
    if (hello.kind !== 'client') throw new Error('no ClientHello');
    const ids = offeredSessionIds(hello.bytes).map((b) => Buffer.from(b).toString('hex'));
    expect(ids).toHaveLength(1);
    expect(issued.map((e) => Buffer.from(e.id).toString('hex'))).toContain(ids[0]);
    // The engine was offered no entry for it: a full handshake, no error.
    expect(resuming.output.events.find((e) => e.type === 'handshakeDone')).toMatchObject({ resumed: false });
  });

  it('finds no stateful ids in a ClientHello offering a stateless ticket', async () => {
    const plain = deterministicServer();
    const first = await recordSession(plain);
    const resuming = await recordSession(plain, { session: first.sessions[0]! });
    const hello = resuming.steps.find((s) => s.kind === 'client')!;
    if (hello.kind !== 'client') throw new Error('no ClientHello');
    expect(offeredSessionIds(hello.bytes)).toEqual([]);
    expect(resuming.output.events.find((e) => e.type === 'handshakeDone')).toMatchObject({ resumed: true });
  });
});

describe('opening an entry', () => {
  const { id, entry } = issued[0]!;

  it('refuses an entry under another id', () => {
    expect(readSessionEntry(keys, issued[1]!.id, entry)).toBeNull();
  });

  it('refuses an entry with any byte changed', () => {
    for (const at of [0, 16, 30, entry.length - 1]) {
      const bad = entry.slice();
      bad[at]! ^= 0x01;
      expect(readSessionEntry(keys, id, bad)).toBeNull();
    }
    expect(readSessionEntry(keys, id, entry.subarray(0, 20))).toBeNull();
  });

  it('opens under a retired key, and not under keys that never had it', () => {
    const rotated: TicketKeys = { current: { id: new Uint8Array(16).fill(7), secret: new Uint8Array(32).fill(8) }, previous: [keys.current] };
    expect(readSessionEntry(rotated, id, entry)).not.toBeNull();
    expect(readSessionEntry({ current: rotated.current }, id, entry)).toBeNull();
  });

  it('refuses an entry sealed under a known key id with another secret', () => {
    const forged = sealSession({ id: keys.current.id, secret: new Uint8Array(32).fill(9) }, new Uint8Array(12), id, new Uint8Array(40));
    expect(readSessionEntry(keys, id, forged)).toBeNull();
  });
});
