/**
 * A TLS client (Node's own `tls`) that streams pseudo-random data through the
 * relay to an echo backend and checks every byte that comes back against what
 * it sent, so a lost, duplicated or reordered byte is caught at once. It keeps the
 * last session ticket the server sent, so a later connection can resume with it.
 */
import tls from 'node:tls';
import { seededRandom } from '../../util/random.js';

export interface VerifyingClientOptions {
  readonly host: string;
  readonly port: number;
  readonly ca: string;
  readonly servername: string;
  /** Seed of the data stream, so a failure can be reproduced. */
  readonly seed: string;
  /** Largest write, in bytes. Default 16384. */
  readonly maxChunk?: number;
  /** Bytes in flight (sent, not yet echoed) at most. Default 65536. */
  readonly window?: number;
  /** A ticket from an earlier connection ({@link VerifyingClient.ticket}): the handshake offers to resume it. */
  readonly session?: Buffer;
}

export class VerifyingClient {
  handshakes = 0;
  bytesSent = 0;
  bytesVerified = 0;
  readonly errors: string[] = [];
  /** The last session ticket the server sent on this connection (secret: kept in memory only). */
  ticket: Buffer | undefined;
  /** Whether the handshake resumed the offered session (no certificate, no full key exchange). */
  resumed = false;
  private socket: tls.TLSSocket | null = null;
  private readonly random;
  /** Sent but not yet verified, oldest first. */
  private unverified: Buffer[] = [];
  private streaming = false;
  private closed = false;
  private onClosed: (() => void) | null = null;
  private readonly closedOnce: Promise<void>;
  private markClosed!: () => void;

  constructor(private readonly opts: VerifyingClientOptions) {
    this.random = seededRandom(opts.seed);
    this.closedOnce = new Promise((resolve) => (this.markClosed = resolve));
  }

  /** Resolves once the connection closed, however it closed. */
  whenClosed(): Promise<void> {
    return this.closedOnce;
  }

  /** Bytes sent that have not come back (yet). */
  get bytesInFlight(): number {
    return this.bytesSent - this.bytesVerified;
  }

  /** Closes at once, without waiting for anything in flight (what is in flight is lost). */
  destroy(): void {
    this.streaming = false;
    this.socket?.destroy();
  }

  get connected(): boolean {
    return this.socket !== null && !this.closed;
  }

  /** Connects and completes the handshake. */
  connect(timeoutMs = 20_000): Promise<void> {
    const socket = tls.connect({
      host: this.opts.host,
      port: this.opts.port,
      ca: this.opts.ca,
      servername: this.opts.servername,
      minVersion: 'TLSv1.3',
      ...(this.opts.session ? { session: this.opts.session } : {}),
    });
    this.socket = socket;
    socket.on('secureConnect', () => {
      this.handshakes++;
      this.resumed = socket.isSessionReused();
    });
    socket.on('session', (ticket: Buffer) => (this.ticket = ticket));
    socket.on('data', (d: Buffer) => this.verify(d));
    socket.on('drain', () => this.pump());
    socket.on('error', (e) => this.errors.push(`socket error: ${e.message}`));
    socket.on('close', () => {
      this.closed = true;
      if (this.streaming) this.errors.push('connection closed while streaming');
      this.onClosed?.();
      this.markClosed();
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('handshake timed out')), timeoutMs);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  /** Streams until {@link stop}. */
  start(): void {
    this.streaming = true;
    this.pump();
  }

  private pump(): void {
    const socket = this.socket;
    const window = this.opts.window ?? 65_536;
    const maxChunk = this.opts.maxChunk ?? 16_384;
    while (this.streaming && socket && !this.closed && this.bytesSent - this.bytesVerified < window) {
      const r = this.random.bytes(3);
      const size = 1 + (((r[0]! << 8) | r[1]!) % maxChunk);
      const chunk = Buffer.from(this.random.bytes(size));
      this.unverified.push(chunk);
      this.bytesSent += size;
      if (!socket.write(chunk)) return;
    }
  }

  private verify(data: Buffer): void {
    let at = 0;
    while (at < data.length) {
      const head = this.unverified[0];
      if (!head) {
        this.errors.push(`received ${data.length - at} bytes more than was sent`);
        return;
      }
      const n = Math.min(head.length, data.length - at);
      if (!head.subarray(0, n).equals(data.subarray(at, at + n))) {
        this.errors.push(`byte mismatch at stream offset ${this.bytesVerified}`);
        this.streaming = false;
        return;
      }
      at += n;
      this.bytesVerified += n;
      if (n === head.length) this.unverified.shift();
      else this.unverified[0] = head.subarray(n);
    }
    this.pump();
  }

  /** Stops writing, waits until everything sent came back, then closes cleanly. */
  async stop(timeoutMs = 20_000): Promise<void> {
    this.streaming = false;
    const deadline = Date.now() + timeoutMs;
    while (this.bytesVerified < this.bytesSent && !this.closed && this.errors.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    if (this.bytesVerified < this.bytesSent && this.errors.length === 0) {
      this.errors.push(`${this.bytesSent - this.bytesVerified} bytes never came back`);
    }
    const socket = this.socket;
    if (!socket || this.closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.destroy();
        resolve();
      }, Math.max(1000, deadline - Date.now()));
      this.onClosed = () => {
        clearTimeout(timer);
        resolve();
      };
      socket.end();
    });
  }
}
