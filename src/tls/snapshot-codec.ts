/**
 * MessagePack encoding of engine snapshots for the replication channel.
 * The bytes hold secrets (see TlsSnapshot): they go to the state store, nowhere else.
 */
import { Packr } from 'msgpackr';
import { SnapshotError } from './errors.js';
import { encodePlain } from './msgpack-writer.js';
import type { TlsSnapshot } from './state.js';

const packr = new Packr({ useRecords: false, moreTypes: false });

/** Encoded by msgpack-writer.ts (a relay commits one or two per handshake); by msgpackr if it refuses. */
export function encodeSnapshot(snapshot: TlsSnapshot): Uint8Array {
  return encodePlain(snapshot) ?? packr.pack(snapshot);
}

/** Decodes snapshot bytes; `TlsServerEngine.restore` checks format and version. */
export function decodeSnapshot(bytes: Uint8Array): TlsSnapshot {
  try {
    return packr.unpack(bytes) as TlsSnapshot;
  } catch {
    throw new SnapshotError('snapshot bytes are not valid msgpack');
  }
}
