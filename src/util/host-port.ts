/** HOST:PORT addresses as users write them (`[v6]:port` for IPv6). */
import { isIP } from 'node:net';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const HOSTNAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * Parses HOST:PORT; returns the address, or a sentence saying what is wrong
 * (the caller adds where: a flag, a file and field).
 */
export function parseHostPort(value: string, opts: { allowPortZero: boolean }): HostPort | string {
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(value);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2]!;
    if (isIP(host) !== 6) return `"${host}" in brackets is not an IPv6 address`;
  } else {
    const colon = value.lastIndexOf(':');
    if (colon < 0) return 'expected HOST:PORT, e.g. 127.0.0.1:8443';
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) return `put an IPv6 address in brackets, e.g. [::1]:${portText || '8443'}`;
    if (host.length === 0) return 'the host is missing';
    if (/^[\d.]+$/.test(host)) {
      if (isIP(host) !== 4) return `"${host}" is not a valid IPv4 address`;
    } else if (!HOSTNAME.test(host)) {
      return `"${host}" is not a valid host name or IP address`;
    }
  }
  const min = opts.allowPortZero ? 0 : 1;
  if (!/^\d{1,5}$/.test(portText)) return `the port must be a number from ${min} to 65535`;
  const port = Number(portText);
  if (port > 65535 || port < min) return `port ${port} is out of range (${min}-65535)`;
  return { host, port };
}

/** True for 127.0.0.0/8, ::1, IPv4-mapped ::ffff:127.x.x.x, and localhost. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}
