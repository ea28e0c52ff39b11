/**
 * A recorded TLS 1.3 session between Node's own TLS client and a deterministic
 * `TlsServerEngine`, driven entirely in memory (no sockets): the client's
 * socket is a `Duplex` whose writes go to `engine.receive` and whose reads are
 * the engine's `toClient` records.
 *
 * The server is deterministic: a fixed `seededRandom`, a fixed `manualClock`,
 * fixed ticket keys and a memoised CertificateVerify signer (ECDSA draws a
 * random nonce, so the first signature over a given transcript is reused for
 * every later run over the same transcript; it is a real, valid signature).
 * Replaying the recorded client chunks, with the server actions in their
 * recorded order, into a fresh engine therefore reproduces the server's output
 * byte for byte: a recording is a valid script for any number of replays.
 */
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { signCertificateVerify } from '../../src/tls/crypto/signature.js';
import { TlsServerEngine } from '../../src/tls/index.js';
import type { SignRequest, TlsDeps, TlsEvent, TlsOutput, TlsServerConfig } from '../../src/tls/types.js';
import { concat, toHex } from '../../src/util/bytes.js';
import { manualClock } from '../../src/util/clock.js';
import { seededRandom } from '../../src/util/random.js';
import { caPem, fixtureCertificates } from './interop.js';

/** One call into the engine, in the order the recording made it. */
export type Step =
  | { readonly kind: 'client'; readonly bytes: Uint8Array }
  | { readonly kind: 'send'; readonly data: Uint8Array }
  | { readonly kind: 'keyUpdate'; readonly requestPeer: boolean }
  | { readonly kind: 'close' };

/** A server whose every run over the same client bytes gives the same output. */
export interface DeterministicServer {
  readonly config: TlsServerConfig;
  /** Fresh dependencies: a new `seededRandom(seed)`, the shared fixed clock and the shared signer. */
  deps(): TlsDeps;
}

export const RANDOM_SEED = 'fixed seed';

/** The fixture ECDSA P-256 certificate, fixed ticket keys, no key log. */
export function deterministicServer(extra: Partial<TlsServerConfig> = {}): DeterministicServer {
  const config: TlsServerConfig = {
    certificates: [fixtureCertificates().p256],
    ticketKeys: { current: { id: new Uint8Array(16).fill(0x11), secret: new Uint8Array(32).fill(0x22) } },
    keyLog: false,
    ...extra,
  };
  const clock = manualClock();
  const signatures = new Map<string, Uint8Array>();
  const sign = (req: SignRequest): Uint8Array => {
    const key = `${req.scheme}:${toHex(req.data)}`;
    let sig = signatures.get(key);
    if (sig === undefined) {
      sig = signCertificateVerify(req);
      signatures.set(key, sig);
    }
    return sig;
  };
  return { config, deps: () => ({ random: seededRandom(RANDOM_SEED), clock, sign }) };
}

/** Applies one step to an engine. */
export function applyStep(engine: TlsServerEngine, step: Step): TlsOutput {
  switch (step.kind) {
    case 'client':
      return engine.receive(step.bytes);
    case 'send':
      return engine.send(step.data);
    case 'keyUpdate':
      return engine.keyUpdate(step.requestPeer);
    case 'close':
      return engine.close();
  }
}

/** Everything a run produced, concatenated over all calls. */
export interface RunResult {
  readonly toClient: Uint8Array;
  readonly plaintext: Uint8Array;
  readonly events: TlsEvent[];
}

/** Accumulates outputs of successive engine calls. */
export class RunCollector {
  private readonly toClient: Uint8Array[] = [];
  private readonly plaintext: Uint8Array[] = [];
  private readonly events: TlsEvent[] = [];

  add(out: TlsOutput): void {
    this.toClient.push(...out.toClient);
    this.plaintext.push(...out.plaintext);
    this.events.push(...out.events);
  }

  result(): RunResult {
    return { toClient: concat([new Uint8Array(0), ...this.toClient]), plaintext: concat([new Uint8Array(0), ...this.plaintext]), events: [...this.events] };
  }
}

