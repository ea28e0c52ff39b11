/** The configuration file: a good one loads; every bad one names the file, the field and what is wrong. */
import { mkdtempSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigFileError, loadConfigFile } from '../../src/cluster/config-file.js';
import { certDir } from '../helpers/interop.js';

const dir = mkdtempSync(join(tmpdir(), 'baton-config-'));
for (const f of ['ecdsa-p256.pem', 'ecdsa-p256-key.pem', 'rsa.pem', 'rsa-key.pem']) copyFileSync(join(certDir, f), join(dir, f));

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

const GOOD = `
listeners:
  - address: 127.0.0.1:8443
    certificates:
      - { cert: ecdsa-p256.pem, key: ecdsa-p256-key.pem }
      - cert: rsa.pem
        key: rsa-key.pem
        names: [rsa.example.test]
    alpn: [h2, http/1.1]
    groups: [x25519, secp256r1]
backend: 127.0.0.1:9000
relays: 3
replication: { batchInputs: 16 }
watchdogMs: 800
tickets: { rotationSeconds: 3600 }
admin: { address: 127.0.0.1:9901 }
`;

function expectError(text: string, pattern: RegExp): void {
  const file = write(`bad-${Math.random().toString(36).slice(2)}.yaml`, text);
  let err: unknown;
  try {
    loadConfigFile(file);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigFileError);
  const message = (err as Error).message;
  expect(message.startsWith(file)).toBe(true);
  expect(message).toMatch(pattern);
  expect(message).not.toMatch(/PRIVATE KEY/);
}

