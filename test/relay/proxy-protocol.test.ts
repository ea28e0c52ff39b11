import { describe, expect, it } from 'vitest';
import {
  PROXY_V2_SIGNATURE,
  ProxyHeaderError,
  decodeProxyHeader,
  encodeProxyHeader,
  proxyHeaderLength,
} from '../../src/relay/proxy-protocol.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const tls = { alpn: 'h2', serverName: 'example.com', version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' } as const;

// The TLVs of `tls` as HAProxy's send-proxy-v2-ssl lays them out (proxy-protocol.txt 2.2.x).
const TLVS =
  '01' + '0002' + Buffer.from('h2').toString('hex') +
  '02' + '000b' + Buffer.from('example.com').toString('hex') +
  '20' + '0028' + '01' + '00000000' +
  '21' + '0007' + Buffer.from('TLSv1.3').toString('hex') +
  '23' + '0016' + Buffer.from('TLS_AES_128_GCM_SHA256').toString('hex');

describe('PROXY v2 encoder', () => {
  it('writes TCP4 with addresses, ports and the TLVs, byte for byte', () => {
    const bytes = encodeProxyHeader({
      command: 'proxy',
      source: { address: '192.0.2.10', port: 51234 },
      destination: { address: '127.0.0.1', port: 8443 },
      tls,
    });
    const body = 'c000020a' + '7f000001' + 'c822' + '20fb' + TLVS;
    expect(hex(bytes)).toBe('0d0a0d0a000d0a515549540a' + '21' + '11' + (body.length / 2).toString(16).padStart(4, '0') + body);
    expect(bytes.length).toBe(16 + 12 + 3 + 2 + 3 + 11 + 3 + 40);
  });

  it('writes TCP6 with 16-byte addresses', () => {
    const bytes = encodeProxyHeader({
      command: 'proxy',
      source: { address: '2001:db8::1', port: 443 },
      destination: { address: '::1', port: 8443 },
      tls: { ...tls, alpn: null, serverName: null },
    });
    const ssl = '20' + '0028' + '01' + '00000000' + TLVS.slice(TLVS.indexOf('210007'));
    const body = '20010db8000000000000000000000001' + '00000000000000000000000000000001' + '01bb' + '20fb' + ssl;
    expect(hex(bytes)).toBe('0d0a0d0a000d0a515549540a' + '21' + '21' + (body.length / 2).toString(16).padStart(4, '0') + body);
  });

  it('sends IPv4-mapped IPv6 addresses as TCP4', () => {
    const bytes = encodeProxyHeader({
      command: 'proxy',
      source: { address: '::ffff:10.1.2.3', port: 1 },
      destination: { address: '::FFFF:127.0.0.1', port: 2 },
    });
    expect(hex(bytes)).toBe('0d0a0d0a000d0a515549540a' + '2111000c' + '0a010203' + '7f000001' + '0001' + '0002');
  });

  it('maps an IPv4 end into IPv6 when the other end is IPv6', () => {
    const { header } = decodeProxyHeader(
      encodeProxyHeader({ command: 'proxy', source: { address: '10.0.0.1', port: 1 }, destination: { address: 'fe80::2', port: 2 } }),
    );
    expect(header.family).toBe('tcp6');
    expect(header.source!.address).toBe('0:0:0:0:0:ffff:a00:1');
  });

  it('writes LOCAL without addresses', () => {
    expect(hex(encodeProxyHeader({ command: 'local' }))).toBe('0d0a0d0a000d0a515549540a' + '2000' + '0000');
  });

  it('refuses what is not an address or a port', () => {
    expect(() => encodeProxyHeader({ command: 'proxy', source: { address: 'localhost', port: 1 }, destination: { address: '::1', port: 2 } })).toThrow(ProxyHeaderError);
    expect(() => encodeProxyHeader({ command: 'proxy', source: { address: '1.2.3.4', port: 70000 }, destination: { address: '1.2.3.4', port: 2 } })).toThrow(ProxyHeaderError);
  });
});

describe('PROXY v2 decoder', () => {
  it('round-trips what the encoder writes, leaving the bytes after it alone', () => {
    const header = encodeProxyHeader({ command: 'proxy', source: { address: '2001:db8::1', port: 443 }, destination: { address: '::1', port: 8443 }, tls });
    const withData = Buffer.concat([header, Buffer.from('GET / HTTP/1.1\r\n')]);
    const { header: h, length } = decodeProxyHeader(withData);
    expect(length).toBe(header.length);
    expect(proxyHeaderLength(withData)).toBe(header.length);
    expect(h).toMatchObject({
      command: 'proxy',
      family: 'tcp6',
      source: { address: '2001:db8:0:0:0:0:0:1', port: 443 },
      destination: { address: '0:0:0:0:0:0:0:1', port: 8443 },
      alpn: 'h2',
      authority: 'example.com',
      ssl: { client: 1, verify: 0, version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' },
    });
    expect(h.tlvs.map((t) => t.type)).toEqual([0x01, 0x02, 0x20]);
    const v4 = decodeProxyHeader(encodeProxyHeader({ command: 'proxy', source: { address: '192.0.2.10', port: 5 }, destination: { address: '127.0.0.1', port: 6 } }));
    expect(v4.header).toMatchObject({ family: 'tcp4', source: { address: '192.0.2.10', port: 5 }, destination: { address: '127.0.0.1', port: 6 }, ssl: null });
    expect(decodeProxyHeader(encodeProxyHeader({ command: 'local' })).header).toMatchObject({ command: 'local', family: 'unspec', source: null });
  });

  it('waits for the fixed part, then knows the length', () => {
    const header = encodeProxyHeader({ command: 'local', tls });
    expect(proxyHeaderLength(header.subarray(0, 5))).toBeNull();
    expect(proxyHeaderLength(header.subarray(0, 15))).toBeNull();
    expect(proxyHeaderLength(header.subarray(0, 16))).toBe(header.length);
  });

  it('rejects malformed headers', () => {
    const good = encodeProxyHeader({ command: 'proxy', source: { address: '1.2.3.4', port: 1 }, destination: { address: '5.6.7.8', port: 2 }, tls });
    const bad = (edit: (b: Uint8Array) => Uint8Array) => () => decodeProxyHeader(edit(Uint8Array.from(good)));
    // v1 text header, or anything else
    expect(bad(() => Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'))).toThrow(ProxyHeaderError);
    expect(() => proxyHeaderLength(Buffer.from('GET'))).toThrow(/signature/);
    // version 1 in the binary form, an unknown command, an unknown family
    expect(bad((b) => ((b[12] = 0x11), b))).toThrow(/version/);
    expect(bad((b) => ((b[12] = 0x22), b))).toThrow(/command/);
    expect(bad((b) => ((b[13] = 0x31), b))).toThrow(/family/);
    // cut short: the length says more than there is
    expect(bad((b) => b.subarray(0, b.length - 1))).toThrow(/truncated/);
    // the length too short for the addresses
    expect(bad((b) => ((b[14] = 0), (b[15] = 8), b))).toThrow(ProxyHeaderError);
    // a TLV whose length runs past the header
    expect(bad((b) => ((b[16 + 12 + 2] = 0xff), b))).toThrow(ProxyHeaderError);
    // PROXY with no addresses
    expect(bad((b) => ((b[13] = 0x00), b))).toThrow(/without addresses/);
    expect(PROXY_V2_SIGNATURE.length).toBe(12);
  });
});
