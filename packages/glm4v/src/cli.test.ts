// glm4v-run end to end (the built dist/cli.js, as a user runs it) on a tiny random-weight checkpoint.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTinyCheckpoint } from './demo.js';
import { ROOT, exec, lastJson as json, ourError, runCli } from './cli/cli-process.js';
import { HAS_FFMPEG, makeTestClip } from './test-clip.js';

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

const cache = () => ({ GLM4V_CACHE: join(tmp, 'cache') });
const run = (args: string[], env: Record<string, string> = {}, input?: string) =>
  runCli(args, { env: { ...cache(), ...env }, input });

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
    expect(one.stderr).toMatch(
      /\d+ prompt tokens, \d+ generated \((stop|length)\); first token [\d.]+ s, prefill [\d.]+ tok\/s, decode [\d.]+ tok\/s; seed \d+/,
    );
    const two = await run([
      '--model',
      dir,
      '--image',
      img,
      '--image',
      img,
      '--json',
      '--max-new-tokens',
      '4',
      'Compare them.',
    ]);
    expect(two.code, two.stderr).toBe(0);
    expect(json(two.stdout).stats.promptTokens).toBeGreaterThan(
      json((await run(['--model', dir, '--image', img, '--json', '--max-new-tokens', '1', 'Compare them.'])).stdout)
        .stats.promptTokens,
    );
    const zh = await run([
      '--model',
      dir,
      '--json',
      '--max-new-tokens',
      '4',
      '--system',
      '你是一个助手',
      '这张图片里有什么？',
    ]);
    expect(zh.code, zh.stderr).toBe(0);
  });

  it('gives the same output for the same seed', async () => {
    const args = [
      '--model',
      dir,
      '--json',
      '--max-new-tokens',
      '8',
      '--temperature',
      '1.2',
      '--top-k',
      '0',
      '--seed',
      '11',
      'Tell me a story.',
    ];
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
    const long = await run([
      '--model',
      dir,
      '--context',
      '16',
      'a fairly long prompt that does not fit sixteen tokens of context at all',
    ]);
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
    const args = [
      '--json',
      '--max-new-tokens',
      '6',
      '--temperature',
      '0',
      '--image',
      join(dir, 'sample.png'),
      'What is this?',
    ];
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
    for (const bad of [
      ['--model', dir, '--quant', 'q3', 'x'],
      ['--model', dir, '--quant-vision', 'int8', 'x'],
      ['quantize', '--model', dir, '--out', join(tmp, 'z')],
      ['quantize', '--model', dir, '--quant', 'q4'],
    ]) {
      const r = await run(bad);
      expect(r.code, bad.join(' ')).toBe(2);
    }
    expect(ourError((await run(['--model', dir, '--quant', 'q3', 'x'])).stderr)).toMatch(
      /--quant expects q8 or q4, got 'q3'/,
    );
  });

  it('exits 2 on usage errors and prints help', async () => {
    expect((await run(['--model', dir])).code).toBe(2);
    expect((await run(['--model', dir, '--temperature', 'hot', 'x'])).code).toBe(2);
    expect((await run(['--bogus'])).code).toBe(2);
    for (const bad of [
      ['--max-new-tokens', '0'],
      ['--top-p', '0'],
      ['--seed', '1.5'],
      ['--top-k', '5000'],
      ['--context', '0'],
    ]) {
      const r = await run(['--model', dir, ...bad, 'x']);
      expect(r.code, bad.join(' ')).toBe(2);
      expect(ourError(r.stderr)).toContain(`${bad[0]} = ${bad[1]}`);
    }
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage:/);
  });

  it('serve: usage errors exit 2 before the weights load, naming the flag; a missing media folder exits 3', async () => {
    for (const [bad, flag] of [
      [['--max-batch', '0'], '--max-batch'],
      [['--port', '70000'], '--port'],
      [['--context', '999999'], '--context'],
      [['--bogus'], 'bogus'],
    ] as const) {
      const r = await run(['serve', '--model', dir, ...bad]);
      expect(r.code, bad.join(' ')).toBe(2);
      expect(ourError(r.stderr)).toContain(flag);
    }
    const media = await run(['serve', '--model', dir, '--media-dir', join(tmp, 'nowhere')]);
    expect([media.code, ourError(media.stderr)]).toEqual([
      3,
      `glm4v-run: --media-dir ${join(tmp, 'nowhere')}: no such folder`,
    ]);
    const help = await run(['serve', '--help']);
    expect([help.code, help.stdout]).toEqual([0, expect.stringMatching(/POST \/v1\/chat\/completions/)]);
  });
});

