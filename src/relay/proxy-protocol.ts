/**
 * The PROXY protocol version 2 header (HAProxy's proxy-protocol.txt, section 2.2):
 * what the gateway writes to a backend before any plaintext, so the backend learns
 * the client's address and port and the TLS facts of the connection, as HAProxy's
 * `send-proxy-v2-ssl` sends them. Pure: bytes in, bytes out; no sockets.
 *
 * Layout: the 12-byte signature, version/command (0x21 PROXY, 0x20 LOCAL), family
 * and transport (0x11 TCP over IPv4, 0x21 TCP over IPv6, 0x00 unspecified), a 2-byte
 * big-endian length of what follows, the addresses and ports (network order), then
 * TLVs: a type byte and a 2-byte length before each value.
 */
import { DecodeError, Reader } from '../util/reader.js';
import { Writer } from '../util/writer.js';

/** Section 2.2: "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A". */
export const PROXY_V2_SIGNATURE = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);
/** Signature, version/command, family, length. */
export const PROXY_V2_FIXED_BYTES = 16;

const VERSION_2 = 0x20;
const CMD_LOCAL = 0x00;
const CMD_PROXY = 0x01;
const FAM_UNSPEC = 0x00;
const FAM_TCP4 = 0x11;
const FAM_TCP6 = 0x21;

/** TLV types (section 2.2.1 to 2.2.7). */
export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_SSL = 0x20;
export const PP2_SUBTYPE_SSL_VERSION = 0x21;
export const PP2_SUBTYPE_SSL_CN = 0x22;
export const PP2_SUBTYPE_SSL_CIPHER = 0x23;
/** PP2_TYPE_SSL client flags: the client connected over TLS (no client certificates here). */
export const PP2_CLIENT_SSL = 0x01;

/** Whether Baton sends the header to its backends (`--proxy-protocol`, `backends.proxyProtocol`). */
export type ProxyProtocolMode = 'v2' | 'off';
export const PROXY_PROTOCOL_MODES: readonly ProxyProtocolMode[] = ['v2', 'off'];

export interface ProxyEndpoint {
  /** Dotted IPv4, or IPv6 text (an IPv4-mapped one, ::ffff:1.2.3.4, goes as IPv4). */
  readonly address: string;
  readonly port: number;
}

/** The TLS facts HAProxy sends in PP2_TYPE_SSL, with the ALPN and SNI beside it. */
export interface ProxyTlsFacts {
  readonly alpn: string | null;
  /** The client's SNI (server_name), sent as PP2_TYPE_AUTHORITY. */
  readonly serverName: string | null;
  /** e.g. "TLSv1.3". */
  readonly version: string;
  /** e.g. "TLS_AES_128_GCM_SHA256". */
  readonly cipher: string;
}

/** A connection as the header tells it: PROXY with both ends, or LOCAL (no addresses). */
export type ProxyHeaderInput =
  | { readonly command: 'proxy'; readonly source: ProxyEndpoint; readonly destination: ProxyEndpoint; readonly tls?: ProxyTlsFacts }
  | { readonly command: 'local'; readonly tls?: ProxyTlsFacts };

/** A decoded header (see {@link decodeProxyHeader}). */
export interface ProxyHeader {
  readonly command: 'proxy' | 'local';
  readonly family: 'tcp4' | 'tcp6' | 'unspec';
  /** Null for LOCAL and for an unspecified family. Addresses as dotted IPv4 or full lower-case IPv6. */
  readonly source: ProxyEndpoint | null;
  readonly destination: ProxyEndpoint | null;
  readonly alpn: string | null;
  readonly authority: string | null;
  readonly ssl: { readonly client: number; readonly verify: number; readonly version: string | null; readonly cipher: string | null } | null;
  /** Every top-level TLV in order, the known ones included. */
  readonly tlvs: readonly { readonly type: number; readonly value: Uint8Array }[];
}

