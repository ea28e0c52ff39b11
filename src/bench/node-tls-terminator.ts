/**
 * The reference terminator: what a Node user would write instead of Baton. Node's
 * own `tls.createServer` (TLS 1.3, AES-128-GCM first like Baton, x25519 first),
 * piping each connection to the backend with `net.connect` and `pipe()` both ways.
 *
 *   node dist/bench/node-tls-terminator.js --cert F --key F --backend HOST:PORT [--listen HOST:PORT]
 *
 * Prints `node-tls listening on HOST:PORT -> backend HOST:PORT` once it accepts,
 * and closes on SIGTERM or SIGINT.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    cert: { type: 'string' },
    key: { type: 'string' },
    backend: { type: 'string' },
    listen: { type: 'string', default: '127.0.0.1:0' },
  },
});
if (!values.cert || !values.key || !values.backend) {
  process.stderr.write('node-tls-terminator: --cert, --key and --backend are required\n');
  process.exit(2);
}
const split = (hp: string) => {
  const i = hp.lastIndexOf(':');
  return { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) };
};
const backend = split(values.backend);
const listen = split(values.listen!);

const server = tls.createServer(
  {
    cert: readFileSync(values.cert),
    key: readFileSync(values.key),
    minVersion: 'TLSv1.3',
    // TLS 1.3 suites go in `ciphers` too (Node splits them out for OpenSSL).
    ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
    honorCipherOrder: true,
    ecdhCurve: 'X25519:P-256:P-384',
    noDelay: true,
  },
  (client) => {
    const up = net.connect({ host: backend.host, port: backend.port, noDelay: true });
    const done = () => {
      client.destroy();
      up.destroy();
    };
    client.on('error', done);
    up.on('error', done);
    client.on('close', done);
    up.on('close', done);
    client.pipe(up);
    up.pipe(client);
  },
);
server.on('tlsClientError', () => {});
server.listen({ host: listen.host, port: listen.port, backlog: 4096 }, () => {
  const a = server.address() as net.AddressInfo;
  process.stdout.write(`node-tls listening on ${a.address}:${a.port} -> backend ${backend.host}:${backend.port}\n`);
});
const stop = () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
