/**
 * A loopback TCP server that runs one sans-I/O `TlsServerEngine` per socket, for
 * interop tests against clients we did not write (Node's `tls`, `openssl s_client`).
 *
 * Binds 127.0.0.1 on an ephemeral port. Socket bytes go to `engine.receive`,
 * `toClient` records go back to the socket as they are, plaintext goes to a
 * per-connection application callback (default: echo through `engine.send`).
 * A client close_notify (`peerClosed`) is answered with our close_notify and a
 * FIN. Every event and key-log line is collected for assertions.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { TlsServerEngine, decodeSnapshot, encodeSnapshot } from '../../src/tls/index.js';
import type { TlsDeps, TlsEvent, TlsOutput, TlsServerConfig } from '../../src/tls/types.js';
import { systemClock } from '../../src/util/clock.js';
import { systemRandom } from '../../src/util/random.js';

/** One accepted socket with its engine. */
export interface EngineConnection {
  /** 0, 1, 2... in accept order. */
  readonly id: number;
  readonly engine: TlsServerEngine;
  readonly socket: Socket;
  /** Every event the engine reported, in order. */
  readonly events: TlsEvent[];
  /** The `line` of every `keyLog` event, in order. */
  readonly keyLog: string[];
  /** Bytes of plaintext received from the client. */
  plaintextBytes: number;
  /** How many times the engine was replaced by a restored copy (`restoreEachCall`). */
  restores: number;
  /** The first exception thrown by an engine call (the socket is destroyed then). */
  error: unknown;
  /** Sends application data to the client (`engine.send`). */
  send(data: Uint8Array): void;
  /** Starts a KeyUpdate (`engine.keyUpdate`). */
  keyUpdate(requestPeer?: boolean): void;
  /** Sends close_notify (`engine.close`) and ends our side of the socket. */
  close(): void;
  /** Resolves when the socket has closed. */
  readonly done: Promise<void>;
}

/** What the application does with client plaintext; default {@link echoApp}. */
export type AppCallback = (conn: EngineConnection, data: Uint8Array) => void;

/** The default application: sends every chunk back. */
export const echoApp: AppCallback = (conn, data) => conn.send(data);

export interface EngineServerOptions {
  config: TlsServerConfig;
  app?: AppCallback;
  /** Overrides for the engine's dependencies (default: system randomness and clock). */
  deps?: Partial<TlsDeps>;
  /** Feed socket data to `engine.receive` in pieces of at most this many bytes (default: as read). */
  receiveChunk?: number;
  /**
   * After every engine call, replace the engine by one restored from its
   * msgpackr-encoded snapshot (what a takeover does), to show that a real client
   * cannot tell.
   */
  restoreEachCall?: boolean;
}

export interface EngineServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Accepted connections, in accept order. */
  readonly connections: EngineConnection[];
  /** Every event of every connection, tagged with the connection id. */
  allEvents(): { conn: number; event: TlsEvent }[];
  /** Every key-log line of every connection. */
  keyLogLines(): string[];
  /** Resolves with connection `id` once accepted (bounded by `timeoutMs`). */
  connection(id: number, timeoutMs?: number): Promise<EngineConnection>;
  /** Stops listening and destroys every socket; idempotent. */
  close(): Promise<void>;
}

/** Starts an engine server on 127.0.0.1, port 0. */
export async function startEngineServer(opts: EngineServerOptions): Promise<EngineServer> {
  const app = opts.app ?? echoApp;
  const deps: TlsDeps = { random: systemRandom, clock: systemClock, ...opts.deps };
  const connections: EngineConnection[] = [];
  const sockets = new Set<Socket>();

  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    connections.push(
      attach(connections.length, socket, opts.config, deps, app, opts.receiveChunk, opts.restoreEachCall ?? false),
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('engine server: no TCP address');

  let closing: Promise<void> | null = null;
  return {
    host: '127.0.0.1',
    port: address.port,
    connections,
    allEvents: () => connections.flatMap((c) => c.events.map((event) => ({ conn: c.id, event }))),
    keyLogLines: () => connections.flatMap((c) => c.keyLog),
    connection: (id, timeoutMs = 10_000) =>
      waitFor(() => connections[id], timeoutMs, `engine server connection ${id}`),
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

function attach(
  id: number,
  socket: Socket,
  config: TlsServerConfig,
  deps: TlsDeps,
  app: AppCallback,
  receiveChunk = Infinity,
  restoreEachCall = false,
): EngineConnection {
  let engine = TlsServerEngine.create(config, deps);
  let ended = false;
  let waitingForDrain = false;

  const endSocket = (): void => {
    if (ended) return;
    ended = true;
    socket.end();
  };

  /** Runs one engine call and acts on its output; an exception destroys the socket. */
  const run = (call: () => TlsOutput): void => {
    if (conn.error !== undefined || socket.destroyed) return;
    let out: TlsOutput;
    try {
      out = call();
      if (restoreEachCall) {
        engine = TlsServerEngine.restore(decodeSnapshot(encodeSnapshot(engine.snapshot())), config, deps);
        conn.restores++;
      }
    } catch (err) {
      conn.error = err;
      socket.destroy();
      return;
    }
    for (const record of out.toClient) {
      if (ended) break;
      if (!socket.write(record) && !waitingForDrain) {
        // Backpressure: stop reading until the client drains our output.
        waitingForDrain = true;
        socket.pause();
        socket.once('drain', () => {
          waitingForDrain = false;
          socket.resume();
        });
      }
    }
    for (const ev of out.events) {
      conn.events.push(ev);
      if (ev.type === 'keyLog') conn.keyLog.push(ev.line);
    }
    for (const chunk of out.plaintext) {
      conn.plaintextBytes += chunk.length;
      app(conn, chunk);
    }
    for (const ev of out.events) {
      if (ev.type === 'peerClosed') {
        // Answer close_notify with ours (RFC 8446 section 6.1), then FIN.
        if (engine.phase !== 'closed') run(() => engine.close());
        endSocket();
      } else if (ev.type === 'closed') {
        endSocket();
      }
    }
  };

  const conn: EngineConnection = {
    id,
    get engine() {
      return engine;
    },
    socket,
    events: [],
    keyLog: [],
    plaintextBytes: 0,
    restores: 0,
    error: undefined,
    send: (data) => {
      if (engine.phase !== 'closed') run(() => engine.send(data));
    },
    keyUpdate: (requestPeer = false) => {
      if (engine.phase !== 'closed') run(() => engine.keyUpdate(requestPeer));
    },
    close: () => {
      if (engine.phase !== 'closed') run(() => engine.close());
      endSocket();
    },
    done: new Promise<void>((resolve) => socket.once('close', () => resolve())),
  };

  socket.on('data', (chunk: Buffer) => {
    const bytes = new Uint8Array(chunk);
    for (let at = 0; at < bytes.length; at += receiveChunk) {
      run(() => engine.receive(bytes.subarray(at, Math.min(bytes.length, at + receiveChunk))));
    }
  });
  // A FIN without close_notify (truncation): nothing more will come, end ours too.
  socket.on('end', endSocket);
  socket.on('error', (err) => {
    conn.error ??= err;
  });
  return conn;
}

/**
 * Polls `probe` every 10 ms until it returns a value other than undefined/false,
 * for at most `timeoutMs`; rejects naming `what` on timeout.
 */
export async function waitFor<T>(
  probe: () => T | undefined | false,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const maxRounds = Math.ceil(timeoutMs / 10) + 1;
  for (let round = 0; round < maxRounds; round++) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
