/**
 * Where the cross-node configuration lives in the key-value store, and the records
 * kept there. Every record is public (JSON): names, versions, digests, public keys,
 * key ids, states. The secrets travel only inside sealed blocks (sealed-block.ts).
 *
 *   config.active                    the active version (compare-and-set: one activation wins)
 *   config.rollout                   the rollout in progress or the last one (the lock)
 *   config.keys.<node>               a node's public key, incarnation and the version it runs
 *   config.block.<versionId>.<node>  that version sealed for that node (binary)
 *   config.ack.<versionId>.<node>    that node's accept or refusal of it
 */
import { z } from 'zod';
import type { KvStore } from './kv.js';

export const ACTIVE_KEY = 'config.active';
export const ROLLOUT_KEY = 'config.rollout';
export const CONFIG_PREFIX = 'config.';
export const KEYS_PREFIX = 'config.keys.';
export const BLOCK_PREFIX = 'config.block.';
export const ACK_PREFIX = 'config.ack.';

const NODE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const VERSION_ID = /^v[0-9]{1,15}-[0-9a-f]{12}$/;

export class ConfigRecordError extends Error {
  override readonly name = 'ConfigRecordError';
  readonly code = 'BATON_ERR_CONFIG_RECORD';
}

/** Throws a RangeError unless `node` can be a store key token. */
export function checkNodeName(node: string): string {
  if (!NODE_NAME.test(node)) throw new RangeError(`node name ${JSON.stringify(node)}: 1 to 64 letters, digits, _ or -`);
  return node;
}

export const nodeKeyKey = (node: string) => `${KEYS_PREFIX}${checkNodeName(node)}`;
export const blockKey = (versionId: string, node: string) => `${BLOCK_PREFIX}${versionId}.${checkNodeName(node)}`;
export const ackKey = (versionId: string, node: string) => `${ACK_PREFIX}${versionId}.${checkNodeName(node)}`;

/** The node a `config.keys.<node>` / `config.block.<id>.<node>` key names, and the version id of the latter. */
export function parseBlockKey(key: string): { versionId: string; node: string } | null {
  const m = /^config\.block\.([^.]+)\.([^.]+)$/.exec(key);
  return m ? { versionId: m[1]!, node: m[2]! } : null;
}

const nodeName = z.string().regex(NODE_NAME);
const versionId = z.string().regex(VERSION_ID);
const b64Key = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a base64url X25519 public key');
const digest = z.string().regex(/^[0-9a-f]{64}$/);

const scheduleSchema = z.strictObject({ nextId: z.string().regex(/^[0-9a-f]{32}$/).nullable(), rotatedAt: z.number().int().min(0) });

const activeSchema = z.strictObject({
  versionId,
  version: z.number().int().positive(),
  digest,
  /** The node whose rollout activated it. */
  by: nodeName,
  activatedAt: z.number().int().min(0),
  tickets: scheduleSchema,
});
export type ActiveRecord = z.infer<typeof activeSchema>;

const rolloutSchema = z.strictObject({
  versionId,
  version: z.number().int().positive(),
  digest,
  coordinator: nodeName,
  /** The live nodes when it began: each must accept (or leave the membership). */
  nodes: z.array(nodeName).min(1),
  state: z.enum(['staging', 'aborted', 'committed']),
  reason: z.string().optional(),
  /** The active version it replaces (null: the first). */
  basedOn: versionId.nullable(),
  startedAt: z.number().int().min(0),
  deadlineAt: z.number().int().min(0),
});
export type RolloutRecord = z.infer<typeof rolloutSchema>;

const nodeKeySchema = z.strictObject({
  node: nodeName,
  publicKey: b64Key,
  /** A fresh id per process: a restart is a new incarnation with a new key. */
  incarnation: z.string().regex(/^[0-9a-f]{16}$/),
  /** The version this node runs (null: none of the cluster's yet). */
  runs: versionId.nullable(),
  at: z.number().int().min(0),
});
export type NodeKeyRecord = z.infer<typeof nodeKeySchema>;

const ackSchema = z.strictObject({
  node: nodeName,
  incarnation: z.string().regex(/^[0-9a-f]{16}$/),
  ok: z.boolean(),
  reason: z.string().max(2000).optional(),
});
export type AckRecord = z.infer<typeof ackSchema>;

function codec<T>(what: string, schema: z.ZodType<T>) {
  return {
    encode: (v: T): Uint8Array => new Uint8Array(Buffer.from(JSON.stringify(v), 'utf8')),
    decode: (key: string, b: Uint8Array): T => {
      let raw: unknown;
      try {
        raw = JSON.parse(Buffer.from(b).toString('utf8'));
      } catch {
        throw new ConfigRecordError(`${key}: the ${what} record is not JSON`);
      }
      const r = schema.safeParse(raw);
      if (!r.success) {
        const issue = r.error.issues[0]!;
        throw new ConfigRecordError(`${key}: the ${what} record: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
      }
      return r.data;
    },
  };
}

export const activeCodec = codec<ActiveRecord>('active version', activeSchema);
export const rolloutCodec = codec<RolloutRecord>('rollout', rolloutSchema);
export const nodeKeyCodec = codec<NodeKeyRecord>('node key', nodeKeySchema);
export const ackCodec = codec<AckRecord>('acknowledgement', ackSchema);

/** What the store says of the configuration across nodes: for `baton status` on any node. */
export interface ConfigStatus {
  readonly active: ActiveRecord | null;
  readonly rollout: RolloutRecord | null;
  /** Every node that published a key (live or not: membership says which are), with the version it runs. */
  readonly nodes: readonly NodeKeyRecord[];
}

export async function readConfigStatus(store: KvStore): Promise<ConfigStatus> {
  const active = await store.get(ACTIVE_KEY);
  const rollout = await store.get(ROLLOUT_KEY);
  const nodes: NodeKeyRecord[] = [];
  for (const key of await store.keys(KEYS_PREFIX)) {
    const e = await store.get(key);
    if (e) nodes.push(nodeKeyCodec.decode(e.key, e.value));
  }
  return {
    active: active ? activeCodec.decode(active.key, active.value) : null,
    rollout: rollout ? rolloutCodec.decode(rollout.key, rollout.value) : null,
    nodes,
  };
}
