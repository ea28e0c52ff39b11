/**
 * `baton status`: asks a running cluster's admin API for `/status` and prints a
 * table of relays (thread, up, restarts, placement, last crash) and a summary line
 * (connections, takeovers with p50/p99, quarantined, lost, replication lag), and while
 * the cluster drains a line with since when, the deadline and the connections left;
 * `--json` prints the API's answer as it is. On a node joined to others, a table of
 * every live node (its relays, connections and configuration version) comes first, and
 * a line when the node has not joined yet (NATS unreachable since it started). The
 * request goes through admin-client.ts.
 */
import type { Command } from 'commander';
import type { StatusResponse } from '../cluster/admin-api.js';
import { adminOptions, callAdmin, resolveAdmin, type RawAdminFlags } from './admin-client.js';

/** Registers `status` on the program. */
export function registerStatusCommand(program: Command): void {
  adminOptions(program.command('status'))
    .option('--json', 'print the admin API answer as JSON')
    .action(async (raw: RawAdminFlags & { json?: boolean }) => {
      const target = await resolveAdmin(raw);
      const status = (await callAdmin(target, 'GET', '/status')) as StatusResponse;
      process.stdout.write(raw.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, Date.now()));
    });
}

function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** The human view: a table of relays, a summary line, and a table of backends. */
export function formatStatus(s: StatusResponse, now: number): string {
  const header = ['RELAY', 'THREAD', 'UP', 'RESTARTS', 'OWNED', 'LAST CRASH'];
  const rows = s.relays.map((r) => [
    r.name,
    r.threadId === null ? '-' : String(r.threadId),
    r.up ? 'yes' : 'no',
    String(r.restarts),
    String(r.owned),
    r.lastCrash
      ? `${r.lastCrash.reason}${r.lastCrash.fault?.point ? ` at ${r.lastCrash.fault.point}` : ''}, ${ago(r.lastCrash.at, now)}`
      : '-',
  ]);
  const t = s.takeovers;
  const summary =
    `connections ${s.connections.active} active (${s.connections.opened} opened); ` +
    `takeovers ${t.count}${t.count > 0 ? ` (p50 ${t.p50Ms} ms, p99 ${t.p99Ms} ms)` : ''}; ` +
    `quarantined ${s.quarantined}; lost ${s.lost}; uncommitted max ${s.replicationLag.max} input${s.replicationLag.max === 1 ? '' : 's'}`;
  const backendHeader = ['BACKEND', 'UP', 'ACTIVE', 'CONNECTIONS', 'CONNECT FAILURES', 'CHECKS FAILED'];
  const backendRows = (s.backends ?? []).map((b) => [b.name, b.up ? 'yes' : 'no', String(b.active), String(b.connections), String(b.connectFailures), String(b.checksFailed)]);
  const backends = backendRows.length > 0 ? table(backendHeader, backendRows) : '';
  const draining = s.draining ? `${formatDraining(s.draining, now)}\n` : '';
  const nodes = s.nodes ? formatNodes(s) : '';
  return `${nodes}${table(header, rows)}${summary}\n${draining}${backends}`;
}

/** The nodes of a cluster across machines: one row each, then a line saying which node the relay table is. */
function formatNodes(s: StatusResponse): string {
  const header = ['NODE', 'RELAYS UP', 'RELAYS', 'CONNECTIONS', 'CONFIG', 'ADMIN', 'SEEN'];
  const rows = (s.nodes ?? []).map((n) => [
    n.name,
    `${n.relays.filter((r) => r.up).length}/${n.relays.length}`,
    n.relays.map((r) => `${r.name}${r.up ? '' : ' (down)'}${r.restarts > 0 ? ` (${r.restarts} restart${r.restarts === 1 ? '' : 's'})` : ''}`).join(', '),
    `${n.connections.active} active (${n.connections.opened} opened)`,
    `v${n.config.version} ${n.config.digest.slice(0, 12)}`,
    n.admin ?? '-',
    n.source === 'self' ? 'this node' : n.source === 'nats' ? 'now' : `last heartbeat (${n.error ?? 'no answer'})`,
  ]);
  const j = s.join;
  // A node started while NATS did not answer: it lists only itself until it joins.
  const waiting = j && !j.joined ? `not joined: NATS at ${j.nats} unreachable since ${j.since} (${j.failedAttempts} failed attempt${j.failedAttempts === 1 ? '' : 's'}${j.lastError ? `, last: ${j.lastError}` : ''}); serving alone, joining cluster ${j.cluster} when it answers\n` : '';
  return `${table(header, rows)}${waiting}\nrelays of node ${s.node}:\n`;
}

/** Columns padded to their widest cell, two spaces apart, one row a line. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** The drain line: since when, the deadline, connections left. */
function formatDraining(d: NonNullable<StatusResponse['draining']>, now: number): string {
  const left = Math.max(0, Math.ceil((Date.parse(d.deadline) - now) / 1000));
  return (
    `draining since ${d.since} (${ago(d.since, now)}, ${d.cause === 'admin' ? 'POST /drain' : d.cause}); ` +
    `${d.connections} connection${d.connections === 1 ? '' : 's'} left; close_notify to the rest at ${d.deadline} (in ${left}s)`
  );
}
