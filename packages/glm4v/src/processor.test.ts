// Requests checked before the weights load (processor.ts): with a checkpoint of the real model's layout whose
// 21 GB weight file is sparse (or a FIFO nobody writes, which any read would block on), a bad image, an image past
// the aspect-ratio limit, a prompt past the context or a bad option fails at once, named; per-request pixel
// budgets and video sampling; a prepared prompt generates what the request does.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { ConfigError, ContextOverflowError, Device, InputError, LimitError } from '@glm4v/core';
import { encodeHeader } from './checkpoint/writer.js';
import { makeTinyCheckpoint, TINY_CONFIG_JSON } from './demo.js';
import { Glm4v } from './glm4v.js';
import { GLM41V_9B_CONFIG_JSON, GLM41V_TOKEN_IDS, glm41v9bConfig } from './model/glm41v-9b.js';
import { checkpointShapes } from './model/tensor-shapes.js';
import { Glm4vProcessor } from './processor.js';
import { writeTinyTokenizer } from './prompt/tiny-tokenizer.js';
import { runCli } from './cli/cli-process.js';
import { HAS_FFMPEG, makeTestClip } from './test-clip.js';

let tmp: string;
let huge: string;
let fifo: string;
let tiny: string;

/** config, tokenizer (the real special ids) and generation config of the real model, without weights. */
async function realLayoutFolder(dir: string): Promise<void> {
  await writeTinyTokenizer(dir, GLM41V_9B_CONFIG_JSON.text_config.vocab_size);
  await writeFile(join(dir, 'config.json'), JSON.stringify(GLM41V_9B_CONFIG_JSON));
  await writeFile(
    join(dir, 'generation_config.json'),
    JSON.stringify({ eos_token_id: GLM41V_TOKEN_IDS.eos_token_id, do_sample: false }),
  );
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-processor-'));
  [huge, fifo, tiny] = ['huge', 'fifo', 'tiny'].map((d) => join(tmp, d));
  await realLayoutFolder(huge);
  const { header, sizes } = encodeHeader(
    checkpointShapes(glm41v9bConfig()).map((t) => ({ ...t, dtype: 'BF16' as const })),
  );
  const f = await open(join(huge, 'model.safetensors'), 'w');
  await f.write(header);
  await f.truncate(header.byteLength + sizes.reduce((a, b) => a + b, 0)); // sparse: 21 GB that take no disk
  await f.close();
  await realLayoutFolder(fifo);
  expect(spawnSync('mkfifo', [join(fifo, 'model.safetensors')]).status).toBe(0);
  await makeTinyCheckpoint(tiny);
  await writeFile(join(tmp, 'corrupt.png'), Buffer.from('\x89PNG\r\n\x1a\nthis is not an image'));
  await sharp({ create: { width: 600, height: 2, channels: 3, background: '#808080' } })
    .png()
    .toFile(join(tmp, 'wide.png'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** The CLI, killed after 60 s (it would block on the FIFO forever if it read the weights). */
const run = (args: string[]) => runCli(args, { timeout: 60_000 });

const withImage = (path: string, text = 'What is this?') => ({
  messages: [
    {
      role: 'user' as const,
      content: [
        { type: 'image' as const, image: { path } },
        { type: 'text' as const, text },
      ],
    },
  ],
});

describe('Glm4vProcessor on a 21 GB checkpoint, weights never opened', () => {
  it('refuses a corrupt image in under a second', async () => {
    expect((await stat(join(huge, 'model.safetensors'))).size).toBeGreaterThan(20e9);
    const t0 = performance.now();
    const processor = await Glm4vProcessor.load(huge);
    const err = await processor.prepare(withImage(join(tmp, 'corrupt.png'))).catch((e: unknown) => e);
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(InputError);
    expect(String(err)).toMatch(/corrupt\.png/);
    expect(ms).toBeLessThan(1000);
  });

  it('refuses an image past the aspect-ratio limit, a prompt past the context and bad options, each named', async () => {
    const p = await Glm4vProcessor.load(huge);
    await expect(p.prepare(withImage(join(tmp, 'wide.png')))).rejects.toThrow(/wide\.png.*aspect ratio/);
    await expect(p.prepare(withImage(join(tmp, 'missing.png')))).rejects.toThrow(/missing\.png': no such file/);
    await expect(
      p.prepare({ messages: [{ role: 'user', content: 'a prompt longer than the context' }] }, { contextLength: 8 }),
    ).rejects.toBeInstanceOf(ContextOverflowError);
    await expect(p.prepare({ messages: [{ role: 'user', content: 'x' }] }, { topP: 2 })).rejects.toThrow(
      /option topP = 2/,
    );
    await expect(
      p.prepare({ messages: [{ role: 'user', content: 'x' }] }, { maxPixels: 100, minPixels: 200 }),
    ).rejects.toThrow(/minPixels = 200 is above option maxPixels = 100/);
    await expect(p.prepare({ messages: [{ role: 'robot' as never, content: 'x' }] })).rejects.toThrow(
      /messages\[0\]\.role/,
    );
  });

  it('refuses a tokenizer whose media token ids disagree with config.json', async () => {
    const bad = join(tmp, 'bad-ids');
    await writeTinyTokenizer(bad, TINY_CONFIG_JSON.text_config.vocab_size);
    await writeFile(
      join(bad, 'config.json'),
      JSON.stringify({
        ...TINY_CONFIG_JSON,
        image_token_id: 1,
        text_config: { ...TINY_CONFIG_JSON.text_config, image_token_id: 1 },
      }),
    );
    await expect(Glm4vProcessor.load(bad)).rejects.toThrow(ConfigError);
    await expect(Glm4vProcessor.load(bad)).rejects.toThrow(
      /'<\|image\|>' is id \d+, but config.json image_token_id is 1/,
    );
  });

  it.skipIf(!HAS_FFMPEG)('refuses a video too short to sample, naming it', async () => {
    const clip = join(tmp, 'short.mp4');
    expect(makeTestClip(clip, { size: '64x48', rate: 10, seconds: 0.2 }).status).toBe(0);
    const p = await Glm4vProcessor.load(huge);
    await expect(
      p.prepare({ messages: [{ role: 'user', content: [{ type: 'video', video: clip }] }] }),
    ).rejects.toThrow(/short\.mp4.*too short/);
  });

  it('glm4v-run exits 3 on a bad image within a second of starting, even when reading the weights would block forever', async () => {
    const timed = async (args: string[]) => {
      const t0 = performance.now();
      return { ...(await run(args)), ms: performance.now() - t0 };
    };
    const start = await timed(['--help']); // node and the modules: the same for every command
    const r = await timed(['--model', fifo, '--image', join(tmp, 'corrupt.png'), 'x']);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/^glm4v-run: image file '.*corrupt\.png': not a readable image/m);
    console.log(`glm4v-run refused the image in ${r.ms.toFixed(0)} ms; --help takes ${start.ms.toFixed(0)} ms`);
    expect(r.ms - start.ms).toBeLessThan(1000);
  });

  it('glm4v-run exits 4 on an image too large for the device, naming --max-pixels, before reading the weights', async (ctx) => {
    const device = await Device.create();
    const limit = device.limits.maxStorageBufferBindingSize;
    device.dispose();
    if (limit > 128 * 2 ** 20) ctx.skip(); // an image past a larger binding is past the default pixel budget too
    const big = join(tmp, 'big.png'); // 2156² after resizing: 23,716 patches of 6 KiB in one binding > 128 MiB
    await sharp({ create: { width: 2150, height: 2150, channels: 3, background: '#336699' } })
      .png()
      .toFile(big);
    const r = await run(['--model', fifo, '--image', big, 'x']);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(
      /^glm4v-run: an image of 2156×2156 pixels .* storage binding for the vision tower.*--max-pixels/m,
    );
  });
});

describe('PreparedPrompt', () => {
  it('takes the pixel budget of the request, and names the flag when an image cannot fit a device', async () => {
    const p = await Glm4vProcessor.load(tiny);
    const sample = withImage(join(tiny, 'sample.png'));
    const pixels = (g: readonly number[]) => 2 * g[1] * g[2] * 14 * 14; // a still image counts as 2 frames
    const dflt = (await p.prepare(sample)).media[0].grid;
    const small = (await p.prepare(sample, { maxPixels: 2 * 56 * 56 })).media[0].grid;
    const large = (await p.prepare(sample, { minPixels: 2 * 600 * 450, maxPixels: 2 * 700 * 500 })).media[0].grid;
    expect(pixels(small)).toBeLessThanOrEqual(2 * 56 * 56);
    expect(pixels(small)).toBeLessThan(pixels(dflt));
    expect(pixels(large)).toBeGreaterThanOrEqual(2 * 600 * 450);
    const prepared = await p.prepare(sample);
    expect(() => p.checkLimits(prepared, { maxStorageBufferBindingSize: 64 * 1024 })).toThrow(LimitError);
    expect(() => p.checkLimits(prepared, { maxStorageBufferBindingSize: 64 * 1024 })).toThrow(/--max-pixels/);
  });

  it.skipIf(!HAS_FFMPEG)('samples video frames at the request fps, up to maxFrames', async () => {
    const clip = join(tmp, 'clip.mp4');
    expect(makeTestClip(clip, { size: '112x84', rate: 8, seconds: 3 }).status).toBe(0);
    const p = await Glm4vProcessor.load(tiny);
    const video = { messages: [{ role: 'user' as const, content: [{ type: 'video' as const, video: clip }] }] };
    const frames = async (o = {}) => (await p.prepare(video, o)).media[0].grid[0] * 2;
    expect(await frames()).toBe(6); // 3 s at 2 fps
    expect(await frames({ fps: 4 })).toBe(12);
    expect(await frames({ fps: 4, maxFrames: 4 })).toBe(4);
  });

  it('generates what the request generates', async () => {
    const model = await Glm4v.load(tiny);
    try {
      const request = withImage(join(tiny, 'sample.png'), 'Describe it.');
      const prepared = await model.processor.prepare(request);
      const a = await model.generateText(request, { maxNewTokens: 5, temperature: 0 });
      const b = await model.generateText(prepared, { maxNewTokens: 5, temperature: 0 });
      expect(b.tokens).toEqual(a.tokens);
      expect(b.stats.promptTokens).toBe(prepared.ids.length);
    } finally {
      model.dispose();
    }
  });
});
