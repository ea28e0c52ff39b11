/**
 * ConfigReloader against a stand-in cluster (no workers): what a reload rolls out,
 * what it keeps with a warning, what follows the version (backends, rotation), and
 * what it logs. The end-to-end reloads are in test/cli/reload.test.ts and sighup.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { RolloutResult } from '../../src/cluster/rollout.js';
import { ConfigReloader, localReloadTarget, type ReloadCandidate } from '../../src/cluster/reload.js';
import { singleBackend, type BackendsSpec } from '../../src/relay/backend-pool.js';
import type { TlsSettings } from '../../src/relay/settings.js';

const KEYS = { current: { id: new Uint8Array(16).fill(1), secret: new Uint8Array(32).fill(2) } };
const CERT = { cert: 'CERT-PEM', key: 'KEY-PEM' };
const LEAF = { fingerprint256: 'AA:BB', subject: 'CN=old', subjectAltName: '' };

function standIn(answer: RolloutResult = { ok: true, version: 2, digest: 'd'.repeat(64), unchanged: false }) {
  const calls = { reconfigure: [] as TlsSettings[], setBackends: [] as BackendsSpec[], rotate: [] as number[] };
  const cluster = {
    activeTls: { certificates: [CERT], ticketKeys: KEYS, alpn: ['h2'] } as TlsSettings,
    reconfigure: async (tls: TlsSettings) => {
      calls.reconfigure.push(tls);
      return answer;
    },
    rotateTicketsEvery: (ms: number) => void calls.rotate.push(ms),
    gateway: { setBackends: (b: BackendsSpec) => void calls.setBackends.push(b) },
  };
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const reloader = new ConfigReloader(
    localReloadTarget(cluster as unknown as Parameters<typeof localReloadTarget>[0]),
    { restartOnly: { relays: '2' }, backends: singleBackend({ host: '127.0.0.1', port: 9 }), servingSha256: LEAF.fingerprint256 },
    (level, msg, fields) => lines.push({ level, msg, ...(fields ? { fields } : {}) }),
  );
  return { reloader, calls, lines };
}

const candidate = (over: Partial<ReloadCandidate> = {}): ReloadCandidate => ({
  tls: { certificates: [{ cert: 'NEW-PEM', key: 'NEW-KEY' }] },
  backends: singleBackend({ host: '127.0.0.1', port: 9 }),
  restartOnly: { relays: '2' },
  obsolete: [],
  leaf: LEAF,
  configFile: '/etc/baton.yaml',
  ...over,
});

describe('ConfigReloader', () => {
  it('rolls the new TLS settings out with the cluster’s ticket keys, and keeps restart-only settings with a warning', async () => {
    const { reloader, calls, lines } = standIn();
    const r = await reloader.apply(candidate({ restartOnly: { relays: '4' }, obsolete: ['batch: does nothing'] }));
    expect(r).toEqual({ status: 'applied', version: 2, digest: 'd'.repeat(64), unchanged: false, warnings: ['relays requires a restart; kept 2', 'batch: does nothing'] });
    expect(calls.reconfigure).toEqual([{ ticketKeys: KEYS, certificates: [{ cert: 'NEW-PEM', key: 'NEW-KEY' }] }]);
    expect(calls.setBackends).toEqual([]);
    expect(lines.map((l) => l.fields?.event)).toEqual(['config.restartRequired', 'config.obsolete', 'config.active']);
    expect(JSON.stringify(lines)).not.toContain('KEY-PEM');
  });

  it('takes the file’s ticket keys when it names them', async () => {
    const { reloader, calls } = standIn();
    const fileKeys = { current: { id: new Uint8Array(16).fill(7), secret: new Uint8Array(32).fill(8) } };
    await reloader.apply(candidate({ ticketKeys: fileKeys }));
    expect(calls.reconfigure[0]!.ticketKeys).toBe(fileKeys);
  });

  it('a refusal changes nothing beside the version: no backends, no rotation, no certificate line', async () => {
    const { reloader, calls, lines } = standIn({ ok: false, version: 1, reason: 'relay-1 refused version 2: bad key' });
    const r = await reloader.apply(
      candidate({ backends: singleBackend({ host: '127.0.0.1', port: 10 }), ticketRotationSeconds: 60, leaf: { ...LEAF, fingerprint256: 'CC:DD' } }),
    );
    expect(r).toEqual({ status: 'refused', version: 1, error: 'relay-1 refused version 2: bad key' });
    expect(calls.setBackends).toEqual([]);
    expect(calls.rotate).toEqual([]);
    expect(lines.map((l) => l.fields?.event)).toEqual(['config.refused']);
    expect(reloader.servingSha256).toBe('AA:BB');
  });

  it('after an applied version: new backends, a new rotation period and a new leaf, each once', async () => {
    const { reloader, calls, lines } = standIn();
    const next = candidate({ backends: singleBackend({ host: '127.0.0.1', port: 10 }), ticketRotationSeconds: 60, leaf: { ...LEAF, fingerprint256: 'CC:DD', subject: 'CN=new' } });
    await reloader.apply(next);
    await reloader.apply(next);
    expect(calls.setBackends).toEqual([next.backends]);
    expect(calls.rotate).toEqual([60_000]);
    expect(reloader.servingSha256).toBe('CC:DD');
    const certLines = lines.filter((l) => l.fields?.event === 'cert.reloaded');
    expect(certLines.map((l) => l.msg)).toEqual(['certificate sha256 CC:DD served to new handshakes (CN=new)']);
    // Stopping a rotation needs a restart: said, and the period is kept.
    const r = await reloader.apply(candidate());
    expect(r.status === 'applied' && r.warnings).toEqual(['tickets.rotationSeconds: stopping the rotation requires a restart; kept 60']);
  });
});
