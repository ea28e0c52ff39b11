/**
 * The join address of a cluster across machines, `nats://HOST[:PORT]`, checked before
 * anything starts. Apart from nats-connection.ts so that parsing flags and files
 * loads no NATS client.
 */

/** A checked `nats://HOST:PORT` address. */
export interface NatsUrl {
  readonly host: string;
  readonly port: number;
  /** `nats://HOST:PORT` as the client takes it. */
  readonly url: string;
}

export const DEFAULT_NATS_PORT = 4222;

/**
 * Parses a join address: `nats://HOST[:PORT]` (port 4222 by default). Returns the
 * reason as a string when it is not one, so callers can name the flag or field.
 */
export function parseNatsUrl(text: string): NatsUrl | string {
  const s = text.trim();
  if (s === '') return 'is empty; expected nats://HOST:PORT';
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return `"${text}" is not a URL; expected nats://HOST:PORT`;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `"${text}" is not a valid URL; expected nats://HOST:PORT`;
  }
  if (u.protocol !== 'nats:') return `"${text}" has scheme ${u.protocol.replace(/:$/, '')}; only nats:// is supported`;
  if (u.username !== '' || u.password !== '') return `"${text}" carries credentials; give them another way, never in the URL`;
  if (u.pathname !== '' && u.pathname !== '/') return `"${text}" has a path; expected nats://HOST:PORT`;
  if (u.search !== '' || u.hash !== '') return `"${text}" has a query or fragment; expected nats://HOST:PORT`;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') return `"${text}" has no host`;
  const port = u.port === '' ? DEFAULT_NATS_PORT : Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return `"${text}" has a bad port`;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return { host, port, url: `nats://${hostPart}:${port}` };
}
