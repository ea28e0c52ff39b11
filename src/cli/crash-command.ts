/**
 * `baton crash`: injects a crash into a relay of a running cluster through its
 * admin API (`POST /crash`): a named relay (`--relay relay-1`) or a random running
 * one (`--random`), of a chosen kind, now or when an armed fault point (`--at`) is
 * next reached. Prints which relay and thread it hit. With `--node NAME` the crash
 * happens on that node of a cluster across machines (forwarded over NATS by the node
 * whose admin API is asked).
 */
import type { Command } from 'commander';
import { badNodeName, FAULT_KINDS, type FaultKind } from '../actors/index.js';
import type { CrashResponse } from '../cluster/admin-api.js';
import { RELAY_FAULT_POINTS, type RelayFaultPoint } from '../relay/fault-points.js';
import { CliError } from './errors.js';
import { adminOptions, callAdmin, resolveAdmin, type RawAdminFlags } from './admin-client.js';

interface RawCrashFlags extends RawAdminFlags {
  readonly relay?: string;
  readonly random?: boolean;
  readonly kind: string;
  readonly at?: string;
  readonly node?: string;
  readonly json?: boolean;
}

/** The validated request body. */
export interface CrashFlags {
  readonly relay: string;
  readonly kind: FaultKind;
  readonly at?: RelayFaultPoint;
  readonly node?: string;
}

/** Checks the crash flags; throws CliError naming the bad one. */
export function parseCrashFlags(raw: RawCrashFlags): CrashFlags {
  if (raw.relay !== undefined && raw.random) throw new CliError('give --relay NAME or --random, not both');
  if (raw.relay === undefined && !raw.random) throw new CliError('which relay? give --relay NAME (see `baton status`) or --random');
  if (raw.relay !== undefined && !/^[\w.-]{1,100}$/.test(raw.relay)) throw new CliError(`--relay "${raw.relay}" is not a relay name (e.g. relay-1; see \`baton status\`)`);
  const kind = FAULT_KINDS.find((k) => k === raw.kind);
  if (!kind) throw new CliError(`--kind must be one of ${FAULT_KINDS.join(', ')}, got "${raw.kind}"`);
  let at: RelayFaultPoint | undefined;
  if (raw.at !== undefined) {
    at = RELAY_FAULT_POINTS.find((p) => p === raw.at);
    if (!at) throw new CliError(`--at must be one of ${RELAY_FAULT_POINTS.join(', ')}, got "${raw.at}"`);
  }
  if (raw.node !== undefined) {
    const bad = badNodeName(raw.node);
    if (bad !== undefined) throw new CliError(`--node ${bad} (see \`baton status\`)`);
  }
  return { relay: raw.relay ?? 'random', kind, ...(at ? { at } : {}), ...(raw.node !== undefined ? { node: raw.node } : {}) };
}

/** Registers `crash` on the program. */
export function registerCrashCommand(program: Command): void {
  adminOptions(
    program
      .command('crash')
      .option('--relay <name>', 'the relay to crash, e.g. relay-1 (see `baton status`)')
      .option('--random', 'crash a random running relay')
      .option('--kind <kind>', `how it dies: ${FAULT_KINDS.join(', ')}`, 'throw')
      .option('--at <point>', `crash when this fault point is next reached instead of now: ${RELAY_FAULT_POINTS.join(', ')}`)
      .option('--node <name>', 'the node whose relay to crash, in a cluster across machines (see `baton status`; default: the node asked)'),
  )
    .option('--json', 'print the admin API answer as JSON')
    .action(async (raw: RawCrashFlags) => {
      const body = parseCrashFlags(raw);
      const target = await resolveAdmin(raw);
      const r = (await callAdmin(target, 'POST', '/crash', body)) as CrashResponse;
      process.stdout.write(
        raw.json
          ? `${JSON.stringify(r)}\n`
          : r.armed
            ? `armed ${r.relay}${onNode(body)} (thread ${r.threadId}): ${r.kind} at ${r.at}, when it is next reached\n`
            : `crashed ${r.relay}${onNode(body)} (thread ${r.threadId}) with ${r.kind}\n`,
      );
    });
}

const onNode = (body: CrashFlags) => (body.node !== undefined ? ` on node ${body.node}` : '');
