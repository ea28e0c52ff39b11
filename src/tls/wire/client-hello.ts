/**
 * ClientHello decoding and validation of its extensions (RFC 8446 sections 4.1.2 and 4.2).
 * Malformed input raises DecodeError (malformed_message) or a TlsError whose reason maps to
 * the alert the RFC names.
 */
import { DecodeError, Reader } from '../../util/reader.js';
import { Writer } from '../../util/writer.js';
import { TlsError } from '../errors.js';
import { ExtensionType } from './constants.js';

export interface KeyShareEntry {
  readonly group: number;
  readonly keyExchange: Uint8Array;
}

export interface PskIdentity {
  readonly identity: Uint8Array;
  readonly obfuscatedTicketAge: number;
}

export interface OfferedPsks {
  readonly identities: readonly PskIdentity[];
  readonly binders: readonly Uint8Array[];
  /** Length of the ClientHello message (with its 4-byte header) up to the binders list: Truncate(ClientHello). */
  readonly truncatedLength: number;
}

export interface ClientHello {
  /** The whole handshake message, header included, as it goes into the transcript. */
  readonly raw: Uint8Array;
  readonly legacyVersion: number;
  readonly random: Uint8Array;
  readonly legacySessionId: Uint8Array;
  readonly cipherSuites: readonly number[];
  /** RFC 8446 section 4.1.2: for TLS 1.3 the compression vector MUST be exactly one zero byte. */
  readonly nullCompressionOnly: boolean;
  readonly extensionTypes: readonly number[];
  readonly serverName: string | null;
  readonly supportedVersions: readonly number[] | null;
  readonly supportedGroups: readonly number[] | null;
  readonly keyShares: readonly KeyShareEntry[] | null;
  readonly signatureAlgorithms: readonly number[] | null;
  readonly alpn: readonly string[] | null;
  readonly pskModes: readonly number[] | null;
  readonly preSharedKey: OfferedPsks | null;
  readonly earlyData: boolean;
  readonly cookie: Uint8Array | null;
  /** RFC 8449: the largest protected record plaintext (content type included) the client accepts. */
  readonly recordSizeLimit: number | null;
}

function u16List(r: Reader, what: string, min: number): number[] {
  const sub = r.sub(2, what, min);
  if (sub.remaining % 2 !== 0) throw new DecodeError(`${what}: odd length`);
  const out: number[] = [];
  while (!sub.atEnd()) out.push(sub.u16(what));
  return out;
}

function parseServerName(data: Uint8Array): string {
  const r = new Reader(data);
  const list = r.sub(2, 'server_name list', 1);
  r.end('server_name');
  let hostName: string | null = null;
  while (!list.atEnd()) {
    const type = list.u8('server_name type');
    const name = list.vec(2, 'server_name', 1);
    if (type !== 0) continue;
    // RFC 6066 section 3: at most one name of a given type.
    if (hostName !== null) throw new TlsError('server_name_duplicate_host_name', 'two host_name entries in server_name');
    const s = Buffer.from(name).toString('latin1');
    if (!/^[A-Za-z0-9._-]+$/.test(s)) throw new TlsError('server_name_not_dns_host_name', 'server_name is not a DNS host name');
    hostName = s.toLowerCase().replace(/\.$/, '');
  }
  if (hostName === null) throw new TlsError('server_name_without_host_name', 'server_name without a host_name');
  return hostName;
}

function parseKeyShares(data: Uint8Array): KeyShareEntry[] {
  const r = new Reader(data);
  const list = r.sub(2, 'client_shares');
  r.end('key_share');
  const out: KeyShareEntry[] = [];
  // A set, not a scan of `out`: a hello may hold thousands of entries (linear, not quadratic).
  const groups = new Set<number>();
  while (!list.atEnd()) {
    const group = list.u16('key_share group');
    const keyExchange = list.vec(2, 'key_exchange');
    // key_exchange<1..2^16-1>: an empty one is no public value of any group, the invalid
    // share of section 4.2.8.2 rather than a framing error, so illegal_parameter (as the
    // wrong-length shares of the group we pick are, in key-exchange.ts).
    if (keyExchange.length === 0) throw new TlsError('key_share_empty', 'empty key_exchange');
    // RFC 8446 section 4.2.8: clients MUST NOT offer multiple shares for one group.
    if (groups.has(group)) throw new TlsError('key_share_duplicate_group', 'two key shares for one group');
    groups.add(group);
    out.push({ group, keyExchange });
  }
  return out;
}

function parseAlpn(data: Uint8Array): string[] {
  const r = new Reader(data);
  const list = r.sub(2, 'protocol_name_list', 2);
  r.end('application_layer_protocol_negotiation');
  const out: string[] = [];
  while (!list.atEnd()) out.push(Buffer.from(list.vec(1, 'protocol_name', 1)).toString('latin1'));
  return out;
}

function parsePreSharedKey(data: Uint8Array, extStart: number): OfferedPsks {
  const r = new Reader(data);
  const ids = r.sub(2, 'identities', 7);
  const identities: PskIdentity[] = [];
  while (!ids.atEnd()) {
    const identity = ids.vec(2, 'psk identity', 1);
    identities.push({ identity, obfuscatedTicketAge: ids.u32('obfuscated_ticket_age') });
  }
  const bindersAt = r.offset;
  const bl = r.sub(2, 'binders', 33);
  r.end('pre_shared_key');
  const binders: Uint8Array[] = [];
  while (!bl.atEnd()) binders.push(bl.vec(1, 'binder', 32));
  // RFC 8446 section 4.2.11: one binder per identity.
  if (binders.length !== identities.length) {
    throw new TlsError('psk_binder_count_mismatch', 'psk binder count differs from identity count');
  }
  return { identities, binders, truncatedLength: extStart + bindersAt };
}

