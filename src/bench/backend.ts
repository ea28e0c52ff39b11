/**
 * The bench backend, a child process: a plaintext TCP server on loopback whose
 * mode is chosen per connection by the first byte the client sends through the
 * terminator:
 *
 *   'U' sink   — read and discard (bulk upload)
 *   'D' source — write 64 KiB chunks as fast as the peer takes them (bulk download)
 *   'E' echo   — write back every byte after the mode byte (round trips, handshakes)
 *
 *   node dist/bench/backend.js      prints {"ev":"backend","port":N}; exits when stdin ends
 */
import net from 'node:net';

export const MODE = { sink: 'U', source: 'D', echo: 'E' } as const;

const CHUNK = Buffer.alloc(64 << 10, 0x62);

function serve(s: net.Socket): void {
  s.on('error', () => s.destroy());
  s.on('end', () => s.end());
  s.once('data', (first: Buffer) => {
    const mode = String.fromCharCode(first[0]!);
    const rest = first.subarray(1);
    if (mode === MODE.sink) {
      s.on('data', () => {});
    } else if (mode === MODE.source) {
      s.on('data', () => {});
      const pump = () => {
        while (!s.destroyed && s.writable && s.write(CHUNK));
      };
      s.on('drain', pump);
      pump();
    } else if (mode === MODE.echo) {
      const echo = (d: Buffer) => {
        if (d.length && !s.write(d)) {
          s.pause();
          s.once('drain', () => s.resume());
        }
      };
      echo(rest);
      s.on('data', echo);
    } else {
      s.destroy();
    }
  });
}

export async function startBackend(host = '127.0.0.1', port = 0): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    serve(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, backlog: 4096 }, resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const b = await startBackend();
  process.stdout.write(`${JSON.stringify({ ev: 'backend', port: b.port })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void b.close().then(() => process.exit(0)));
}
