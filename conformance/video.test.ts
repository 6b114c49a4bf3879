// The video case end to end, the way a user runs it: the committed clip (lossless, so every decoder gives the same
// bytes) through ffmpeg, frame sampling, patchify, the chat template, placeholder expansion with timestamps, the
// tokenizer, the vision tower per frame, prefill and decode, through the public Glm4v API, with an f32 and an f16
// KV cache. The fixture checkpoint has no tokenizer: the tiny one the fixture's token ids were made with is added.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device } from '@glm4v/core';
import { compare, TOLERANCE } from '@glm4v/core/testing';
import type { KvDType } from '@glm4v/kernels';
import { Glm4v, PREPROCESSOR_DEFAULTS, preprocessVideo } from '@glm4v/runtime/internal';
import { writeTinyTokenizer } from '@glm4v/runtime/testing';
import { readTensors } from './taps.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const CLIP = join(FIXTURES, 'clip-56x84-4fps.mkv');
/** The prompt of case-e_video (its README entry): the clip, then this question. */
const QUESTION = 'Describe this video.';
const HAVE_FFMPEG = ['ffmpeg', 'ffprobe'].every((p) => spawnSync(p, ['-version']).status === 0);
if (!HAVE_FFMPEG)
  console.warn(
    'video.test.ts: ffmpeg/ffprobe not on PATH: the video case end to end is skipped (apt-get install ffmpeg)',
  );

describe.skipIf(!HAVE_FFMPEG)('case e_video end to end (clip → Glm4v.generate)', () => {
  let expected: Map<string, Float64Array>;
  let dir: string;
  let device: Device;

  beforeAll(async () => {
    expected = await readTensors(join(FIXTURES, 'case-e_video.safetensors'));
    dir = mkdtempSync(join(tmpdir(), 'glm4v-video-case-'));
    for (const f of ['config.json', 'generation_config.json', 'preprocessor_config.json', 'model.safetensors']) {
      copyFileSync(join(FIXTURES, 'tiny-glm4v-f32', f), join(dir, f));
    }
    await writeTinyTokenizer(dir, 512);
    device = await Device.create();
  });
  afterAll(() => {
    device?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('preprocessing the clip gives the fixture pixel values, grid and timestamps', async () => {
    const v = await preprocessVideo(CLIP, PREPROCESSOR_DEFAULTS.video); // the checkpoint has no video_preprocessor_config.json
    expect(v.grids).toEqual([Array.from(expected.get('video_grid_thw')!)]);
    expect(v.timestamps).toEqual([0, 1]);
    const r = compare(v.pixelValues, expected.get('pixel_values_videos')!, TOLERANCE.f32, 'pixel_values_videos');
    expect(r.ok, r.message).toBe(true);
  });

  it.for(['f32', 'f16'] as KvDType[])(
    'greedy tokens through Glm4v.generate with a %s KV cache are the fixture',
    async (kv, ctx) => {
      if (kv === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
      const model = await Glm4v.load(dir, { device, kvCacheDType: kv });
      try {
        const content = [
          { type: 'video' as const, video: CLIP },
          { type: 'text' as const, text: QUESTION },
        ];
        const request = { messages: [{ role: 'user' as const, content }] };
        const out = await model.generateText(request, { maxNewTokens: 8, temperature: 0 });
        expect(out.stats.promptTokens).toBe(expected.get('input_ids')!.length);
        expect(out.tokens).toEqual(Array.from(expected.get('greedy_tokens')!));
      } finally {
        model.dispose();
      }
    },
  );
});
