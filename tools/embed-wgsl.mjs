#!/usr/bin/env node
// Embeds every kernels/src/*.wgsl as a TypeScript module beside it (foo.wgsl -> foo.wgsl.ts, default export),
// so the built packages read no files at run time, and removes generated modules whose .wgsl is gone. The
// generated files are ignored by git. Each embedded text starts with one comment line,
// '// source: kernels/src/foo.wgsl, N lines', from which @glm4v/core's PipelineCache maps a compile error in the
// joined source back to the file and line (sourceLineOf in packages/core/src/source-lines.ts).
//   node tools/embed-wgsl.mjs [--clean] [dir ...]   (default dir: kernels/src; --clean removes the generated files)
import { readdirSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { join, dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const clean = args.includes('--clean');
const named = args.filter((a) => !a.startsWith('--')).map((d) => resolve(d));
const dirs = named.length > 0 ? named : [join(root, 'kernels/src')];
const header = (name) => `// Generated from ${name} by tools/embed-wgsl.mjs. Do not edit.\n`;

for (const dir of dirs) {
  if (!existsSync(dir)) continue;
  const names = readdirSync(dir);
  for (const name of names) {
    const path = join(dir, name);
    if (name.endsWith('.wgsl.ts')) {
      // Only files this script wrote (they start with its header) are removed: on --clean, or when the source is gone.
      const source = name.slice(0, -'.ts'.length);
      if ((clean || !names.includes(source)) && readFileSync(path, 'utf8').startsWith(header(source))) rmSync(path);
      continue;
    }
    if (!name.endsWith('.wgsl') || clean) continue;
    const out = `${path}.ts`;
    const wgsl = readFileSync(path, 'utf8');
    const lines = wgsl.split('\n').length - (wgsl.endsWith('\n') ? 1 : 0);
    const rel = relative(root, path);
    const shown = rel.startsWith('..') ? path : rel.split(sep).join('/'); // repository-relative where it can be
    const marked = `// source: ${shown}, ${lines} lines\n${wgsl}`;
    const text = `${header(name)}export default ${JSON.stringify(marked)};\n`;
    if (!existsSync(out) || readFileSync(out, 'utf8') !== text) writeFileSync(out, text);
  }
}
