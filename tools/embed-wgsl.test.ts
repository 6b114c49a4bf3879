import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./embed-wgsl.mjs', import.meta.url));
const embed = (...args: string[]) => execFileSync(process.execPath, [script, ...args]);

let dir = '';
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('embed-wgsl', () => {
  it('embeds each .wgsl, and removes generated modules whose source is gone (never hand-written ones)', () => {
    dir = mkdtempSync(join(tmpdir(), 'embed-wgsl-'));
    writeFileSync(join(dir, 'a.wgsl'), 'fn a() {}\n');
    writeFileSync(join(dir, 'b.wgsl'), 'fn b() {}\n');
    writeFileSync(join(dir, 'mine.wgsl.ts'), 'export default "hand-written";\n');
    embed(dir);
    // the text starts with the marker that maps compile errors back to the file (core's sourceLineOf)
    const marker = `// source: ${join(dir, 'a.wgsl')}, 1 lines\\n`;
    expect(readFileSync(join(dir, 'a.wgsl.ts'), 'utf8')).toContain(`export default "${marker}fn a() {}\\n";`);
    expect(existsSync(join(dir, 'b.wgsl.ts'))).toBe(true);
    rmSync(join(dir, 'b.wgsl'));
    embed(dir);
    expect(existsSync(join(dir, 'b.wgsl.ts'))).toBe(false);
    expect(existsSync(join(dir, 'a.wgsl.ts'))).toBe(true);
    expect(existsSync(join(dir, 'mine.wgsl.ts'))).toBe(true);
    embed('--clean', dir);
    expect(existsSync(join(dir, 'a.wgsl.ts'))).toBe(false);
    expect(existsSync(join(dir, 'a.wgsl'))).toBe(true);
    expect(existsSync(join(dir, 'mine.wgsl.ts'))).toBe(true);
  });
});
