#!/usr/bin/env node
// The `glm4v-run` command as npm links it (node_modules/.bin/glm4v-run, `npx glm4v-run`). This file is committed,
// so `npm ci` links it on a fresh clone; the CLI itself (dist/cli.js) exists only after `npm run build`.

import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('glm4v-run: @glm4v/runtime is not built yet: run `npm run build` first\n');
  process.exit(1);
}
await import(cli.href);
