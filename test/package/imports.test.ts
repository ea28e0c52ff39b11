/**
 * The product stands apart from its bench and its tests: every import in src/ (static,
 * dynamic, and `new URL(..., import.meta.url)` module names) resolves inside src/, and
 * no file in src/ imports a dev dependency statically (the installed package has none;
 * tsx is reached only by name, when a `.ts` module has to be loaded).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return /\.(ts|mts|mjs|js)$/.test(e.name) ? [p] : [];
  });
}

interface Import {
  readonly file: string;
  readonly specifier: string;
  readonly kind: 'static' | 'dynamic' | 'url';
}

/** Every module specifier a file names. Comments are dropped first, so a doc example is not an import. */
export function importsOf(file: string, text: string): Import[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const found: Import[] = [];
  const patterns: [RegExp, Import['kind']][] = [
    [/^\s*(?:import|export)\s+(?:type\s+)?(?:[^'"`;]*?\sfrom\s+)?['"]([^'"]+)['"]/gm, 'static'],
    [/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, 'dynamic'],
    [/\bnew URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g, 'url'],
  ];
  for (const [re, kind] of patterns) for (const m of code.matchAll(re)) found.push({ file, specifier: m[1]!, kind });
  return found;
}

const files = sources(SRC);
const all = files.flatMap((f) => importsOf(f, readFileSync(f, 'utf8')));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

/** The package a bare specifier names (`@scope/name/sub` -> `@scope/name`). */
const packageOf = (s: string) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!);

describe('src/ imports', () => {
  it('finds the imports it checks (the scan works)', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(all.some((i) => i.kind === 'static' && i.specifier === 'commander')).toBe(true);
    expect(all.some((i) => i.kind === 'dynamic' && i.specifier === './cluster-command.js')).toBe(true);
    expect(importsOf('x.ts', "import a from '../../bench/x.js';\n// import b from '../test/y.js'\nconst u = new URL('../test/z.ts', import.meta.url);").map((i) => i.specifier)).toEqual([
      '../../bench/x.js',
      '../test/z.ts',
    ]);
  });

  it('resolve inside src/: nothing from bench/ or test/', () => {
    const outside = all
      .filter((i) => i.specifier.startsWith('.'))
      .map((i) => ({ ...i, target: relative(ROOT, resolve(dirname(i.file), i.specifier)) }))
      // bin/ and package.json are the package's own (the bench runs the bin; --version reads the version).
      .filter((i) => !i.target.startsWith('src/') && i.target !== 'bin/baton.mjs' && i.target !== 'package.json' && i.target !== '')
      .map((i) => `${relative(ROOT, i.file)}: ${i.specifier} (${i.kind})`);
    expect(outside).toEqual([]);
  });

  it('name only production dependencies and node: builtins statically', () => {
    const bare = all.filter((i) => i.kind !== 'url' && !i.specifier.startsWith('.') && !i.specifier.startsWith('node:'));
    const bad = bare
      .filter((i) => !(packageOf(i.specifier) in pkg.dependencies))
      // tsx, a dev dependency, is loaded by name only when a .ts module must run (from src/ under the tests).
      .filter((i) => !(i.kind === 'dynamic' && packageOf(i.specifier) === 'tsx'))
      .map((i) => `${relative(ROOT, i.file)}: ${i.specifier} (${i.kind})`);
    expect(bad).toEqual([]);
    expect(Object.keys(pkg.dependencies)).not.toContain('tsx');
  });

  it('keep node:crypto inside the TLS engine to src/tls/crypto/ (keys and primitives in one room)', () => {
    const engineCrypto = all.filter((i) => relative(SRC, i.file).startsWith('tls/') && i.specifier === 'node:crypto');
    expect(engineCrypto.length).toBeGreaterThan(3);
    const outside = engineCrypto.filter((i) => !relative(SRC, i.file).startsWith('tls/crypto/')).map((i) => relative(ROOT, i.file));
    expect(outside).toEqual([]);
  });
});
