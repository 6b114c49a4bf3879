// glm4v-run end to end (the built dist/cli.js, as a user runs it) on a tiny random-weight checkpoint.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTinyCheckpoint } from './demo.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
let dir: string;
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-cli-'));
  dir = join(tmp, 'ckpt');
  await makeTinyCheckpoint(dir);
  await writeFile(join(tmp, 'corrupt.png'), Buffer.from('\x89PNG\r\n\x1a\nthis is not an image'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, GLM4V_CACHE: join(tmp, 'cache'), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The last line of stderr that is ours (Dawn prints its own warnings on lavapipe). */
const ourError = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('glm4v-run:')).join('\n');

const json = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!);

describe('glm4v-run', () => {
  it('answers a text prompt as JSON with the stats', async () => {
    const r = await run(['--model', dir, '--json', '--max-new-tokens', '6', '--seed', '3', 'Hello there']);
    expect(r.code, r.stderr).toBe(0);
    const out = json(r.stdout);
    expect(Object.keys(out).sort()).toEqual(['answer', 'finish_reason', 'stats', 'thinking', 'tokens']);
    expect(out.tokens.length).toBeGreaterThan(0);
    expect(out.tokens.length).toBeLessThanOrEqual(6);
    expect(out.stats.promptTokens).toBeGreaterThan(5);
    expect(out.stats.seed).toBe(3);
  });

  it('streams text with a stats line, for one image, two images and Chinese', async () => {
    const img = join(dir, 'sample.png');
    const one = await run(['--model', dir, '--image', img, '--max-new-tokens', '4', 'What is this?']);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stderr).toMatch(/\d+ prompt tokens, \d+ generated \((stop|length)\); first token [\d.]+ s, prefill [\d.]+ tok\/s, decode [\d.]+ tok\/s; seed \d+/);
    const two = await run(['--model', dir, '--image', img, '--image', img, '--json', '--max-new-tokens', '4', 'Compare them.']);
    expect(two.code, two.stderr).toBe(0);
    expect(json(two.stdout).stats.promptTokens).toBeGreaterThan(json((await run(['--model', dir, '--image', img, '--json', '--max-new-tokens', '1', 'Compare them.'])).stdout).stats.promptTokens);
    const zh = await run(['--model', dir, '--json', '--max-new-tokens', '4', '--system', '你是一个助手', '这张图片里有什么？']);
    expect(zh.code, zh.stderr).toBe(0);
  });

  it('gives the same output for the same seed', async () => {
    const args = ['--model', dir, '--json', '--max-new-tokens', '8', '--temperature', '1.2', '--top-k', '0', '--seed', '11', 'Tell me a story.'];
    const [a, b] = [await run(args), await run(args)];
    expect(json(a.stdout).tokens).toEqual(json(b.stdout).tokens);
  });

  it('runs the demo with its bundled image and question', async () => {
    const r = await run(['--demo', '--json', '--max-new-tokens', '3']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/RANDOM weights/);
    expect(json(r.stdout).stats.promptTokens).toBeGreaterThan(20);
  });

  it('exits 3 naming the file for a missing or corrupt image, a bad model folder, an overlong prompt', async () => {
    const missing = await run(['--model', dir, '--image', join(tmp, 'nope.jpg'), 'x']);
    expect(missing.code).toBe(3);
    expect(ourError(missing.stderr)).toMatch(/nope\.jpg/);
    const corrupt = await run(['--model', dir, '--image', join(tmp, 'corrupt.png'), 'x']);
    expect(corrupt.code).toBe(3);
    expect(ourError(corrupt.stderr)).toMatch(/corrupt\.png/);
    const badModel = await run(['--model', join(tmp, 'no-such-model'), 'x']);
    expect(badModel.code).toBe(3);
    expect(ourError(badModel.stderr)).toMatch(/no-such-model/);
    const long = await run(['--model', dir, '--context', '16', 'a fairly long prompt that does not fit sixteen tokens of context at all']);
    expect(long.code).toBe(3);
    expect(ourError(long.stderr)).toMatch(/context holds 16/);
    for (const r of [missing, corrupt, badModel, long]) {
      expect(ourError(r.stderr).split('\n')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace without GLM4V_DEBUG
    }
  });

  it('quantizes a checkpoint that then loads directly and answers as quantising on load does; --quant refuses unknown formats', async () => {
    const out = join(tmp, 'ckpt-q4');
    const q = await run(['quantize', '--model', dir, '--out', out, '--quant', 'q4', '--quant-vision', 'q8']);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stderr).toMatch(/wrote .*ckpt-q4 \(decoder q4, vision q8\)/);
    const args = ['--json', '--max-new-tokens', '6', '--temperature', '0', '--image', join(dir, 'sample.png'), 'What is this?'];
    const stored = await run(['--model', out, ...args]);
    const onLoad = await run(['--model', dir, '--quant', 'q4', '--quant-vision', 'q8', ...args]);
    expect(stored.code, stored.stderr).toBe(0);
    expect(onLoad.code, onLoad.stderr).toBe(0);
    expect(json(stored.stdout).tokens).toEqual(json(onLoad.stdout).tokens);
    const again = await run(['quantize', '--model', dir, '--out', out, '--quant', 'q8']);
    expect(again.code).toBe(3);
    expect(ourError(again.stderr)).toMatch(/ckpt-q4 already exists/);
    const other = await run(['--model', out, '--quant', 'q8', '--max-new-tokens', '1', 'x']);
    expect(other.code).toBe(3);
    expect(ourError(other.stderr)).toMatch(/is stored as q4; it cannot be loaded as q8/);
    for (const bad of [['--model', dir, '--quant', 'q3', 'x'], ['--model', dir, '--quant-vision', 'int8', 'x'], ['quantize', '--model', dir, '--out', join(tmp, 'z')], ['quantize', '--model', dir, '--quant', 'q4']]) {
      const r = await run(bad);
      expect(r.code, bad.join(' ')).toBe(2);
    }
    expect(ourError((await run(['--model', dir, '--quant', 'q3', 'x'])).stderr)).toMatch(/--quant expects q8 or q4, got 'q3'/);
  });

  it('exits 2 on usage errors and prints help', async () => {
    expect((await run(['--model', dir])).code).toBe(2);
    expect((await run(['--model', dir, '--temperature', 'hot', 'x'])).code).toBe(2);
    expect((await run(['--bogus'])).code).toBe(2);
    for (const bad of [['--max-new-tokens', '0'], ['--top-p', '0'], ['--seed', '1.5'], ['--top-k', '5000'], ['--context', '0']]) {
      const r = await run(['--model', dir, ...bad, 'x']);
      expect(r.code, bad.join(' ')).toBe(2);
      expect(ourError(r.stderr)).toContain(`${bad[0]} = ${bad[1]}`);
    }
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage:/);
  });
});
