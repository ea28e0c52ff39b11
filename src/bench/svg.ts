/**
 * The run's chart as hand-written SVG: one panel per workload, grouped bars of
 * the figure per CPU-second by relay count (replication on and off), with
 * node-tls (and any external terminator) as horizontal reference lines.
 */
import type { Measurement } from './types.js';
import { unitOf, type Workload } from './workloads.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function label(w: Workload, v: number): string {
  const u = unitOf(w);
  if (u === 'bytes') return `${(v / 1e6).toFixed(v >= 1e8 ? 0 : 1)} MB`;
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}
function title(w: Workload): string {
  const u = unitOf(w);
  return `${w}: ${u === 'bytes' ? 'MB' : u === 'roundTrips' ? 'round trips' : 'handshakes'} per CPU-second`;
}

const W = 340;
const H = 260;
const PAD = { left: 56, right: 12, top: 34, bottom: 42 };
const ON = '#2b6cb0';
const OFF = '#90cdf4';
const NODE = '#c53030';
const EXT = '#555';

function panel(ms: readonly Measurement[], w: Workload, x0: number): string {
  const rows = ms.filter((m) => m.workload === w);
  // The native record protection (the product's default); node:crypto runs are in the table.
  const baton = rows.filter((m) => m.spec.kind === 'baton' && m.spec.protection === 'native');
  const refs = rows.filter((m) => m.spec.kind !== 'baton');
  const relays = [...new Set(baton.map((m) => (m.spec.kind === 'baton' ? m.spec.relays : 0)))].sort((a, b) => a - b);
  const max = Math.max(1e-9, ...rows.map((m) => m.perCpuSecond)) * 1.15;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;
  const parts: string[] = [`<g transform="translate(${x0},0)">`];
  parts.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-weight="bold">${esc(title(w))}</text>`);
  for (let k = 0; k <= 4; k++) {
    const v = (max / 1.15) * (k / 4);
    parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e2e8f0"/>`);
    parts.push(`<text x="${PAD.left - 4}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="10">${esc(label(w, v))}</text>`);
  }
  const group = plotW / Math.max(1, relays.length);
  const bar = Math.min(36, group / 3);
  relays.forEach((r, i) => {
    const cx = PAD.left + group * (i + 0.5);
    for (const [j, repl] of [true, false].entries()) {
      const m = baton.find((b) => b.spec.kind === 'baton' && b.spec.relays === r && b.spec.replication === repl);
      if (!m) continue;
      const bx = cx - bar + j * bar;
      const top = y(m.perCpuSecond);
      parts.push(
        `<rect x="${bx.toFixed(1)}" y="${top.toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(PAD.top + plotH - top).toFixed(1)}" fill="${repl ? ON : OFF}">` +
          `<title>${esc(`${m.terminator}: ${label(w, m.perCpuSecond)}`)}</title></rect>`,
      );
    }
    parts.push(`<text x="${cx.toFixed(1)}" y="${H - PAD.bottom + 14}" text-anchor="middle" font-size="11">${r} relay${r === 1 ? '' : 's'}</text>`);
  });
  for (const m of refs) {
    const color = m.spec.kind === 'node-tls' ? NODE : EXT;
    const ry = y(m.perCpuSecond).toFixed(1);
    parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${ry}" y2="${ry}" stroke="${color}" stroke-dasharray="6 4" stroke-width="1.5"/>`);
    parts.push(`<text x="${W - PAD.right}" y="${(Number(ry) - 4).toFixed(1)}" text-anchor="end" font-size="10" fill="${color}">${esc(`${m.terminator} ${label(w, m.perCpuSecond)}`)}</text>`);
  }
  parts.push(`<line x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${PAD.top + plotH}" stroke="#333"/>`);
  parts.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${PAD.top + plotH}" y2="${PAD.top + plotH}" stroke="#333"/>`);
  parts.push('</g>');
  return parts.join('\n');
}

/** The whole chart; `caption` goes under the panels (e.g. host and date). */
export function chart(ms: readonly Measurement[], caption: string): string {
  const order: Workload[] = ['bulk-up', 'bulk-down', 'handshake', 'resume', 'echo'];
  const ws = order.filter((w) => ms.some((m) => m.workload === w));
  const width = Math.max(1, ws.length) * W;
  const height = H + 40;
  const legendY = H + 14;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...ws.map((w, i) => panel(ms, w, i * W)),
    `<g transform="translate(12,${legendY})" font-size="11">`,
    `<rect width="12" height="12" fill="${ON}"/><text x="16" y="10">Baton, replication on</text>`,
    `<rect x="150" width="12" height="12" fill="${OFF}"/><text x="166" y="10">Baton, replication off</text>`,
    `<line x1="305" x2="329" y1="6" y2="6" stroke="${NODE}" stroke-dasharray="6 4" stroke-width="1.5"/><text x="334" y="10">Node tls (same run)</text>`,
    `<text y="28" fill="#555">${esc(caption)}</text>`,
    '</g>',
    '</svg>',
    '',
  ].join('\n');
}