/** A header that is not PROXY v2, or is cut or inconsistent. */
export class ProxyHeaderError extends Error {
  override readonly name = 'ProxyHeaderError';
  readonly code = 'BATON_ERR_PROXY_HEADER';
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^\d{1,3}$/.test(parts[i]!)) return null;
    const n = Number(parts[i]);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | null {
  // A zone (fe80::1%eth0) names a local interface: the backend cannot use it.
  const bare = text.replace(/%.*$/, '');
  const halves = bare.split('::');
  if (halves.length > 2) return null;
  const groups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[2 * i] = g >>> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** The 4 bytes of an IPv4 address or IPv4-mapped IPv6 address, else null. */
function asIpv4(address: string): Uint8Array | null {
  const v4 = parseIpv4(address);
  if (v4) return v4;
  const v6 = parseIpv6(address);
  if (!v6) return null;
  const mapped = v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? v6.slice(12) : null;
}

/** The 16 bytes of an IPv6 address; an IPv4 one mapped (::ffff:a.b.c.d). */
function asIpv6(address: string): Uint8Array {
  const v6 = parseIpv6(address);
  if (v6) return v6;
  const v4 = parseIpv4(address);
  if (!v4) throw new ProxyHeaderError(`"${address}" is neither an IPv4 nor an IPv6 address`);
  return Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4);
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new ProxyHeaderError(`port ${port} is not a TCP port`);
  return port;
}

function tlv(w: Writer, type: number, value: Uint8Array | ((w: Writer) => void)): void {
  w.u8(type);
  w.vec(2, (inner) => (value instanceof Uint8Array ? inner.bytes(value) : value(inner)));
}

/**
 * Encodes a PROXY v2 header. Both ends go as TCP4 when both are IPv4 (IPv4-mapped
 * IPv6 counts as IPv4, as a dual-stack listener reports IPv4 clients), else as TCP6.
 * TLVs: PP2_TYPE_ALPN and PP2_TYPE_AUTHORITY when known, then PP2_TYPE_SSL with
 * PP2_CLIENT_SSL, verify 0 and the version and cipher sub-TLVs.
 */
export function encodeProxyHeader(input: ProxyHeaderInput): Uint8Array {
  let family = FAM_UNSPEC;
  let addresses: Uint8Array[] = [];
  if (input.command === 'proxy') {
    const src4 = asIpv4(input.source.address);
    const dst4 = asIpv4(input.destination.address);
    family = src4 && dst4 ? FAM_TCP4 : FAM_TCP6;
    addresses = src4 && dst4 ? [src4, dst4] : [asIpv6(input.source.address), asIpv6(input.destination.address)];
  }
  const w = new Writer(128);
  w.bytes(PROXY_V2_SIGNATURE);
  w.u8(VERSION_2 | (input.command === 'proxy' ? CMD_PROXY : CMD_LOCAL)).u8(family);
  w.vec(2, (body) => {
    if (input.command === 'proxy') {
      for (const a of addresses) body.bytes(a);
      body.u16(checkPort(input.source.port)).u16(checkPort(input.destination.port));
    }
    const t = input.tls;
    if (!t) return;
    if (t.alpn !== null) tlv(body, PP2_TYPE_ALPN, utf8.encode(t.alpn));
    if (t.serverName !== null) tlv(body, PP2_TYPE_AUTHORITY, utf8.encode(t.serverName));
    tlv(body, PP2_TYPE_SSL, (ssl) => {
      // verify: 0 means the client presented a certificate that verified; none is asked
      // for here, and HAProxy sends 0 then too.
      ssl.u8(PP2_CLIENT_SSL).u32(0);
      tlv(ssl, PP2_SUBTYPE_SSL_VERSION, utf8.encode(t.version));
      tlv(ssl, PP2_SUBTYPE_SSL_CIPHER, utf8.encode(t.cipher));
    });
  });
  return w.finish();
}

/**
 * The length of the header at the start of `bytes`, or null while fewer than its
 * 16 fixed bytes have arrived. Throws {@link ProxyHeaderError} as soon as the bytes
 * cannot be a PROXY v2 header.
 */
export function proxyHeaderLength(bytes: Uint8Array): number | null {
  const n = Math.min(bytes.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < n; i++) if (bytes[i] !== PROXY_V2_SIGNATURE[i]) throw new ProxyHeaderError('not a PROXY v2 signature');
  if (bytes.length < PROXY_V2_FIXED_BYTES) return null;
  return PROXY_V2_FIXED_BYTES + ((bytes[14]! << 8) | bytes[15]!);
}

