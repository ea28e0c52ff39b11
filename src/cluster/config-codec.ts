/**
 * A configuration version as bytes, with the cluster's member key: the plaintext of a
 * sealed block (it holds private keys, ticket keys and the member key, so it only ever
 * travels sealed). Decoding checks the shape and recomputes the digest, so what a node
 * opens is exactly the version that was named.
 */
import { z } from 'zod';
import type { ConfigVersion, TlsSettings } from '../relay/settings.js';
import { configVersion } from './config-version.js';
import type { MemberKey } from './sealed-block.js';

export class ConfigPayloadError extends Error {
  override readonly name = 'ConfigPayloadError';
  readonly code = 'BATON_ERR_CONFIG_PAYLOAD';
}

const FORMAT = 1;
const BYTES_TAG = '$b64';

// Checked on the revived value: the decoded object keeps the sealer's key order, which the digest depends on.
const bytes = (len: number) => z.instanceof(Uint8Array).refine((b) => b.length === len, `${len} bytes expected`);
const ticketKey = z.strictObject({ id: bytes(16), secret: bytes(32) });

const tlsSchema = z.strictObject({
  certificates: z.array(z.strictObject({ cert: z.string().min(1), key: z.string().min(1), names: z.array(z.string().min(1)).optional() })).min(1),
  ticketKeys: z.strictObject({ current: ticketKey, previous: z.array(ticketKey).optional() }),
  ticketMode: z.enum(['stateless', 'stateful']).optional(),
  alpn: z.array(z.string().min(1).max(255)).optional(),
  cipherSuites: z.array(z.enum(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'])).optional(),
  groups: z.array(z.enum(['x25519', 'secp256r1', 'secp384r1'])).optional(),
  keyUpdateAfterRecords: z.number().int().positive().optional(),
  maxHandshakeChangeCipherSpecs: z.number().int().min(0).optional(),
  maxHandshakeWarningAlerts: z.number().int().min(0).optional(),
});

const payloadSchema = z.strictObject({
  format: z.literal(FORMAT),
  version: z.number().int().positive(),
  digest: z.string().regex(/^[0-9a-f]{64}$/),
  tls: tlsSchema,
  memberKey: z.strictObject({ id: z.string().regex(/^[0-9a-f]{16}$/), secret: bytes(32) }),
});

/** What a block holds. Secret. */
export interface SealedConfig {
  readonly version: ConfigVersion;
  readonly memberKey: MemberKey;
}

/** The version and member key as bytes (secret). */
export function encodeSealedConfig({ version: v, memberKey }: SealedConfig): Uint8Array {
  const json = JSON.stringify({ format: FORMAT, version: v.version, digest: v.digest, tls: v.tls, memberKey }, (_k, value: unknown) =>
    value instanceof Uint8Array ? { [BYTES_TAG]: Buffer.from(value).toString('base64') } : value,
  );
  return new Uint8Array(Buffer.from(json, 'utf8'));
}

/** The version and member key back; throws ConfigPayloadError naming the field (never a value) or a digest mismatch. */
export function decodeSealedConfig(data: Uint8Array): SealedConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(data).toString('utf8'), (_k, value: unknown) =>
      typeof value === 'object' && value !== null && typeof (value as Record<string, unknown>)[BYTES_TAG] === 'string' && Object.keys(value).length === 1
        ? new Uint8Array(Buffer.from((value as Record<string, string>)[BYTES_TAG]!, 'base64'))
        : value,
    );
  } catch {
    throw new ConfigPayloadError('the opened configuration is not JSON');
  }
  const parsed = payloadSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigPayloadError(`the opened configuration: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  const p = raw as { version: number; digest: string; tls: TlsSettings; memberKey: MemberKey };
  const v = configVersion(p.version, p.tls);
  if (v.digest !== p.digest) throw new ConfigPayloadError(`the opened configuration of version ${p.version} does not match its digest`);
  return { version: v, memberKey: p.memberKey };
}