describe('glm4v-run request flags', () => {
  const img = () => join(dir, 'sample.png');
  const tokensOf = async (args: string[]) => {
    const r = await run(['--model', dir, '--json', '--max-new-tokens', '1', ...args]);
    expect(r.code, r.stderr).toBe(0);
    return json(r.stdout).stats.promptTokens as number;
  };

  it('--min-pixels / --max-pixels set the image budget; crossed, they are a usage error naming both', async () => {
    const [dflt, small, large] = [
      await tokensOf(['--image', img(), 'x']),
      await tokensOf(['--image', img(), '--max-pixels', '20000', 'x']),
      await tokensOf(['--image', img(), '--min-pixels', '400000', 'x']),
    ];
    expect(small).toBeLessThan(dflt);
    expect(large).toBeGreaterThan(dflt);
    const crossed = await run(['--model', dir, '--min-pixels', '9000', '--max-pixels', '8000', 'x']);
    expect(crossed.code).toBe(2);
    expect(ourError(crossed.stderr)).toMatch(/--min-pixels = 9000 is above --max-pixels = 8000/);
  });

  it.skipIf(!HAS_FFMPEG)('--fps and --max-frames set the video sampling', async () => {
    const clip = join(tmp, 'clip.mp4');
    expect(makeTestClip(clip, { size: '112x84', rate: 8, seconds: 3 }).status).toBe(0);
    const [dflt, faster, capped] = [
      await tokensOf(['--video', clip, 'x']),
      await tokensOf(['--video', clip, '--fps', '4', 'x']),
      await tokensOf(['--video', clip, '--fps', '4', '--max-frames', '4', 'x']),
    ];
    expect(faster).toBeGreaterThan(dflt);
    expect(capped).toBeLessThan(faster);
    expect((await run(['--model', dir, '--video', clip, '--max-frames', '1', 'x'])).code).toBe(2);
  });

  it('--kv-cache f16 or f32, nothing else; a prompt - comes from stdin', async () => {
    const f16 = await run(['--model', dir, '--json', '--kv-cache', 'f16', '--max-new-tokens', '3', 'Hi']);
    expect(f16.code, f16.stderr).toBe(0);
    expect((await run(['--model', dir, '--kv-cache', 'f8', 'Hi'])).code).toBe(2);
    const piped = await run(
      ['--model', dir, '--json', '--max-new-tokens', '3', '--temperature', '0', '-'],
      {},
      '你好, how are you?\n',
    );
    const given = await run([
      '--model',
      dir,
      '--json',
      '--max-new-tokens',
      '3',
      '--temperature',
      '0',
      '你好, how are you?',
    ]);
    expect(piped.code, piped.stderr).toBe(0);
    expect([json(piped.stdout).stats.promptTokens, json(piped.stdout).tokens]).toEqual([
      json(given.stdout).stats.promptTokens,
      json(given.stdout).tokens,
    ]);
  });
});

describe('glm4v-run as the docs show it', () => {
  const docs = async () =>
    (await Promise.all(['README.md', 'packages/glm4v/README.md'].map((f) => readFile(join(ROOT, f), 'utf8')))).join(
      '\n',
    );

  it('is on PATH after npm ci (node_modules/.bin), and every flag the docs use is one it takes', async () => {
    const path = `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}`;
    const help = await exec('glm4v-run', ['--help'], { env: { ...cache(), PATH: path } });
    expect(help.code, help.stderr).toBe(0);
    const subcommands = ['chat', 'batch', 'worker', 'serve'];
    const subHelps = await Promise.all(subcommands.map((c) => run([c, '--help'])));
    for (const r of subHelps) expect(r.code, r.stderr).toBe(0);
    const helps = new Map([
      ['run', help.stdout],
      ...subcommands.map((c, i) => [c, subHelps[i].stdout] as [string, string]),
      ['logits', '--model --inputs --out --greedy --taps'],
    ]);
    const lines = (await docs()).split('\n').filter((l) => /^(echo .*\| )?npx glm4v-run /.test(l));
    expect(lines.length).toBeGreaterThan(5);
    for (const line of lines) {
      const command = line.match(/glm4v-run (logits|chat|batch|worker|serve)\b/)?.[1] ?? 'run';
      for (const flag of line.replace(/#.*/, '').match(/(?<=\s)--[a-z-]+/g) ?? [])
        expect(helps.get(command), `${flag} in: ${line}`).toContain(flag);
    }
  });

  it('runs the --demo lines of the READMEs verbatim', async () => {
    const lines = (await docs()).split('\n').filter((l) => l.startsWith('npx glm4v-run --demo'));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) {
      const r = await exec(line.replace(/#.*/, ''), [], { env: cache(), shell: true });
      expect(r.code, `${line}\n${r.stderr}`).toBe(0);
      expect(r.stdout.trim().length, line).toBeGreaterThan(0);
    }
  });
});
