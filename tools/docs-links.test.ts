// Comments and docs cite the model through docs/model.md's sections (`docs/model.md#m-rope`) or upstream function
// names, never through a document outside the repository ("spec" section numbers, numbered "pitfalls" of it) nor
// through tracker issues. This test walks the repository's sources and docs and fails on such a citation, and on a
// docs/model.md anchor that no heading of docs/model.md defines.

import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', '.cache', 'fixtures']);
const TEXT = /\.(ts|mjs|js|wgsl|md|py|sh|html|css)$/;

function textFiles(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) textFiles(path, out);
    } else if (TEXT.test(e.name) && !e.name.endsWith('.wgsl.ts')) out.push(path); // .wgsl.ts: generated copies
  }
  return out;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const line of markdown.split('\n')) {
    const m = /^#{1,6}\s+(.*)$/.exec(line);
    if (m)
      anchors.add(
        m[1]
          .trim()
          .toLowerCase()
          .replace(/[^\p{L}\p{N}\s-]/gu, '')
          .replace(/\s/g, '-'),
      );
  }
  return anchors;
}

/** Each model.md anchor cited in `text`, with those of a list that follows it (`docs/model.md#token-ids, #video`). */
export function citedAnchors(text: string): string[] {
  const cited: string[] = [];
  for (const m of text.matchAll(/model\.md#([\w-]+)((?:,\s*#[\w-]+)*)/g)) {
    cited.push(m[1], ...[...m[2].matchAll(/#([\w-]+)/g)].map((x) => x[1]));
  }
  return cited;
}

// Written with escapes so that this file does not match itself.
const FORBIDDEN: [string, RegExp][] = [
  ['a spec section', /\u00a7/],
  ['a numbered pitfall', /\bpitfall\s+\d/i],
  ['a tracker issue', /\bissue\s*#?\d/i],
];

export function badCitations(text: string): string[] {
  const found: string[] = [];
  text.split('\n').forEach((line, i) => {
    for (const [what, re] of FORBIDDEN) if (re.test(line)) found.push(`${i + 1}: ${what}: ${line.trim()}`);
  });
  return found;
}

describe('citations', () => {
  const files = textFiles(root);
  const model = join(root, 'docs', 'model.md');
  const anchors = anchorsOf(readFileSync(model, 'utf8'));

  it('the checks can fail', () => {
    expect(badCitations('// the merger (spec \u00a76.6, pitfall\x2010)').length).toBe(2);
    expect(badCitations('// see issue\x2012')).toHaveLength(1);
    expect(badCitations('// docs/model.md#pitfalls (10), the pitfalls list')).toEqual([]);
    expect(citedAnchors('(docs/model.md#token-ids, #special-tokens) and model.md#m-rope')).toEqual([
      'token-ids',
      'special-tokens',
      'm-rope',
    ]);
    expect(anchors.has('m-rope') && anchors.has('one-request') && !anchors.has('nowhere')).toBe(true);
  });

  it('no source, doc or README cites a spec section, a numbered pitfall or an issue', () => {
    expect(files.length).toBeGreaterThan(100);
    const bad = files.flatMap((f) => badCitations(readFileSync(f, 'utf8')).map((b) => `${relative(root, f)}:${b}`));
    expect(bad).toEqual([]);
  });

  it('every docs/model.md anchor cited anywhere (and every #link inside it) is a heading of docs/model.md', () => {
    const missing: string[] = [];
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      const cited = citedAnchors(text);
      if (f === model) cited.push(...[...text.matchAll(/\]\(#([\w-]+)\)/g)].map((m) => m[1]));
      for (const a of cited) if (!anchors.has(a)) missing.push(`${relative(root, f)}: #${a}`);
    }
    expect(missing).toEqual([]);
  });
});
