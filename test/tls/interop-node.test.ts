/**
 * Interop: Node's own TLS 1.3 client (OpenSSL inside) against our engine over
 * loopback TCP. Every wait is bounded; no timing assertions.
 */
import { createHash, randomBytes } from 'node:crypto';
import tls, { type ConnectionOptions, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import type { TlsEvent, TlsServerConfig } from '../../src/tls/types.js';
import { startEngineServer, waitFor, type EngineConnection, type EngineServer } from '../helpers/engine-server.js';
import { HANDSHAKE_LABELS, caPem, fixtureCertificates, keyLogsForComparison } from '../helpers/interop.js';

const TEST_TIMEOUT = 20_000;
const WAIT = 10_000;

const certs = fixtureCertificates();
/** Config order: the P-256 certificate is the default. */
const certificates = [certs.p256, certs.rsa, certs.ed25519, certs.p384];

const servers: EngineServer[] = [];
const clients: TLSSocket[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(
  extra: Partial<TlsServerConfig> = {},
  serverOpts: { receiveChunk?: number; restoreEachCall?: boolean } = {},
): Promise<EngineServer> {
  const srv = await startEngineServer({ config: { certificates, keyLog: true, ...extra }, ...serverOpts });
  servers.push(srv);
  return srv;
}

function newTicketKey(): { id: Uint8Array; secret: Uint8Array } {
  return { id: new Uint8Array(randomBytes(16)), secret: new Uint8Array(randomBytes(32)) };
}

/** Connects expecting failure; resolves with the client's error. */
async function connectFails(srv: EngineServer, opts: ConnectionOptions): Promise<Error & { code?: string }> {
  return connect(srv, opts).then(
    () => {
      throw new Error('the handshake unexpectedly succeeded');
    },
    (e: unknown) => e as Error & { code?: string },
  );
}

interface Client {
  socket: TLSSocket;
  keyLog: string[];
  sessions: Buffer[];
  chunks: Buffer[];
  received: number;
}

/** Connects a Node TLS 1.3 client; resolves on secureConnect, rejects on error or after WAIT. */
function connect(srv: EngineServer, opts: ConnectionOptions = {}): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: srv.port,
      ca: caPem,
      servername: 'localhost',
      minVersion: 'TLSv1.3',
      ...opts,
    });
    clients.push(socket);
    const client: Client = { socket, keyLog: [], sessions: [], chunks: [], received: 0 };
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no secureConnect within ${WAIT} ms`));
    }, WAIT);
    socket.on('keylog', (line: Buffer) => client.keyLog.push(line.toString('latin1')));
    socket.on('session', (s: Buffer) => client.sessions.push(s));
    socket.on('data', (d: Buffer) => {
      client.chunks.push(d);
      client.received += d.length;
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      resolve(client);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error('socket closed before secureConnect'));
    });
  });
}

/** Writes `data` and resolves with the next `data.length` bytes the client reads. */
async function echo(client: Client, data: Buffer, timeoutMs = WAIT): Promise<Buffer> {
  const start = client.received;
  client.socket.write(data);
  await waitFor(() => client.received >= start + data.length, timeoutMs, `echo of ${data.length} bytes`);
  return Buffer.concat(client.chunks).subarray(start, start + data.length);
}

/**
 * The engine's handshakeDone event. Waited for: a TLS 1.3 client reports
 * secureConnect on the server Finished, before our engine has read its Finished.
 */
async function handshakeDone(conn: EngineConnection): Promise<Extract<TlsEvent, { type: 'handshakeDone' }>> {
  const find = (): Extract<TlsEvent, { type: 'handshakeDone' }> | undefined => {
    const ev = conn.events.find((e) => e.type === 'handshakeDone');
    return ev?.type === 'handshakeDone' ? ev : undefined;
  };
  return waitFor(find, WAIT, 'the engine handshakeDone event');
}

function alertsSent(conn: EngineConnection): string[] {
  return conn.events.flatMap((e) => (e.type === 'alertSent' ? [e.alert] : []));
}

/** Asserts that the Node client's key log and the engine's agree (as sets). */
function expectKeyLogsMatch(client: Client, conn: EngineConnection): void {
  const { client: c, engine: e, engineLabels } = keyLogsForComparison(client.keyLog, conn.keyLog);
  for (const label of HANDSHAKE_LABELS) expect(engineLabels).toContain(label);
  expect(c).toEqual(e);
}

describe('interop: Node tls client -> engine', () => {
  const suites = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const;
  for (const suite of suites) {
    it(
      `handshakes and echoes with ${suite}; key logs agree`,
      async () => {
        const srv = await start();
        // Node has no `ciphersuites` option: TLS_* names in `ciphers` set OpenSSL's
        // TLS 1.3 suite list, so the client offers this suite alone.
        const client = await connect(srv, { ciphers: suite });
        const back = await echo(client, Buffer.from(`hello over ${suite}\n`));
        expect(back.toString()).toBe(`hello over ${suite}\n`);
        expect(client.socket.getCipher().standardName).toBe(suite);
        expect(client.socket.getProtocol()).toBe('TLSv1.3');
        const conn = await srv.connection(0);
        expect(await handshakeDone(conn)).toMatchObject({ cipherSuite: suite, resumed: false, helloRetry: false });
        expectKeyLogsMatch(client, conn);
      },
      TEST_TIMEOUT,
    );
  }

  const groups = [
    ['X25519', 'x25519', 'X25519'],
    ['P-256', 'secp256r1', 'prime256v1'],
    ['P-384', 'secp384r1', 'secp384r1'],
  ] as const;
  for (const [curve, group, nodeName] of groups) {
    it(
      `handshakes with group ${curve} without a HelloRetryRequest`,
      async () => {
        const srv = await start();
        const client = await connect(srv, { ecdhCurve: curve });
        expect((await echo(client, Buffer.from('group\n'))).toString()).toBe('group\n');
        expect(client.socket.getEphemeralKeyInfo()).toMatchObject({ name: nodeName });
        const conn = await srv.connection(0);
        expect(await handshakeDone(conn)).toMatchObject({ group, helloRetry: false });
        expectKeyLogsMatch(client, conn);
      },
      TEST_TIMEOUT,
    );
  }

  const byName = [
    ['rsa.example.test', 'DNS:rsa.example.test, DNS:localhost', {}],
    ['ed.example.test', 'DNS:ed.example.test', {}],
    ['p384.example.test', 'DNS:p384.example.test', {}],
    // A wildcard SAN of the default certificate.
    ['www.example.test', 'DNS:localhost, DNS:*.example.test, IP Address:127.0.0.1', {}],
    // localhost is on the P-256 (first) and RSA certificates: a client that only
    // accepts RSA-PSS signatures gets the RSA one.
    ['localhost', 'DNS:rsa.example.test, DNS:localhost', { sigalgs: 'rsa_pss_rsae_sha256:rsa_pss_rsae_sha384' }],
    ['localhost', 'DNS:localhost, DNS:*.example.test, IP Address:127.0.0.1', {}],
  ] as const;
  for (const [name, san, extra] of byName) {
    const label = 'sigalgs' in extra ? `${name} with sigalgs ${extra.sigalgs}` : name;
    it(
      `SNI ${label} selects the certificate with ${san}`,
      async () => {
        const srv = await start();
        const client = await connect(srv, { servername: name, ...extra });
        expect(client.socket.getPeerCertificate().subjectaltname).toBe(san);
        expect(client.socket.authorized).toBe(true);
        expect((await echo(client, Buffer.from('sni\n'))).toString()).toBe('sni\n');
        const conn = await srv.connection(0);
        expect((await handshakeDone(conn)).serverName).toBe(name);
        expectKeyLogsMatch(client, conn);
      },
      TEST_TIMEOUT,
    );
  }

  it(
    'sends the whole chain (P-384 leaf + CA) and Ed25519 with its only scheme',
    async () => {
      const srv = await start();
      const client = await connect(srv, { servername: 'p384.example.test' });
      const leaf = client.socket.getPeerCertificate(true);
      expect(leaf.subject.CN).toBe('p384.example.test');
      expect(leaf.issuerCertificate?.subject.CN).toBe('Baton Test CA');
      const ed = await connect(srv, { servername: 'ed.example.test', sigalgs: 'ed25519' });
      expect(ed.socket.getPeerCertificate().subject.CN).toBe('ed.example.test');
    },
    TEST_TIMEOUT,
  );

  it(
    'without SNI serves the default certificate (verified by its IP SAN)',
    async () => {
      const srv = await start();
      // Node sends no SNI for an IP host; checkServerIdentity then checks the IP SAN.
      const client = await connect(srv, { servername: undefined });
      expect(client.socket.getPeerCertificate().subjectaltname).toContain('IP Address:127.0.0.1');
      expect((await echo(client, Buffer.from('no sni\n'))).toString()).toBe('no sni\n');
      const conn = await srv.connection(0);
      expect((await handshakeDone(conn)).serverName).toBeNull();
    },
    TEST_TIMEOUT,
  );

  it(
    'negotiates ALPN in server preference order',
    async () => {
      const srv = await start({ alpn: ['h2', 'http/1.1'] });
      const client = await connect(srv, { ALPNProtocols: ['http/1.1', 'h2'] });
      expect(client.socket.alpnProtocol).toBe('h2');
      const conn = await srv.connection(0);
      expect((await handshakeDone(conn)).alpn).toBe('h2');
      const only = await connect(srv, { ALPNProtocols: ['http/1.1'] });
      expect(only.socket.alpnProtocol).toBe('http/1.1');
      expect((await handshakeDone(await srv.connection(1))).alpn).toBe('http/1.1');
    },
    TEST_TIMEOUT,
  );

  it(
    'negotiates no ALPN when the client offers none',
    async () => {
      const srv = await start({ alpn: ['h2'] });
      const client = await connect(srv);
      expect(client.socket.alpnProtocol).toBe(false);
      expect((await handshakeDone(await srv.connection(0))).alpn).toBeNull();
    },
    TEST_TIMEOUT,
  );

  it(
    'fails a non-overlapping ALPN list with no_application_protocol',
    async () => {
      const srv = await start({ alpn: ['h2', 'http/1.1'] });
      const err = await connectFails(srv, { ALPNProtocols: ['spdy/3'] });
      expect(err.message).toMatch(/no application protocol|alert number 120/i);
      const conn = await srv.connection(0);
      await waitFor(() => alertsSent(conn).length > 0, WAIT, 'the engine to send an alert');
      expect(alertsSent(conn)).toEqual(['no_application_protocol']);
      expect(conn.events.some((e) => e.type === 'handshakeDone')).toBe(false);
      await waitFor(() => conn.events.some((e) => e.type === 'closed'), WAIT, 'a closed event');
    },
    TEST_TIMEOUT,
  );

  it(
    'survives a KeyUpdate started by the server (update_requested) and one without a request',
    async () => {
      const srv = await start();
      const client = await connect(srv);
      expect((await echo(client, Buffer.from('before\n'))).toString()).toBe('before\n');
      const conn = await srv.connection(0);

      const updates = (): string[] =>
        conn.events.flatMap((e) => (e.type === 'keyUpdated' ? [e.direction] : []));

      conn.keyUpdate(true);
      expect(conn.error).toBeUndefined();
      expect(updates()).toEqual(['write']);
      expect((await echo(client, Buffer.from('after one\n'))).toString()).toBe('after one\n');

      conn.keyUpdate(false);
      const payload = randomBytes(50_000);
      expect((await echo(client, payload)).equals(payload)).toBe(true);
      // OpenSSL answers update_requested with its own KeyUpdate no later than its
      // next write, so after these round trips the engine has read it.
      expect((await echo(client, Buffer.from('last\n'))).toString()).toBe('last\n');
      await waitFor(() => updates().includes('read'), WAIT, "the client's KeyUpdate");
      // Ours twice; the client's once (an update_not_requested answer needs no reply).
      expect(updates().filter((d) => d === 'write')).toHaveLength(2);
      expect(updates().filter((d) => d === 'read')).toHaveLength(1);
      expect(alertsSent(conn)).toEqual([]);
    },
    TEST_TIMEOUT,
  );

  // Node 20's TLSSocket has no API to send a KeyUpdate (OpenSSL's SSL_key_update is
  // not exposed), so a client-initiated KeyUpdate is covered by interop-openssl
  // (s_client's `K` and `k` commands) instead.

  it(
    'resumes a session from a ticket on a second connection',
    async () => {
      const ticketKeys = { current: newTicketKey() };
      const srv = await start({ ticketKeys });
      const first = await connect(srv);
      expect((await echo(first, Buffer.from('first\n'))).toString()).toBe('first\n');
      await waitFor(() => first.sessions.length > 0, WAIT, 'a session ticket on the first connection');
      expect(first.socket.isSessionReused()).toBe(false);
      first.socket.end();

      const second = await connect(srv, { session: first.sessions[first.sessions.length - 1]! });
      expect(second.socket.isSessionReused()).toBe(true);
      expect((await echo(second, Buffer.from('second\n'))).toString()).toBe('second\n');
      const conn = await srv.connection(1);
      expect(await handshakeDone(conn)).toMatchObject({ resumed: true, helloRetry: false });
      expect((await handshakeDone(await srv.connection(0))).resumed).toBe(false);
      expectKeyLogsMatch(second, conn);
    },
    TEST_TIMEOUT,
  );

  it(
    'forces a HelloRetryRequest when the client guesses the wrong group',
    async () => {
      // OpenSSL sends a key share for its first group only (P-256 here); the server
      // accepts only X25519, so it must ask again (RFC 8446 section 4.1.4).
      const srv = await start({ groups: ['x25519'] });
      const client = await connect(srv, { ecdhCurve: 'P-256:X25519' });
      expect((await echo(client, Buffer.from('after hrr\n'))).toString()).toBe('after hrr\n');
      expect(client.socket.getEphemeralKeyInfo()).toMatchObject({ name: 'X25519' });
      const conn = await srv.connection(0);
      expect(await handshakeDone(conn)).toMatchObject({ helloRetry: true, group: 'x25519' });
      expectKeyLogsMatch(client, conn);
    },
    TEST_TIMEOUT,
  );

  it(
    'forces a HelloRetryRequest towards P-384',
    async () => {
      const srv = await start({ groups: ['secp384r1'] });
      const client = await connect(srv, { ecdhCurve: 'X25519:P-384' });
      expect((await echo(client, Buffer.from('hrr 384\n'))).toString()).toBe('hrr 384\n');
      const conn = await srv.connection(0);
      expect(await handshakeDone(conn)).toMatchObject({ helloRetry: true, group: 'secp384r1' });
    },
    TEST_TIMEOUT,
  );

  it(
    'echoes 1 MiB of random data byte-exact',
    async () => {
      const srv = await start();
      const client = await connect(srv);
      const data = randomBytes(1 << 20);
      const back = await echo(client, data, 15_000);
      expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
      const conn = await srv.connection(0);
      expect(conn.plaintextBytes).toBe(1 << 20);
      expect(conn.engine.counters.plaintextReceived).toBe(1 << 20);
      expect(conn.engine.counters.plaintextSent).toBe(1 << 20);
    },
    TEST_TIMEOUT,
  );

  it(
    'answers the client close_notify with its own and closes cleanly',
    async () => {
      const srv = await start();
      const client = await connect(srv);
      expect((await echo(client, Buffer.from('bye\n'))).toString()).toBe('bye\n');
      const ended = new Promise<void>((resolve) => client.socket.once('end', () => resolve()));
      client.socket.end();
      const conn = await srv.connection(0);
      await waitFor(() => conn.events.some((e) => e.type === 'peerClosed'), WAIT, 'peerClosed');
      await Promise.race([
        ended,
        new Promise((_, reject) => setTimeout(() => reject(new Error('client saw no end')), WAIT)),
      ]);
      await waitFor(() => conn.events.some((e) => e.type === 'closed'), WAIT, 'a closed event');
      const closed = conn.events.find((e) => e.type === 'closed');
      expect(closed).toEqual({ type: 'closed', error: false });
      expect(conn.engine.phase).toBe('closed');
      expect(conn.error).toBeUndefined();
    },
    TEST_TIMEOUT,
  );

  // RFC 8446 section 4.2.10 ties the ALPN protocol to the ticket only for 0-RTT
  // (which we never accept); an ordinary resumption negotiates ALPN afresh, so a
  // client whose ALPN list changed must still connect (resumed or not).
  for (const [first, second, expected] of [
    [['h2'], undefined, false],
    [['h2'], ['http/1.1'], 'http/1.1'],
  ] as const) {
    it(
      `resumes a ticket from an ALPN ${first.join(',')} session with ALPN ${second?.join(',') ?? '(none)'}`,
      async () => {
        const srv = await start({ alpn: ['h2', 'http/1.1'], ticketKeys: { current: newTicketKey() } });
        const a = await connect(srv, { ALPNProtocols: [...first] });
        expect((await echo(a, Buffer.from('one\n'))).toString()).toBe('one\n');
        await waitFor(() => a.sessions.length > 0, WAIT, 'a session ticket');
        a.socket.end();
        const b = await connect(srv, {
          session: a.sessions[a.sessions.length - 1]!,
          ...(second === undefined ? {} : { ALPNProtocols: [...second] }),
        });
        expect(b.socket.alpnProtocol).toBe(expected);
        expect((await echo(b, Buffer.from('two\n'))).toString()).toBe('two\n');
        const conn = await srv.connection(1);
        expect(alertsSent(conn)).toEqual([]);
        expect((await handshakeDone(conn)).alpn).toBe(expected === false ? null : expected);
      },
      TEST_TIMEOUT,
    );
  }

  it(
    'resumes on another server that shares the ticket keys, and with a rotated-out (previous) key',
    async () => {
      const old = newTicketKey();
      const a = await start({ ticketKeys: { current: old } });
      const first = await connect(a);
      expect((await echo(first, Buffer.from('a\n'))).toString()).toBe('a\n');
      await waitFor(() => first.sessions.length > 0, WAIT, 'a session ticket');
      const session = first.sessions[first.sessions.length - 1]!;
      first.socket.end();

      // Another process with the same keys: an abbreviated handshake.
      const b = await start({ ticketKeys: { current: old } });
      const onB = await connect(b, { session });
      expect(onB.socket.isSessionReused()).toBe(true);
      expect((await echo(onB, Buffer.from('b\n'))).toString()).toBe('b\n');
      expect((await handshakeDone(await b.connection(0))).resumed).toBe(true);

      // After a rotation the old key is `previous`: still accepted.
      const c = await start({ ticketKeys: { current: newTicketKey(), previous: [old] } });
      const onC = await connect(c, { session });
      expect(onC.socket.isSessionReused()).toBe(true);
      expect((await handshakeDone(await c.connection(0))).resumed).toBe(true);

      // A server that never had the key: a full handshake, not a failure.
      const d = await start({ ticketKeys: { current: newTicketKey() } });
      const onD = await connect(d, { session });
      expect(onD.socket.isSessionReused()).toBe(false);
      expect((await echo(onD, Buffer.from('d\n'))).toString()).toBe('d\n');
      expect((await handshakeDone(await d.connection(0))).resumed).toBe(false);
    },
    TEST_TIMEOUT,
  );

  it(
    'handshakes and echoes when every client byte reaches the engine alone',
    async () => {
      const srv = await start({}, { receiveChunk: 1 });
      const client = await connect(srv);
      const data = randomBytes(40_000);
      expect((await echo(client, data)).equals(data)).toBe(true);
      const conn = await srv.connection(0);
      expectKeyLogsMatch(client, conn);
    },
    TEST_TIMEOUT,
  );

  it(
    'echoes 256 KiB with small outgoing records (maxRecordPlaintext 512)',
    async () => {
      const srv = await start({ maxRecordPlaintext: 512 });
      const client = await connect(srv);
      const data = randomBytes(256 * 1024);
      expect((await echo(client, data)).equals(data)).toBe(true);
    },
    TEST_TIMEOUT,
  );

  it(
    'carries on when the engine is restored from its snapshot after every call (HRR, KeyUpdate, tickets)',
    async () => {
      const srv = await start(
        { groups: ['x25519', 'secp256r1'], ticketKeys: { current: newTicketKey() }, alpn: ['h2'] },
        { restoreEachCall: true, receiveChunk: 100 },
      );
      // P-384 first: not configured, so the server asks again (HRR) for x25519.
      const client = await connect(srv, { ecdhCurve: 'P-384:X25519', ALPNProtocols: ['h2'] });
      const conn = await srv.connection(0);
      expect(await handshakeDone(conn)).toMatchObject({ helloRetry: true, group: 'x25519', alpn: 'h2' });
      const data = randomBytes(100_000);
      expect((await echo(client, data)).equals(data)).toBe(true);
      conn.keyUpdate(true);
      expect((await echo(client, data)).equals(data)).toBe(true);
      expect((await echo(client, Buffer.from('again\n'))).toString()).toBe('again\n');
      expect(conn.restores).toBeGreaterThan(10);
      expect(conn.error).toBeUndefined();
      expectKeyLogsMatch(client, conn);

      await waitFor(() => client.sessions.length > 0, WAIT, 'a session ticket');
      const again = await connect(srv, {
        session: client.sessions[client.sessions.length - 1]!,
        ALPNProtocols: ['h2'],
      });
      expect(again.socket.isSessionReused()).toBe(true);
      expect((await echo(again, data)).equals(data)).toBe(true);
      expect((await srv.connection(1)).error).toBeUndefined();
    },
    TEST_TIMEOUT,
  );

  describe('fatal alerts seen by the Node client', () => {
    async function expectAlert(
      extra: Partial<TlsServerConfig>,
      opts: ConnectionOptions,
      alerts: readonly string[],
      message: RegExp,
    ): Promise<void> {
      const srv = await start(extra);
      const err = await connectFails(srv, opts);
      expect(err.message).toMatch(message);
      const conn = await srv.connection(0);
      await waitFor(() => conn.events.some((e) => e.type === 'closed'), WAIT, 'a closed event');
      const sent = alertsSent(conn);
      expect(sent).toHaveLength(1);
      expect(alerts).toContain(sent[0]);
      expect(conn.events.some((e) => e.type === 'handshakeDone')).toBe(false);
    }

    it(
      'a TLS 1.2-only client gets protocol_version',
      () =>
        expectAlert({}, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }, ['protocol_version'], /protocol version|alert number 70/i),
      TEST_TIMEOUT,
    );

    it(
      'no common cipher suite gets handshake_failure',
      () =>
        expectAlert(
          { cipherSuites: ['TLS_AES_128_GCM_SHA256'] },
          { ciphers: 'TLS_CHACHA20_POLY1305_SHA256' },
          ['handshake_failure'],
          /handshake failure|alert number 40/i,
        ),
      TEST_TIMEOUT,
    );

    it(
      'no common group gets handshake_failure or insufficient_security',
      () =>
        // RFC 8446 section 4.1.1: either alert is allowed.
        expectAlert(
          { groups: ['x25519'] },
          { ecdhCurve: 'P-384' },
          ['handshake_failure', 'insufficient_security'],
          /handshake failure|insufficient security|alert number (40|71)/i,
        ),
      TEST_TIMEOUT,
    );

    it(
      'no certificate that can sign with an offered scheme gets handshake_failure',
      () =>
        // No configured certificate can make an Ed448 signature.
        expectAlert(
          {},
          { sigalgs: 'ed448' },
          ['handshake_failure'],
          /handshake failure|alert number 40/i,
        ),
      TEST_TIMEOUT,
    );
  });
});
