#!/usr/bin/env node
// Launcher: the CLI is compiled TypeScript in dist/ (built by `npm run build`, which the
// bootstrap runs). Kept as plain JS so `npx nodemesh` works from a checkout.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  console.error('nodemesh: not built yet; run `npm run bootstrap` (or `npm test` / `npm run demo`) first');
  process.exit(2);
}
await import(main);