/** Decodes a ClientHello; `raw` is the whole handshake message including its 4-byte header. */
export function parseClientHello(raw: Uint8Array): ClientHello {
  const r = new Reader(raw.subarray(4));
  const legacyVersion = r.u16('legacy_version');
  const random = r.bytes(32, 'random');
  const legacySessionId = r.vec(1, 'legacy_session_id', 0, 32);
  const cipherSuites = u16List(r, 'cipher_suites', 2);
  const compression = r.vec(1, 'legacy_compression_methods', 1);
  const extensionTypes: number[] = [];
  const ch: {
    -readonly [K in keyof ClientHello]: ClientHello[K];
  } = {
    raw,
    legacyVersion,
    random,
    legacySessionId,
    cipherSuites,
    nullCompressionOnly: compression.length === 1 && compression[0] === 0,
    extensionTypes,
    serverName: null,
    supportedVersions: null,
    supportedGroups: null,
    keyShares: null,
    signatureAlgorithms: null,
    alpn: null,
    pskModes: null,
    preSharedKey: null,
    earlyData: false,
    cookie: null,
    recordSizeLimit: null,
  };
  if (r.atEnd()) return ch; // a pre-TLS 1.3 hello may omit extensions entirely
  const exts = r.sub(2, 'extensions');
  r.end('ClientHello');
  // Duplicates found through a set: a hello may carry some 16k extensions, and a scan of
  // `extensionTypes` per extension made that quadratic.
  const seen = new Set<number>();
  while (!exts.atEnd()) {
    // The extensions block ends the message, so this is the extension's offset in `raw`.
    const typeAt = raw.length - exts.remaining;
    const type = exts.u16('extension type');
    const data = exts.vec(2, 'extension data');
    // RFC 8446 section 4.2: at most one extension of each type.
    if (seen.has(type)) throw new TlsError('duplicate_extension', `duplicate extension ${type}`);
    seen.add(type);
    if (ch.preSharedKey !== null) {
      throw new TlsError('pre_shared_key_not_last', 'pre_shared_key is not the last extension');
    }
    extensionTypes.push(type);
    const d = new Reader(data);
    switch (type) {
      case ExtensionType.server_name:
        ch.serverName = parseServerName(data);
        break;
      case ExtensionType.supported_versions: {
        const list = d.sub(1, 'supported_versions', 2);
        d.end('supported_versions');
        if (list.remaining % 2) throw new DecodeError('supported_versions: odd length');
        const v: number[] = [];
        while (!list.atEnd()) v.push(list.u16());
        ch.supportedVersions = v;
        break;
      }
      case ExtensionType.supported_groups:
        ch.supportedGroups = u16List(d, 'named_group_list', 2);
        d.end('supported_groups');
        break;
      case ExtensionType.key_share:
        ch.keyShares = parseKeyShares(data);
        break;
      case ExtensionType.signature_algorithms:
        ch.signatureAlgorithms = u16List(d, 'supported_signature_algorithms', 2);
        d.end('signature_algorithms');
        break;
      case ExtensionType.application_layer_protocol_negotiation:
        ch.alpn = parseAlpn(data);
        break;
      case ExtensionType.psk_key_exchange_modes: {
        const modes = d.vec(1, 'ke_modes', 1);
        d.end('psk_key_exchange_modes');
        ch.pskModes = Array.from(modes);
        break;
      }
      case ExtensionType.pre_shared_key:
        ch.preSharedKey = parsePreSharedKey(data, typeAt + 4);
        break;
      case ExtensionType.early_data:
        d.end('early_data');
        ch.earlyData = true;
        break;
      case ExtensionType.cookie:
        ch.cookie = d.vec(2, 'cookie', 1);
        d.end('cookie');
        break;
      case ExtensionType.record_size_limit: {
        const limit = d.u16('record_size_limit');
        d.end('record_size_limit');
        // RFC 8449 section 4: a value below 64 MUST be treated as a fatal illegal_parameter.
        if (limit < 64) throw new TlsError('record_size_limit_too_small', 'record_size_limit below 64');
        ch.recordSizeLimit = limit;
        break;
      }
      default:
        // Unknown extensions and GREASE values are ignored (RFC 8446 section 4.2, RFC 8701).
        break;
    }
  }
  return ch;
}

/** Section 4.1.2: what the ClientHello after a HelloRetryRequest may change (key_share for the group asked for). */
const RETRY_MAY_CHANGE: ReadonlySet<number> = new Set([
  ExtensionType.key_share,
  ExtensionType.early_data,
  ExtensionType.cookie,
  ExtensionType.pre_shared_key,
  ExtensionType.padding,
]);

/**
 * The part of a ClientHello (`raw`, already parsed) that the retried ClientHello MUST
 * repeat unchanged (section 4.1.2): every field before the extensions, and every
 * extension the client may not change, in their order. Two hellos give equal bytes
 * exactly when they differ only as the RFC allows.
 */
export function retryInvariant(raw: Uint8Array): Uint8Array {
  const body = raw.subarray(4);
  const r = new Reader(body);
  r.bytes(2 + 32);
  r.vec(1, 'legacy_session_id');
  r.vec(2, 'cipher_suites');
  r.vec(1, 'legacy_compression_methods');
  const out = new Writer(raw.length).bytes(body.subarray(0, r.offset));
  if (r.atEnd()) return out.finish();
  const exts = r.sub(2, 'extensions');
  while (!exts.atEnd()) {
    const start = body.length - exts.remaining;
    const type = exts.u16('extension type');
    exts.vec(2, 'extension data');
    if (!RETRY_MAY_CHANGE.has(type)) out.bytes(body.subarray(start, body.length - exts.remaining));
  }
  return out.finish();
}