function formatIpv6(b: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(':');
}

function text(value: Uint8Array, what: string): string {
  try {
    return fromUtf8.decode(value);
  } catch {
    throw new ProxyHeaderError(`${what} is not UTF-8`);
  }
}

/**
 * Decodes the PROXY v2 header at the start of `bytes` (bytes after it are left
 * alone): the consumers' side of {@link encodeProxyHeader}, for tests and as a
 * reading of the spec. Throws {@link ProxyHeaderError} for anything malformed.
 */
export function decodeProxyHeader(bytes: Uint8Array): { readonly header: ProxyHeader; readonly length: number } {
  const length = proxyHeaderLength(bytes);
  if (length === null || bytes.length < length) throw new ProxyHeaderError('truncated header');
  const r = new Reader(bytes.subarray(PROXY_V2_SIGNATURE.length, length));
  try {
    const verCmd = r.u8();
    if ((verCmd & 0xf0) !== VERSION_2) throw new ProxyHeaderError(`version ${verCmd >>> 4}, not 2`);
    const cmd = verCmd & 0x0f;
    if (cmd !== CMD_LOCAL && cmd !== CMD_PROXY) throw new ProxyHeaderError(`unknown command ${cmd}`);
    const fam = r.u8();
    r.u16();
    let family: ProxyHeader['family'];
    let source: ProxyEndpoint | null = null;
    let destination: ProxyEndpoint | null = null;
    if (fam === FAM_TCP4 || fam === FAM_TCP6) {
      family = fam === FAM_TCP4 ? 'tcp4' : 'tcp6';
      const size = fam === FAM_TCP4 ? 4 : 16;
      const format = (b: Uint8Array) => (size === 4 ? Array.from(b).join('.') : formatIpv6(b));
      const src = format(r.bytes(size, 'source address'));
      const dst = format(r.bytes(size, 'destination address'));
      source = { address: src, port: r.u16('source port') };
      destination = { address: dst, port: r.u16('destination port') };
    } else if (fam === FAM_UNSPEC) {
      family = 'unspec';
    } else {
      throw new ProxyHeaderError(`family/transport 0x${fam.toString(16)} is not TCP over IPv4 or IPv6`);
    }
    if (cmd === CMD_PROXY && family === 'unspec') throw new ProxyHeaderError('PROXY command without addresses');
    const tlvs: { type: number; value: Uint8Array }[] = [];
    let alpn: string | null = null;
    let authority: string | null = null;
    let ssl: ProxyHeader['ssl'] = null;
    while (!r.atEnd()) {
      const type = r.u8('TLV type');
      const value = r.vec(2, 'TLV value');
      tlvs.push({ type, value });
      if (type === PP2_TYPE_ALPN) alpn = text(value, 'PP2_TYPE_ALPN');
      else if (type === PP2_TYPE_AUTHORITY) authority = text(value, 'PP2_TYPE_AUTHORITY');
      else if (type === PP2_TYPE_SSL) {
        const s = new Reader(value);
        const client = s.u8('PP2_TYPE_SSL client');
        const verify = s.u32('PP2_TYPE_SSL verify');
        let version: string | null = null;
        let cipher: string | null = null;
        while (!s.atEnd()) {
          const sub = s.u8('PP2_TYPE_SSL sub-TLV type');
          const v = s.vec(2, 'PP2_TYPE_SSL sub-TLV value');
          if (sub === PP2_SUBTYPE_SSL_VERSION) version = text(v, 'PP2_SUBTYPE_SSL_VERSION');
          else if (sub === PP2_SUBTYPE_SSL_CIPHER) cipher = text(v, 'PP2_SUBTYPE_SSL_CIPHER');
        }
        ssl = { client, verify, version, cipher };
      }
    }
    return {
      header: { command: cmd === CMD_PROXY ? 'proxy' : 'local', family, source, destination, alpn, authority, ssl, tlvs },
      length,
    };
  } catch (e) {
    if (e instanceof DecodeError) throw new ProxyHeaderError(e.message);
    throw e;
  }
}