describe('configuration file', () => {
  it('loads a good file: addresses, certificates relative to the file, settings', () => {
    const c = loadConfigFile(write('good.yaml', GOOD));
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(c.backend).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(c.relays).toBe(3);
    expect(c.tls.certificates).toHaveLength(2);
    expect(c.tls.certificates[1]!.names).toEqual(['rsa.example.test']);
    expect(c.tls.alpn).toEqual(['h2', 'http/1.1']);
    expect(c.replication).toBe(true);
    // Older files' batch settings are still accepted, and said to do nothing.
    expect(c.obsolete).toEqual(['replication.batchInputs is no longer used: relays commit connection state after every batch they handle']);
    expect(c.ticketRotationSeconds).toBe(3600);
    expect(c.admin?.address).toEqual({ host: '127.0.0.1', port: 9901 });
  });

  it('reads JSON too', () => {
    const c = loadConfigFile(
      write('good.json', JSON.stringify({ listeners: [{ address: '127.0.0.1:0', certificates: [{ cert: 'ecdsa-p256.pem', key: 'ecdsa-p256-key.pem' }] }], backend: 'localhost:9000' })),
    );
    expect(c.listen.port).toBe(0);
  });

  it('names the field and what is wrong', () => {
    expectError(GOOD.replace('relays: 3', 'relays: zero'), /relays: .*number/i);
    expectError(GOOD.replace('backend: 127.0.0.1:9000', 'backend: 127.0.0.1'), /backend: "127.0.0.1": expected HOST:PORT/);
    expectError(GOOD.replace('groups: [x25519, secp256r1]', 'groups: [x448]'), /listeners\[0\]\.groups\[0\]/);
    expectError(GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\ncolour: blue'), /\(top level\): .*colour/i);
    expectError(GOOD.replace('admin: { address: 127.0.0.1:9901 }', 'admin: { address: 10.0.0.1:9901 }'), /admin\.address: .*loopback/);
    expectError(GOOD.replace('key: rsa-key.pem', 'key: missing-key.pem'), /listeners\[0\]\.certificates\[1\]\.key: cannot read .*missing-key\.pem.*ENOENT/);
    expectError(GOOD.replace('key: rsa-key.pem', 'key: ecdsa-p256-key.pem'), /listeners\[0\]\.certificates\[1\]: .*(match|key)/i);
    expectError('listeners: [\n  - address: 1', /not valid YAML/);
    expectError('backend: 127.0.0.1:9000\n', /listeners: /);
  });

  it('reads the ticket mode: stateless unless the file says stateful; anything else is named', () => {
    expect(loadConfigFile(write('stateless.yaml', GOOD)).tls.ticketMode).toBeUndefined();
    const c = loadConfigFile(write('stateful.yaml', GOOD.replace('tickets: { rotationSeconds: 3600 }', 'tickets: { rotationSeconds: 3600, mode: stateful }')));
    expect(c.tls.ticketMode).toBe('stateful');
    expect(c.ticketRotationSeconds).toBe(3600);
    expectError(GOOD.replace('tickets: { rotationSeconds: 3600 }', 'tickets: { mode: sticky }'), /tickets\.mode: /);
  });

  it('reads ticket keys from a key file shared by several processes; a bad line is named, not quoted', () => {
    const current = 'a'.repeat(32) + 'b'.repeat(64);
    const previous = 'c'.repeat(96);
    write('tickets.keys', `# current first\n${current}\n${previous}  # still accepted\n`);
    const c = loadConfigFile(write('tickets.yaml', GOOD.replace('tickets: { rotationSeconds: 3600 }', 'tickets: { keyFile: tickets.keys }')));
    expect(Buffer.from(c.ticketKeys!.current.id).toString('hex')).toBe('a'.repeat(32));
    expect(Buffer.from(c.ticketKeys!.current.secret).toString('hex')).toBe('b'.repeat(64));
    expect(c.ticketKeys!.previous!.map((k) => Buffer.from(k.secret).toString('hex'))).toEqual(['c'.repeat(64)]);
    write('short.keys', `${current}\n${'d'.repeat(40)}\n`);
    let message = '';
    try {
      loadConfigFile(write('short.yaml', GOOD.replace('tickets: { rotationSeconds: 3600 }', 'tickets: { keyFile: short.keys }')));
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/tickets\.keyFile: .*short\.keys" line 2 is not 96 hex digits/);
    expect(message).not.toContain('dddd');
    expectError(GOOD.replace('tickets: { rotationSeconds: 3600 }', 'tickets: { rotationSeconds: 60, keyFile: tickets.keys }'), /tickets: .*exclude each other/);
  });

  it('reads the connection deadlines and limit (0: off); a bad one is named', () => {
    const c = loadConfigFile(write('limits.yaml', GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\nhandshakeTimeoutMs: 2000\nidleTimeoutMs: 0\nbackendConnectTimeoutMs: 1500\nmaxConnections: 50')));
    expect([c.handshakeTimeoutMs, c.idleTimeoutMs, c.backendConnectTimeoutMs, c.maxConnections]).toEqual([2000, 0, 1500, 50]);
    const plain = loadConfigFile(write('no-limits.yaml', GOOD));
    expect([plain.handshakeTimeoutMs, plain.idleTimeoutMs, plain.backendConnectTimeoutMs, plain.maxConnections]).toEqual([undefined, undefined, undefined, undefined]);
    expectError(GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\nidleTimeoutMs: -1'), /idleTimeoutMs: .*>=\s*0/);
    expectError(GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\nhandshakeTimeoutMs: 10s'), /handshakeTimeoutMs: .*number/);
    expectError(GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\nmaxConnections: 0'), /maxConnections: /);
  });

  it('reads drainTimeoutMs (0: at once); a bad one is named', () => {
    expect(loadConfigFile(write('drain.yaml', GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\ndrainTimeoutMs: 45000'))).drainTimeoutMs).toBe(45_000);
    expect(loadConfigFile(write('drain-0.yaml', GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\ndrainTimeoutMs: 0'))).drainTimeoutMs).toBe(0);
    expect(loadConfigFile(write('no-drain.yaml', GOOD)).drainTimeoutMs).toBeUndefined();
    expectError(GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\ndrainTimeoutMs: 30s'), /drainTimeoutMs: .*number/);
    expectError(GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\ndrainTimeoutMs: -5'), /drainTimeoutMs: .*>=\s*0/);
  });

  it('reads the caps and the retained-input budget; a bad one is named', () => {
    const caps = 'watchdogMs: 800\nmaxHandshakeChangeCipherSpecs: 4\nmaxHandshakeWarningAlerts: 0\nmaxUnreadKeyUpdates: 16\nretainedBudgetBytes: 67108864';
    const c = loadConfigFile(write('caps.yaml', GOOD.replace('watchdogMs: 800', caps)));
    expect([c.maxHandshakeChangeCipherSpecs, c.maxHandshakeWarningAlerts, c.maxUnreadKeyUpdates, c.retainedBudgetBytes]).toEqual([4, 0, 16, 64 << 20]);
    const plain = loadConfigFile(write('no-caps.yaml', GOOD));
    expect([plain.maxHandshakeChangeCipherSpecs, plain.maxHandshakeWarningAlerts, plain.maxUnreadKeyUpdates, plain.retainedBudgetBytes]).toEqual([undefined, undefined, undefined, undefined]);
    expectError(GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\nmaxHandshakeChangeCipherSpecs: 0'), /maxHandshakeChangeCipherSpecs: /);
    expectError(GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\nmaxUnreadKeyUpdates: -1'), /maxUnreadKeyUpdates: /);
    expectError(GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\nretainedBudgetBytes: 1000'), /retainedBudgetBytes: /);
  });

  it('reads backends.proxyProtocol (v2 or off); another value is named', () => {
    expect(loadConfigFile(write('pp2.yaml', GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\nbackends: { proxyProtocol: v2 }'))).proxyProtocol).toBe('v2');
    expect(loadConfigFile(write('pp-off.yaml', GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\nbackends: { proxyProtocol: off }'))).proxyProtocol).toBe('off');
    expect(loadConfigFile(write('no-pp.yaml', GOOD)).proxyProtocol).toBeUndefined();
    expectError(GOOD.replace('watchdogMs: 800', 'watchdogMs: 800\nbackends: { proxyProtocol: v1 }'), /backends\.proxyProtocol: /);
  });

  it('reads a backends section: pools, policy, routes, health checks (defaults as HAProxy)', () => {
    const c = loadConfigFile(
      write(
        'backends.yaml',
        GOOD.replace(
          'backend: 127.0.0.1:9000',
          `backends:
  servers: [127.0.0.1:9000, 127.0.0.1:9001]
  pools: { api: ['[::1]:8080'] }
  policy: least-connections
  routes: [{ serverName: api.example.com, pool: api }, { alpn: h2, pool: api }]
  healthCheck: { rise: 3 }`,
        ),
      ),
    );
    expect(c.backend).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(c.backends).toEqual({
      pools: { default: [{ host: '127.0.0.1', port: 9000 }, { host: '127.0.0.1', port: 9001 }], api: [{ host: '::1', port: 8080 }] },
      policy: 'least-connections',
      routes: [
        { serverName: 'api.example.com', pool: 'api' },
        { alpn: 'h2', pool: 'api' },
      ],
      health: { intervalMs: 2000, rise: 3, fall: 3, connectTimeoutMs: 2000 },
    });
    // The single-backend shape still loads: a pool of one, not checked.
    const one = loadConfigFile(write('one.yaml', GOOD));
    expect(one.backends.pools).toEqual({ default: [{ host: '127.0.0.1', port: 9000 }] });
    expect(one.backends.health.intervalMs).toBe(0);
  });

  it('names the backends field that is wrong', () => {
    const withBackends = (yaml: string) => GOOD.replace('backend: 127.0.0.1:9000', `backends:\n${yaml}`);
    expectError(withBackends('  servers: [127.0.0.1:9000, nope]'), /backends\.servers\[1\]: "nope": expected HOST:PORT/);
    expectError(withBackends('  servers: []'), /backends\.servers: at least one HOST:PORT is required/);
    expectError(withBackends('  servers: [127.0.0.1:9000]\n  policy: random'), /backends\.policy: /);
    expectError(withBackends('  servers: [127.0.0.1:9000]\n  routes: [{ alpn: h2, pool: api }]'), /backends\.routes\[0\]\.pool: no pool named "api"/);
    expectError(withBackends('  servers: [127.0.0.1:9000]\n  routes: [{ pool: default }]'), /backends\.routes\[0\]: a route needs serverName or alpn/);
    expectError(withBackends('  servers: [127.0.0.1:9000]\n  healthCheck: { fall: 0 }'), /backends\.healthCheck\.fall: /);
    expectError(withBackends('  pools: { api: [127.0.0.1:9000] }'), /backend: required \(HOST:PORT\), or backends\.servers/);
    expectError(GOOD.replace('backend: 127.0.0.1:9000', 'backend: 127.0.0.1:9000\nbackends: { servers: [127.0.0.1:9001] }'), /backend: give the backend or backends\.servers, not both/);
  });

  it('says which file could not be read', () => {
    expect(() => loadConfigFile(join(dir, 'nope.yaml'))).toThrow(/nope\.yaml.*ENOENT/);
  });
});
