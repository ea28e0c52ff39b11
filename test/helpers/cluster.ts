/**
 * Shared pieces of the cluster suites: bounded waiting, and a cluster of relays
 * on loopback in front of an echo backend, serving the fixture certificate.
 */
import tls from 'node:tls';
import type { SupervisorEvent } from '../../src/actors/index.js';
import { startEchoBackend, type EchoBackend } from '../../src/cli/demo/echo-backend.js';
import { Cluster, type ClusterOptions } from '../../src/cluster/cluster.js';
import { caPem, fixture } from './interop.js';

export { sleep, until } from './wait.js';

/** The fixture ECDSA P-256 certificate for localhost, as the relays take it. */
export const P256_CERT = { cert: fixture('ecdsa-p256.pem'), key: fixture('ecdsa-p256-key.pem') };

export interface TestCluster {
  readonly cluster: Cluster;
  readonly backend: EchoBackend;
  /** Every supervisor event, in order. */
  readonly events: SupervisorEvent[];
  /** True when every relay is up. */
  allUp(): boolean;
  close(): Promise<void>;
}

/** Starts an echo backend and a cluster in front of it (3 relays, the P-256 fixture, unless overridden). */
export async function startTestCluster(opts: Partial<ClusterOptions> = {}): Promise<TestCluster> {
  const backend = await startEchoBackend();
  const events: SupervisorEvent[] = [];
  const cluster = await Cluster.start({
    relays: 3,
    listen: { host: '127.0.0.1', port: 0 },
    backend: { host: '127.0.0.1', port: backend.port },
    certificates: [P256_CERT],
    watchdogMs: 1000,
    ...opts,
    onEvent: (e) => {
      events.push(e);
      opts.onEvent?.(e);
    },
  });
  return {
    cluster,
    backend,
    events,
    allUp: () => cluster.relayNames.every((n) => cluster.threadIdOf(n) !== undefined),
    close: async () => {
      await cluster.close();
      await backend.close();
    },
  };
}

/** What one short connection saw. */
export interface Visit {
  /** SHA-256 fingerprint of the certificate served. */
  readonly fingerprint: string;
  readonly reused: boolean;
  /** The first ticket received, if any. */
  readonly session: Buffer | undefined;
  /** The relay that owned the connection. */
  readonly owner: string;
}

/** Connects with Node's tls (optionally resuming `session`), echoes a byte, and closes. */
export async function visit(cluster: Cluster, session?: Buffer): Promise<Visit> {
  const s = tls.connect({ host: '127.0.0.1', port: cluster.address.port, ca: caPem, servername: 'localhost', ...(session ? { session } : {}) });
  let ticket: Buffer | undefined;
  s.on('session', (t: Buffer) => (ticket ??= t));
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', () => resolve());
    s.once('error', reject);
  });
  const owner = cluster.gateway.connections().at(-1)!.owner ?? '';
  s.write('x');
  await new Promise((r) => s.once('data', r));
  const result = { fingerprint: s.getPeerX509Certificate()?.fingerprint256 ?? '', reused: s.isSessionReused(), session: ticket, owner };
  s.end();
  await new Promise((r) => s.once('close', r));
  return result;
}
