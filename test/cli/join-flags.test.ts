/**
 * `--join`, `--node`, `--cluster-name` and the configuration file's `nats` section:
 * checked before anything starts, each bad value named with what is wrong; without
 * them, no join at all.
 */
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultNodeName, parseClusterFlags, type RawClusterFlags } from '../../src/cli/cluster-flags.js';
import { CliError } from '../../src/cli/errors.js';
import { ConfigFileError, loadConfigFile } from '../../src/cluster/config-file.js';
import { certDir } from '../helpers/interop.js';

const base: RawClusterFlags = { backend: '127.0.0.1:9000' };
const refused = (raw: RawClusterFlags, pattern: RegExp) => {
  const run = () => parseClusterFlags({ ...base, ...raw });
  expect(run).toThrow(CliError);
  expect(run).toThrow(pattern);
};

describe('--join, --node, --cluster-name', () => {
  it('a node alone without them', () => {
    expect(parseClusterFlags(base).join).toBeUndefined();
  });

  it('takes a nats:// URL, a node name and a cluster name', () => {
    expect(parseClusterFlags({ ...base, join: 'nats://127.0.0.1:4333', node: 'edge-1', clusterName: 'prod_eu' }).join).toEqual({
      url: { host: '127.0.0.1', port: 4333, url: 'nats://127.0.0.1:4333' },
      node: 'edge-1',
      cluster: 'prod_eu',
    });
    const defaults = parseClusterFlags({ ...base, join: 'nats://10.0.0.5' }).join!;
    expect(defaults.url.port).toBe(4222);
    expect(defaults.node).toBe(defaultNodeName());
    expect(defaults.cluster).toBe('baton');
  });

  it('names what is wrong', () => {
    refused({ join: 'tls://127.0.0.1:4222' }, /--join "tls:\/\/127.0.0.1:4222" has scheme tls; only nats:\/\/ is supported/);
    refused({ join: 'localhost:4222' }, /--join "localhost:4222" is not a URL/);
    refused({ join: 'nats://user:pw@127.0.0.1:4222' }, /credentials/);
    refused({ join: 'nats://127.0.0.1:4222', node: 'a b' }, /--node "a b" is not a node name: 1 to 64 letters, digits, - or _/);
    refused({ join: 'nats://127.0.0.1:4222', node: '' }, /--node "" is not a node name/);
    refused({ join: 'nats://127.0.0.1:4222', clusterName: 'x.y' }, /--cluster-name "x.y" is not a node name/);
    refused({ node: 'a' }, /--node needs --join/);
    refused({ clusterName: 'a' }, /--cluster-name needs --join/);
  });

  it('makes a node name of any host name', () => {
    expect(defaultNodeName('web-3.example.org')).toBe('web-3');
    expect(defaultNodeName('a+b')).toBe('a-b');
    expect(defaultNodeName('')).toBe('node');
  });
});

describe("the file's nats section", () => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-join-'));
  for (const f of ['ecdsa-p256.pem', 'ecdsa-p256-key.pem']) copyFileSync(join(certDir, f), join(dir, f));
  const file = (nats: string) => {
    const path = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      path,
      `listeners:\n  - address: 127.0.0.1:8443\n    certificates: [{ cert: ecdsa-p256.pem, key: ecdsa-p256-key.pem }]\nbackend: 127.0.0.1:9000\n${nats}\n`,
    );
    return path;
  };

  it('joins as the file says; flags override it', () => {
    const loaded = loadConfigFile(file('nats: { join: nats://127.0.0.1:4222, node: a, cluster: c1 }'));
    expect(parseClusterFlags({}, loaded).join).toMatchObject({ node: 'a', cluster: 'c1', url: { port: 4222 } });
    expect(parseClusterFlags({ node: 'b', join: 'nats://127.0.0.1:5000' }, loaded).join).toMatchObject({ node: 'b', cluster: 'c1', url: { port: 5000 } });
  });

  it('refuses a bad section, naming the file and the field', () => {
    expect(() => loadConfigFile(file('nats: { join: http://x:1 }'))).toThrow(ConfigFileError);
    expect(() => loadConfigFile(file('nats: { join: http://x:1 }'))).toThrow(/nats\.join: "http:\/\/x:1" has scheme http/);
    expect(() => loadConfigFile(file('nats: { join: nats://x:1, node: "a.b" }'))).toThrow(/nats\.node: "a.b" is not a node name/);
    expect(() => loadConfigFile(file('nats: { join: nats://x:1, nodes: a }'))).toThrow(/nats: .*nodes/);
  });
});