/** A recording: the steps, the server that accepts them, and what the server produced. */
export interface RecordedSession {
  readonly server: DeterministicServer;
  readonly steps: readonly Step[];
  /** The engine's output during the recording. */
  readonly output: RunResult;
  /** What Node's client received as application data. */
  readonly clientReceived: Uint8Array;
  /** Node's TLS sessions (tickets) from the recording, for a resumption. */
  readonly sessions: readonly Buffer[];
}

/** The application messages of the standard session. */
export const SESSION_MESSAGES = {
  clientHello: new Uint8Array(Buffer.from('hello from the client')),
  serverReply: new Uint8Array(Buffer.from('hello from the server')),
  /** Larger than 2^14, so the engine fragments it into several records. */
  serverLarge: new Uint8Array(40_000).map((_, i) => (i * 31 + 7) & 0xff),
  clientAfterUpdate: new Uint8Array(Buffer.from('client data after the server KeyUpdate')),
  serverAfterUpdate: new Uint8Array(Buffer.from('server data under the updated key')),
  clientLarge: new Uint8Array(20_000).map((_, i) => (i * 13 + 1) & 0xff),
};

const WAIT_MS = 10_000;

/**
 * Drives Node's TLS client against a deterministic engine in memory and records
 * the session: handshake; client and server application data (one server
 * message above 16 KiB, one client message above 16 KiB); a server KeyUpdate
 * requesting the client's; more data both ways; client close_notify; server close.
 */
export async function recordSession(
  server: DeterministicServer = deterministicServer(),
  clientOptions: tls.ConnectionOptions = {},
): Promise<RecordedSession> {
  const engine = TlsServerEngine.create(server.config, server.deps());
  const steps: Step[] = [];
  const collector = new RunCollector();
  const serverPlaintext: Uint8Array[] = [];
  const events: TlsEvent[] = [];
  const clientChunks: Buffer[] = [];
  const sessions: Buffer[] = [];
  let failure: unknown = null;

  const waiters: { check: () => boolean; resolve: () => void }[] = [];
  const poke = (): void => {
    for (const w of [...waiters]) {
      if (w.check()) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const until = (check: () => boolean, what: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(entry), 1);
        const seen = `engine events: ${events.map((e) => e.type).join(', ')}; steps: ${steps.map((s) => s.kind).join(', ')}`;
        reject(new Error(`recording: timed out waiting for ${what} (${seen})`));
      }, WAIT_MS);
      const entry = {
        check: () => failure !== null || check(),
        resolve: () => {
          clearTimeout(timer);
          if (failure !== null) reject(failure);
          else resolve();
        },
      };
      waiters.push(entry);
      poke();
    });

  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      try {
        run({ kind: 'client', bytes: new Uint8Array(chunk) });
      } catch (err) {
        failure = err;
      }
      callback();
    },
    final(callback) {
      callback();
    },
  });

  const run = (step: Step): void => {
    steps.push(step);
    const out = applyStep(engine, step);
    collector.add(out);
    serverPlaintext.push(...out.plaintext);
    events.push(...out.events);
    // Deliver on a later tick: the TLS client must not be re-entered from its own write.
    const records = out.toClient.map((r) => Buffer.from(r));
    if (records.length) setImmediate(() => duplex.push(Buffer.concat(records)));
    setImmediate(poke);
  };

  const received = (): number => serverPlaintext.reduce((n, p) => n + p.length, 0);
  const clientGot = (): number => clientChunks.reduce((n, c) => n + c.length, 0);
  const has = (pred: (e: TlsEvent) => boolean): boolean => events.some(pred);

  const client = tls.connect({
    socket: duplex,
    ca: caPem,
    servername: 'localhost',
    minVersion: 'TLSv1.3',
    ...clientOptions,
  });
  client.on('session', (session: Buffer) => sessions.push(session));
  client.on('data', (chunk: Buffer) => {
    clientChunks.push(chunk);
    poke();
  });
  client.on('error', (err) => {
    failure ??= err;
    poke();
  });
  let clientEnded = false;
  client.on('end', () => {
    clientEnded = true;
    poke();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      client.once('secureConnect', resolve);
      client.once('error', reject);
    });
    await until(() => has((e) => e.type === 'handshakeDone'), 'the engine handshake');

    const m = SESSION_MESSAGES;
    let want = 0;
    client.write(Buffer.from(m.clientHello));
    want += m.clientHello.length;
    await until(() => received() >= want, 'the first client message');

    run({ kind: 'send', data: m.serverReply });
    run({ kind: 'send', data: m.serverLarge });
    let clientWant = m.serverReply.length + m.serverLarge.length;
    await until(() => clientGot() >= clientWant, 'the server messages at the client');

    // OpenSSL answers a KeyUpdate that requests one on its next write, so the client
    // first reads data sent under the new key, then writes.
    run({ kind: 'keyUpdate', requestPeer: true });
    run({ kind: 'send', data: m.serverAfterUpdate });
    clientWant += m.serverAfterUpdate.length;
    await until(() => clientGot() >= clientWant, 'the data under the updated key');

    client.write(Buffer.from(m.clientAfterUpdate));
    want += m.clientAfterUpdate.length;
    await until(
      () => received() >= want && has((e) => e.type === 'keyUpdated' && e.direction === 'read'),
      "the client's KeyUpdate and data",
    );

    client.write(Buffer.from(m.clientLarge));
    want += m.clientLarge.length;
    await until(() => received() >= want, 'the large client message');

    client.end();
    await until(() => has((e) => e.type === 'peerClosed'), "the client's close_notify");
    run({ kind: 'close' });
    await until(() => has((e) => e.type === 'closed'), 'the closed event');
    duplex.push(null);
    await until(() => clientEnded, "the client's end");
  } finally {
    client.destroy();
    duplex.destroy();
  }
  if (failure !== null) throw failure;
  return {
    server,
    steps,
    output: collector.result(),
    clientReceived: new Uint8Array(Buffer.concat(clientChunks)),
    sessions,
  };
}

