/**
 * Session tickets (RFC 8446 section 4.6.1) and PSK binders (section 4.2.11.2).
 * A stateless ticket carries the resumption PSK and what must match on resumption,
 * sealed under the cluster's ticket keys; only the server can read it. A stateful
 * ticket is only an opaque id: the same contents, sealed alike, wait in the cluster's
 * store under that id (the session entry), to be taken once.
 */
import { Reader } from '../../util/reader.js';
import { Writer } from '../../util/writer.js';
import { openSession, openTicket } from '../crypto/ticket-aead.js';
import type { TicketKeys } from '../types.js';

export interface TicketContents {
  readonly cipherSuite: number;
  /** Secret: the resumption PSK. */
  readonly psk: Uint8Array;
  readonly issuedAtMs: number;
  readonly lifetimeSeconds: number;
  readonly ageAdd: number;
  readonly serverName: string | null;
}

// Format 2 dropped the ALPN protocol: resumption negotiates it afresh (no 0-RTT).
const FORMAT = 2;

function optString(w: Writer, s: string | null): void {
  w.u8(s === null ? 0 : 1).vecBytes(1, Buffer.from(s ?? '', 'latin1'));
}

function readOptString(r: Reader): string | null {
  const present = r.u8();
  const v = Buffer.from(r.vec(1, 'ticket string')).toString('latin1');
  return present ? v : null;
}

export function encodeTicketContents(t: TicketContents): Uint8Array {
  const w = new Writer(128);
  w.u8(FORMAT).u16(t.cipherSuite).vecBytes(1, t.psk);
  w.u32(Math.floor(t.issuedAtMs / 0x1_0000_0000)).u32(t.issuedAtMs >>> 0);
  w.u32(t.lifetimeSeconds).u32(t.ageAdd);
  optString(w, t.serverName);
  return w.finish();
}

/** Length of a stateful ticket's id; a stateless ticket is always longer (key id, IV, tag and contents). */
export const SESSION_ID_LEN = 32;

/** Whether a PSK identity has the shape of a stateful ticket's id (it may still be unknown). */
export function isSessionId(identity: Uint8Array): boolean {
  return identity.length === SESSION_ID_LEN;
}

/** Opens and decodes a ticket; null when it is not ours, tampered with, or of another format. */
export function readTicket(keys: TicketKeys, ticket: Uint8Array): TicketContents | null {
  const plain = openTicket(keys, ticket);
  return plain ? decodeTicketContents(plain) : null;
}

/** Opens and decodes the session entry stored for stateful ticket `id`; null when it is not ours, not sealed for that id, or tampered with. */
export function readSessionEntry(keys: TicketKeys, id: Uint8Array, entry: Uint8Array): TicketContents | null {
  const plain = openSession(keys, id, entry);
  return plain ? decodeTicketContents(plain) : null;
}

function decodeTicketContents(plain: Uint8Array): TicketContents | null {
  try {
    const r = new Reader(plain);
    if (r.u8() !== FORMAT) return null;
    const cipherSuite = r.u16();
    const psk = r.vec(1, 'psk');
    const issuedAtMs = r.u32() * 0x1_0000_0000 + r.u32();
    const lifetimeSeconds = r.u32();
    const ageAdd = r.u32();
    const serverName = readOptString(r);
    r.end('ticket');
    return { cipherSuite, psk, issuedAtMs, lifetimeSeconds, ageAdd, serverName };
  } catch {
    return null;
  }
}
