/**
 * `baton demo --nodes N`: N Baton nodes that form one cluster over a `nats-server -js`
 * of their own (loopback, a temporary store), one echo backend, and clients spread
 * over the nodes that stream verified data and keep their session tickets. Part way
 * through, one whole node is killed (SIGKILL): its live TCP connections die with it,
 * which no program can prevent, and whatever its clients had in flight is lost. Those
 * clients reconnect to the surviving nodes with their tickets and resume there
 * without a full handshake, since the nodes share one ticket-key schedule. The summary
 * counts connections, resumptions against full handshakes, bytes verified, the bytes
 * lost with the killed node (reported, never hidden), and errors.
 *
 * Every wait is bounded, and the child processes, the nats-server and the temporary
 * folder are removed on success, on failure and on Ctrl-C.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { startNatsServer, type NatsServer } from '../../cluster/nats-server-process.js';
import { startEchoBackend, type EchoBackend } from './echo-backend.js';
import { NodeProcess } from './node-process.js';
import { VerifyingClient } from './verifying-client.js';

export const MIN_NODES = 2;
export const MAX_NODES = 5;

export interface NodesDemoOptions {
  readonly nodes: number;
  /** Relays on each node. */
  readonly relays: number;
  readonly clients: number;
  readonly durationMs: number;
  /** When the node is killed, from the start of the traffic. */
  readonly killAtMs: number;
  readonly watchdogMs: number;
  readonly out: NodeJS.WritableStream;
  /** Ends the run early (clients stop cleanly, everything is cleaned up, the summary is printed). */
  readonly stop?: AbortSignal;
  /** Randomness of the choice of the node to kill; Math.random by default. */
  readonly pick?: (n: number) => number;
  /** Bound on each node's start. Default 90 s (a node boots a TypeScript toolchain in a checkout). */
  readonly nodeReadyTimeoutMs?: number;
}

export interface NodesDemoSummary {
  readonly seconds: number;
  readonly nodes: number;
  readonly clients: number;
  /** The node killed, when, and the live connections it held; null if the run ended first. */
  readonly killed: { readonly node: string; readonly atSeconds: number; readonly connections: number } | null;
  /** Every TLS connection the clients made, the first ones and the reconnects. */
  readonly connections: number;
  readonly fullHandshakes: number;
  readonly resumptions: number;
  /** Connections made after the kill by the killed node's clients, and how many of them resumed. */
  readonly reconnects: number;
  readonly reconnectsResumed: number;
  /** From the kill to the last of its clients back on a surviving node, in ms; null if none came back. */
  readonly backAfterMs: number | null;
  readonly bytesVerified: number;
  /** Everything a client sent that never came back verified. */
  readonly bytesLost: number;
  /** Of {@link bytesLost}: what was in flight on the killed node's connections when it died. */
  readonly bytesLostWithKilledNode: number;
  /** What went wrong that a node's death does not explain. */
  readonly errors: readonly string[];
  /** What the killed node's connections saw as they died (expected). */
  readonly expectedLosses: readonly string[];
  readonly interrupted: boolean;
  readonly ok: boolean;
}

/** Bounds on the waits of a run. */
const CONNECT_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
/** How long the killed node's connections may take to be seen closed before they are closed here. */
const DEATH_NOTICE_MS = 10_000;
const CLUSTER_NAME = 'demo';

/** One TLS connection of a client: which node it went to and how it ended. */
interface Connection {
  readonly node: NodeProcess;
  readonly client: VerifyingClient;
  /** Made by a client of the killed node after the kill, in place of the connection that died. */
  readonly reconnect: boolean;
  /** Closed because its node was killed: its errors and its bytes in flight are the expected loss. */
  diedWithNode: boolean;
}

