#!/usr/bin/env node
// The `baton` command: registers tsx's ESM hooks, then loads the TypeScript entry.
// (A dynamic import, so that it runs after register().)
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
