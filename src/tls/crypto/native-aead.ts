/**
 * The native record-protection addon (native/record_aead.c, built at install into
 * build/Release/baton_record_aead.node): its loader, the RecordAead over it, and which
 * backend record protection uses.
 *
 * The addon is looked for under the package root, the first directory up from this
 * module holding a package.json (so the same code finds it from src/ under tsx and
 * from a compiled dist/). It is loaded lazily, once per thread; BATON_NATIVE=0 turns
 * it off, and a missing or broken addon means node:crypto, with the reason said.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AeadName, RecordAead } from './aead.js';

/** Which implementation record protection uses, and why not the native one when it is not. */
export interface AeadBackend {
  readonly mode: 'native' | 'node:crypto';
  /** Null for native; otherwise the reason, in plain words. */
  readonly reason: string | null;
}

/** An addon context: one traffic key and direction (opaque to JS). */
type Handle = object & { readonly __brand?: 'baton_record_aead' };

interface Addon {
  create(aead: AeadName, key: Uint8Array, iv: Uint8Array, direction: 'seal' | 'open'): Handle;
  sealRecord(ctx: Handle, seq: number, type: number, content: Uint8Array, padding: number, out: Uint8Array, at: number): number;
  openRecord(ctx: Handle, seq: number, record: Uint8Array, out: Uint8Array, at: number): number;
  free(ctx: Handle): void;
  /** Absent from builds before it was added: such a build still protects records. */
  releaseFreeMemory?(): Promise<boolean>;
}

const ADDON_PATH = ['build', 'Release', 'baton_record_aead.node'] as const;

/** The first directory up from `from` holding a package.json, or null. */
function packageRoot(from: string): string | null {
  for (let dir = from; ; ) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

let loaded: { addon: Addon | null; backend: AeadBackend } | null = null;

function load(): { addon: Addon | null; backend: AeadBackend } {
  if (loaded) return loaded;
  const fallback = (reason: string) => ({ addon: null, backend: { mode: 'node:crypto', reason } as const });
  if (process.env.BATON_NATIVE === '0') {
    loaded = fallback('turned off by BATON_NATIVE=0');
    return loaded;
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const root = packageRoot(here);
  if (root === null) {
    loaded = fallback(`no package.json above ${here}, so no build/ to load the addon from`);
    return loaded;
  }
  const file = join(root, ...ADDON_PATH);
  if (!existsSync(file)) {
    loaded = fallback(`the native addon is not built (no ${file}; \`node native/build.mjs\` builds it)`);
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(file) as Partial<Addon>;
    for (const fn of ['create', 'sealRecord', 'openRecord', 'free'] as const) {
      if (typeof addon[fn] !== 'function') throw new Error(`it has no ${fn}()`);
    }
    loaded = { addon: addon as Addon, backend: { mode: 'native', reason: null } };
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
    loaded = fallback(`the native addon ${file} failed to load: ${msg}`);
  }
  return loaded;
}

/** The backend record protection uses in this thread (loads the addon on first call). */
export function aeadBackend(): AeadBackend {
  return load().backend;
}

/**
 * Gives the free memory of the process's malloc arenas back to the OS (glibc's
 * malloc_trim, run by the addon on libuv's thread pool): what a burst of handshakes
 * freed between the cipher contexts of the connections that stayed. Resolves false
 * without the addon or where there is no such call. It walks every arena: call it
 * after bursts, not per connection.
 */
export async function releaseFreeMemory(): Promise<boolean> {
  const { addon } = load();
  return (await addon?.releaseFreeMemory?.()) ?? false;
}

/** A RecordAead over one addon context; a second one is made by the addon if used the other way. */
class NativeAead implements RecordAead {
  private ctx: Handle | null;

  constructor(
    private readonly addon: Addon,
    aead: AeadName,
    key: Uint8Array,
    iv: Uint8Array,
    direction: 'seal' | 'open',
  ) {
    this.ctx = addon.create(aead, key, iv, direction);
  }

  sealRecord(seq: number, type: number, content: Uint8Array, padding: number, out: Uint8Array, at: number): number {
    return this.addon.sealRecord(this.live(), seq, type, content, padding, out, at);
  }

  openRecord(seq: number, record: Uint8Array, out: Uint8Array, at: number): number {
    return this.addon.openRecord(this.live(), seq, record, out, at);
  }

  free(): void {
    if (this.ctx === null) return;
    this.addon.free(this.ctx);
    this.ctx = null;
  }

  private live(): Handle {
    if (this.ctx === null) throw new TypeError('record AEAD used after free()');
    return this.ctx;
  }
}

/**
 * A native RecordAead (throws when the addon is not available: check aeadBackend()).
 * `direction` says which way it will mostly be used; the cipher context for it is made
 * now, one for the other way only if asked.
 */
export function nativeAead(aead: AeadName, key: Uint8Array, iv: Uint8Array, direction: 'seal' | 'open' = 'seal'): RecordAead {
  const { addon, backend } = load();
  if (addon === null) throw new Error(`native record protection is not available: ${backend.reason}`);
  return new NativeAead(addon, aead, key, iv, direction);
}
