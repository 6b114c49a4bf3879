import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./size-report.mjs', import.meta.url));
const report = (...args: string[]) => execFileSync(process.execPath, [script, ...args], { encoding: 'utf8' });

let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('size-report', () => {
  it('names files over 400 lines and lines over 120 characters, and exits 0 (a warning)', () => {
    dir = mkdtempSync(join(tmpdir(), 'size-report-'));
    const [small, big, wide] = ['small.ts', 'big.ts', 'wide.ts'].map((f) => join(dir, f));
    writeFileSync(small, `${'x\n'.repeat(399)}${'y'.repeat(120)}\n`); // at both limits, not over
    writeFileSync(big, 'x\n'.repeat(401));
    writeFileSync(wide, `${'a'.repeat(121)}\nshort\n${'中'.repeat(121)}\n`);
    const out = report('--lines', small, big, wide);
    expect(out).toContain('1 files over 400 lines, 2 lines over 120 characters');
    expect(out).toContain(`401 lines  ${big}`);
    expect(out).toContain(`${wide}:1  121 characters`);
    expect(out).toContain(`${wide}:3  121 characters`);
    expect(out).not.toContain(small);
  });
});