/** Runs `steps` on one fresh engine. */
export function runSteps(server: DeterministicServer, steps: readonly Step[]): RunResult {
  const engine = TlsServerEngine.create(server.config, server.deps());
  const c = new RunCollector();
  for (const step of steps) c.add(applyStep(engine, step));
  return c.result();
}

/** Splits every client chunk at the given offsets (per client step; offsets are taken modulo the chunk length). */
export function rechunk(steps: readonly Step[], splits: readonly (readonly number[])[]): Step[] {
  const out: Step[] = [];
  let clientIndex = 0;
  for (const step of steps) {
    if (step.kind !== 'client') {
      out.push(step);
      continue;
    }
    const raw = splits[clientIndex++] ?? [];
    const cuts = [...new Set(raw.map((x) => x % (step.bytes.length + 1)))].filter((x) => x > 0 && x < step.bytes.length).sort((a, b) => a - b);
    let at = 0;
    for (const cut of [...cuts, step.bytes.length]) {
      out.push({ kind: 'client', bytes: step.bytes.subarray(at, cut) });
      at = cut;
    }
  }
  return out;
}

/** Splits the client byte stream into whole TLS records, keeping the server steps in place. */
export function toRecordSteps(steps: readonly Step[]): Step[] {
  const out: Step[] = [];
  let pending: Uint8Array = new Uint8Array(0);
  for (const step of steps) {
    if (step.kind !== 'client') {
      out.push(step);
      continue;
    }
    pending = concat([pending, step.bytes]);
    while (pending.length >= 5) {
      const len = 5 + ((pending[3]! << 8) | pending[4]!);
      if (pending.length < len) break;
      out.push({ kind: 'client', bytes: pending.slice(0, len) });
      pending = pending.subarray(len);
    }
  }
  if (pending.length) out.push({ kind: 'client', bytes: pending.slice() });
  return out;
}
