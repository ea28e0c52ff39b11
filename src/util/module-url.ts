/**
 * Where a module beside the caller is, for the modules a worker thread or a child
 * process loads by URL: `.ts` when the caller runs from `src/` (under tsx, as the tests
 * and a dev checkout do), `.js` when it runs compiled from `dist/` (the installed package).
 */

/** The URL of the module `stem` (e.g. `./relay-actor`) relative to `base` (the caller's `import.meta.url`). */
export function siblingModule(base: string, stem: string): URL {
  return new URL(`${stem}${isSource(base) ? '.ts' : '.js'}`, base);
}

/** Whether `url` (an `import.meta.url`) is TypeScript source, which only loads through tsx. */
export function isSource(url: string): boolean {
  return /\.[mc]?ts$/.test(url);
}
