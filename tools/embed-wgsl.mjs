#!/usr/bin/env node
// Embeds every kernels/src/*.wgsl as a TypeScript module beside it (foo.wgsl -> foo.wgsl.ts, default export),
// so the built packages read no files at run time. The generated files are ignored by git.
import { readdirSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dirs = [join(root, 'kernels/src')];
const clean = process.argv.includes('--clean');
for (const dir of dirs) {
  if (!existsSync(dir)) continue;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (name.endsWith('.wgsl.ts') && clean) rmSync(path);
    if (!name.endsWith('.wgsl') || clean) continue;
    const out = `${path}.ts`;
    const text = `// Generated from ${name} by tools/embed-wgsl.mjs. Do not edit.\nexport default ${JSON.stringify(readFileSync(path, 'utf8'))};\n`;
    if (!existsSync(out) || readFileSync(out, 'utf8') !== text) writeFileSync(out, text);
  }
}
