#!/usr/bin/env node
// A warning, never a failure: source files over 400 lines (the style's "small files") and lines wider than
// Prettier's printWidth (.prettierrc.json; Prettier does not wrap comments, strings or WGSL). Run by `npm test`.
//   node tools/size-report.mjs [--lines] [file ...]
// Default files: the repository's tracked sources (git ls-files). --lines lists every long line, not only the
// ten files with the most.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAX_FILE_LINES = 400;
const SOURCE = /\.(ts|mjs|js|wgsl|css|html|py|sh)$/;
const SKIP = /(^|\/)(conformance\/fixtures|node_modules|dist)\/|\.wgsl\.ts$/;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const listLines = args.includes('--lines');
const named = args.filter((a) => !a.startsWith('--'));
const width = JSON.parse(readFileSync(join(root, '.prettierrc.json'), 'utf8')).printWidth;

function trackedSources() {
  const out = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' });
  return out.split('\n').filter((f) => SOURCE.test(f) && !SKIP.test(f));
}

const files = named.length > 0 ? named : trackedSources();
const long = []; // { file, count, lines: [[lineNo, length]] }
const big = []; // [lines, file]
for (const file of files) {
  const lines = readFileSync(named.length > 0 ? file : join(root, file), 'utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines.length > MAX_FILE_LINES) big.push([lines.length, file]);
  const wide = lines.flatMap((l, i) => ([...l].length > width ? [[i + 1, [...l].length]] : []));
  if (wide.length > 0) long.push({ file, count: wide.length, lines: wide });
}

big.sort((a, b) => b[0] - a[0]);
long.sort((a, b) => b.count - a.count || a.file.localeCompare(b.file));
const total = long.reduce((s, f) => s + f.count, 0);
console.log(
  `size report (a warning): ${big.length} files over ${MAX_FILE_LINES} lines, ${total} lines over ${width} characters`,
);
for (const [n, file] of big) console.log(`  ${String(n).padStart(5)} lines  ${file}`);
if (total > 0) {
  const shown = listLines ? long : long.slice(0, 10);
  for (const f of shown) {
    if (!listLines) console.log(`  ${String(f.count).padStart(5)} wide   ${f.file}`);
    else for (const [n, len] of f.lines) console.log(`  ${f.file}:${n}  ${len} characters`);
  }
  if (shown.length < long.length)
    console.log(`  … and ${long.length - shown.length} more files (--lines lists every line)`);
}