/** A client of the demo: its connections one after another; the last is the current one. */
interface Seat {
  readonly index: number;
  readonly connections: Connection[];
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
const count = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the demo to its end and returns the summary (printed too); throws only when the nodes cannot be started. */
export async function runNodesDemo(opts: NodesDemoOptions): Promise<NodesDemoSummary> {
  const pick = opts.pick ?? ((n: number) => Math.floor(Math.random() * n));
  const write = (s: string) => opts.out.write(s);
  const dir = mkdtempSync(join(tmpdir(), 'baton-demo-'));
  let nats: NatsServer | undefined;
  let backend: EchoBackend | undefined;
  const nodes: NodeProcess[] = [];
  const seats: Seat[] = [];
  const errors: string[] = [];
  const pending = new Set<Promise<void>>();
  let stopping = false;
  let killed: { node: NodeProcess; at: number; connections: number } | null = null;
  let started = Date.now();
  let lastBackAt: number | null = null;
  // A process that exits without this run's clean-up (a second Ctrl-C) still leaves nothing behind.
  const onExit = () => {
    for (const n of nodes) n.killNow();
    nats?.killNow();
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', onExit);
  try {
    nats = await startNatsServer({ storeDir: join(dir, 'nats'), ownProcessGroup: true });
    backend = await startEchoBackend();
    write(`baton demo: ${opts.nodes} nodes of cluster ${CLUSTER_NAME} on ${nats.url} (nats-server pid ${nats.pid}, folder ${dir}), echo backend on 127.0.0.1:${backend.port}\n`);
    const start = async (k: number) => {
      const node = await NodeProcess.start({
        name: `node-${k}`,
        cluster: CLUSTER_NAME,
        natsUrl: nats!.url,
        backendPort: backend!.port,
        relays: opts.relays,
        watchdogMs: opts.watchdogMs,
        readyTimeoutMs: opts.nodeReadyTimeoutMs ?? 90_000,
        ...(opts.stop ? { signal: opts.stop } : {}),
      });
      nodes.push(node);
      write(`  ${node.name} pid ${node.pid} on 127.0.0.1:${node.port}\n`);
    };
    // The first node starts the cluster's configuration; the others join it and serve its version.
    await start(1);
    const rest = await Promise.allSettled(Array.from({ length: opts.nodes - 1 }, (_, i) => start(i + 2)));
    const failed = rest.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    nodes.sort((a, b) => a.name.localeCompare(b.name));
    const fingerprint = nodes[0]!.fingerprint256;
    const other = nodes.find((n) => n.fingerprint256 !== fingerprint);
    if (other) throw new Error(`${other.name} serves certificate sha256 ${other.fingerprint256}, not the cluster's ${fingerprint}`);
    // The nodes serve a certificate made in memory by node-1; it is trusted as the fingerprint every node printed.
    const ca = await pinnedCertificate(nodes[0]!.port, fingerprint);

    const connect = async (seat: Seat, node: NodeProcess, reconnect: boolean): Promise<void> => {
      // The last ticket any of its connections got (a reconnect that failed got none).
      let ticket: Buffer | undefined;
      for (const c of seat.connections) ticket = c.client.ticket ?? ticket;
      const client = new VerifyingClient({
        host: '127.0.0.1',
        port: node.port,
        ca,
        servername: 'localhost',
        seed: `demo-client-${seat.index}-${seat.connections.length}`,
        window: 256 * 1024,
        ...(ticket ? { session: ticket } : {}),
      });
      const conn: Connection = { node, client, reconnect, diedWithNode: false };
      seat.connections.push(conn);
      await client.connect(CONNECT_TIMEOUT_MS);
      void client.whenClosed().then(() => onClosed(seat, conn));
      if (!stopping) client.start();
    };

    /** A connection closed: the expected death with its node, or an error; either way the client carries on elsewhere. */
    const onClosed = (seat: Seat, conn: Connection) => {
      if (stopping || seat.connections.at(-1) !== conn) return;
      if (killed?.node === conn.node) conn.diedWithNode = true;
      else errors.push(`client ${seat.index}: its connection on ${conn.node.name} closed while streaming${conn.client.errors.length ? ` (${conn.client.errors[0]})` : ''}`);
      const p = reconnect(seat, conn.diedWithNode).finally(() => pending.delete(p));
      pending.add(p);
    };

    /** To a surviving node (the next one after its seat, then the others), with the last ticket; bounded tries. */
    const reconnect = async (seat: Seat, afterDeath: boolean) => {
      const survivors = nodes.filter((n) => n.alive && n !== killed?.node);
      for (let attempt = 0; attempt < survivors.length && !stopping; attempt++) {
        const node = survivors[(seat.index + attempt) % survivors.length]!;
        try {
          await connect(seat, node, afterDeath);
          const c = seat.connections.at(-1)!.client;
          if (afterDeath) lastBackAt = Date.now();
          write(`  client ${seat.index} reconnected to ${node.name}: ${c.resumed ? 'session resumed' : 'full handshake'}\n`);
          return;
        } catch (e) {
          errors.push(`client ${seat.index}: reconnect to ${node.name} failed: ${(e as Error).message}`);
        }
      }
    };

    for (let i = 0; i < opts.clients; i++) seats.push({ index: i, connections: [] });
    await Promise.all(seats.map((s) => connect(s, nodes[s.index % nodes.length]!, false)));
    started = Date.now();
    write(
      `  ${opts.clients} clients over ${opts.nodes} nodes, streaming for ${opts.durationMs / 1000} s; ` +
        `one node killed (SIGKILL) at ${(opts.killAtMs / 1000).toFixed(1)} s\n`,
    );

    const current = () => seats.map((s) => s.connections.at(-1)!);
    const all = () => seats.flatMap((s) => s.connections);
    let last = started;
    while (Date.now() - started < opts.durationMs && !opts.stop?.aborted) {
      await sleep(50);
      if (killed === null && Date.now() - started >= opts.killAtMs) {
        // A node that holds clients; its connections die with it.
        const holding = nodes.filter((n) => current().some((c) => c.node === n));
        const victim = holding[pick(holding.length)]!;
        const on = current().filter((c) => c.node === victim);
        killed = { node: victim, at: Date.now(), connections: on.length };
        await victim.kill();
        write(`  t=${((killed.at - started) / 1000).toFixed(1)}s killed ${victim.name} (pid ${victim.pid}) with SIGKILL: ${count(on.length, 'live connection')} die with it\n`);
        // Loopback sockets of a dead process close at once; any still open after the bound is closed here.
        const deadline = Date.now() + DEATH_NOTICE_MS;
        while (on.some((c) => c.client.connected) && Date.now() < deadline) await sleep(20);
        for (const c of on) if (c.client.connected) c.client.destroy();
      }
      if (Date.now() - last >= 2_000) {
        last = Date.now();
        const conns = all();
        write(
          `  t=${((last - started) / 1000).toFixed(1)}s nodes up ${nodes.filter((n) => n.alive).length}/${nodes.length} ` +
            `connections ${current().filter((c) => c.client.connected).length}/${seats.length} verified=${mb(conns.reduce((a, c) => a + c.client.bytesVerified, 0))} MB ` +
            `resumed=${conns.filter((c) => c.client.resumed).length} errors=${errors.length}\n`,
        );
      }
    }
    // The reconnects under way finish (each bounded), then every client stops cleanly.
    await Promise.all([...pending]);
    stopping = true;
    await Promise.all(current().filter((c) => c.client.connected).map((c) => c.client.stop(STOP_TIMEOUT_MS)));
  } finally {
    stopping = true;
    for (const s of seats) for (const c of s.connections) c.client.destroy();
    await Promise.all(nodes.map((n) => n.stop()));
    await nats?.stop();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
    process.off('exit', onExit);
  }

  const conns = seats.flatMap((s) => s.connections);
  const died = conns.filter((c) => c.diedWithNode);
  for (const s of seats) {
    for (const c of s.connections) if (!c.diedWithNode) errors.push(...c.client.errors.map((e) => `client ${s.index} on ${c.node.name}: ${e}`));
  }
  const reconnects = conns.filter((c) => c.reconnect && c.client.handshakes > 0);
  const bytesSent = conns.reduce((a, c) => a + c.client.bytesSent, 0);
  const bytesVerified = conns.reduce((a, c) => a + c.client.bytesVerified, 0);
  const handshaken = conns.filter((c) => c.client.handshakes > 0);
  const summary: NodesDemoSummary = {
    seconds: (Date.now() - started) / 1000,
    nodes: opts.nodes,
    clients: opts.clients,
    killed: killed && { node: killed.node.name, atSeconds: (killed.at - started) / 1000, connections: killed.connections },
    connections: handshaken.length,
    fullHandshakes: handshaken.filter((c) => !c.client.resumed).length,
    resumptions: handshaken.filter((c) => c.client.resumed).length,
    reconnects: reconnects.length,
    reconnectsResumed: reconnects.filter((c) => c.client.resumed).length,
    backAfterMs: killed && lastBackAt !== null ? lastBackAt - killed.at : null,
    bytesVerified,
    bytesLost: bytesSent - bytesVerified,
    bytesLostWithKilledNode: died.reduce((a, c) => a + c.client.bytesInFlight, 0),
    errors,
    expectedLosses: died.flatMap((c) => c.client.errors.slice(0, 1).map((e) => `${c.node.name}: ${e}`)),
    interrupted: opts.stop?.aborted === true,
    ok: false,
  };
  const everyoneBack = summary.killed === null || (summary.reconnects === died.length && summary.reconnectsResumed === summary.reconnects);
  const ok = errors.length === 0 && everyoneBack && summary.bytesLost === summary.bytesLostWithKilledNode;
  write(describeSummary({ ...summary, ok }));
  return { ...summary, ok };
}

/** The summary as the demo prints it. */
export function describeSummary(s: NodesDemoSummary): string {
  const elsewhere = s.bytesLost - s.bytesLostWithKilledNode;
  return [
    '',
    `summary: ${s.ok ? 'OK' : 'FAILED'} after ${s.seconds.toFixed(1)} s, ${s.nodes} nodes${s.interrupted ? ', stopped early (signal)' : ''}`,
    s.killed
      ? `  killed ${s.killed.node} at ${s.killed.atSeconds.toFixed(1)} s: its ${count(s.killed.connections, 'live TCP connection')} died with it; ` +
        `${count(s.reconnects, 'reconnect')} to the surviving nodes, ${s.reconnectsResumed} resumed their session, ${count(s.reconnects - s.reconnectsResumed, 'full handshake')}` +
        (s.backAfterMs === null ? '' : `; the last back ${s.backAfterMs} ms after the kill`)
      : '  no node killed (the run ended first)',
    `  ${count(s.connections, 'connection')} from ${count(s.clients, 'client')}: ${count(s.fullHandshakes, 'full handshake')}, ${count(s.resumptions, 'resumption')}`,
    `  ${mb(s.bytesVerified)} MB verified (${s.bytesVerified} bytes), ${s.bytesLost} bytes lost (${s.bytesLostWithKilledNode} in flight on the killed node's connections, ${elsewhere} elsewhere)`,
    `  ${count(s.errors.length, 'error')}${s.killed ? ` (besides the ${count(s.killed.connections, 'connection')} lost with ${s.killed.node})` : ''}`,
    ...s.errors.slice(0, 10).map((e) => `  error: ${e}`),
    ...s.expectedLosses.slice(0, 3).map((e) => `  expected: ${e}`),
    '',
  ].join('\n');
}

/**
 * The certificate a node serves, as PEM, taken from a handshake and kept only if its
 * fingerprint is the one the node printed: the clients then verify against it.
 */
async function pinnedCertificate(port: number, fingerprint256: string): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  try {
    const pem = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no handshake with 127.0.0.1:${port} after ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      socket.once('error', (e) => (clearTimeout(timer), reject(e)));
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        const cert = socket.getPeerX509Certificate();
        if (cert?.fingerprint256 !== fingerprint256) reject(new Error(`127.0.0.1:${port} served a certificate other than sha256 ${fingerprint256}`));
        else resolve(cert.toString());
      });
    });
    return pem;
  } finally {
    socket.destroy();
  }
}
