/**
 * Reads the RFC 8448 handshake traces (draft-ietf-tls-tls13-vectors, the text
 * beside this file) into steps of labelled byte strings, so tests quote the RFC
 * rather than copies of its numbers.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromHex } from '../../src/util/bytes.js';

export interface TraceStep {
  readonly actor: 'client' | 'server';
  /** The step's description, e.g. `derive secret "tls13 c hs traffic":`. */
  readonly title: string;
  readonly fields: ReadonlyMap<string, Uint8Array>;
}

const TEXT = readFileSync(fileURLToPath(new URL('./rfc8448.txt', import.meta.url)), 'latin1');

function pageClean(text: string): string[] {
  return text
    .split('\n')
    .filter((l) => !/^Thomson\s+Expires/.test(l) && !/^Internet-Draft\s+TLS 1.3 Traces/.test(l) && !l.includes('\f'));
}

/** The steps of section `n` ("3.  Simple 1-RTT Handshake" ...). */
export function traceSection(n: number): TraceStep[] {
  const lines = pageClean(TEXT);
  const start = lines.findIndex((l) => l.startsWith(`${n}.  `));
  const end = lines.findIndex((l, i) => i > start && /^\d+\.\s\s/.test(l));
  const steps: { actor: 'client' | 'server'; title: string; fields: Map<string, Uint8Array> }[] = [];
  let field: { label: string; hex: string } | null = null;
  const flush = () => {
    if (field && steps.length) steps[steps.length - 1]!.fields.set(field.label, fromHex(field.hex));
    field = null;
  };
  for (const line of lines.slice(start, end)) {
    const step = /^ {3}\{(client|server)\}\s+(.*)$/.exec(line);
    if (step) {
      flush();
      steps.push({ actor: step[1] as 'client' | 'server', title: step[2]!.trim(), fields: new Map() });
      continue;
    }
    const f = /^ {6}(\S[^:(]*?)\s*(?:\(\d+ octets\))?:\s+([0-9a-f ]+)$/.exec(line);
    if (f) {
      flush();
      field = { label: f[1]!.trim(), hex: f[2]!.replace(/\s+/g, '') };
      continue;
    }
    const more = /^ {9}([0-9a-f]{2}(?: [0-9a-f]{2})*)\s*$/.exec(line);
    if (more && field) {
      field.hex += more[1]!.replace(/\s+/g, '');
      continue;
    }
    if (line.trim() === '' && field) continue;
    flush();
  }
  flush();
  return steps;
}

/** The `nth` (0-based) step of `actor` whose title starts with `title`. */
export function step(steps: readonly TraceStep[], actor: 'client' | 'server', title: string, nth = 0): TraceStep {
  const found = steps.filter((s) => s.actor === actor && s.title.startsWith(title));
  const s = found[nth];
  if (!s) throw new Error(`RFC 8448 trace has no ${nth}th {${actor}} step "${title}"`);
  return s;
}

/** A field of a step, by label (e.g. "complete record", "expanded", "secret"). */
export function field(s: TraceStep, label: string): Uint8Array {
  const v = s.fields.get(label);
  if (!v) throw new Error(`RFC 8448 step "${s.title}" has no field "${label}" (has: ${[...s.fields.keys()].join(', ')})`);
  return v;
}
