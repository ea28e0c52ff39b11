#!/usr/bin/env node
// The `baton` command. Installed, it runs the compiled JavaScript in dist/ (`npm run
// build` makes it; the package ships it). In a checkout without dist/ it runs the
// TypeScript in src/ through tsx, a dev dependency, so a fresh clone needs no build;
// BATON_FROM_SOURCE=1 picks src/ even when dist/ is there (the tests set it, so a stale
// dist/ never answers for the source under test).
import { existsSync } from 'node:fs';

const dist = new URL('../dist/cli/main.js', import.meta.url);
let entry = dist;
if (process.env.BATON_FROM_SOURCE === '1' || !existsSync(dist)) {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write('baton: error: no dist/ to run and no tsx to run src/ with: run `npm install` and `npm run build`\n');
    process.exit(1);
  }
  register();
  entry = new URL('../src/cli/main.ts', import.meta.url);
}
const { main } = await import(entry.href);
// Worker threads or sockets a failed start left behind must not keep the process alive.
process.exit(await main(process.argv));
