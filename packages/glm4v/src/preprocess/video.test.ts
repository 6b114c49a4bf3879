import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '@glm4v/core';
import { PREPROCESSOR_DEFAULTS } from '../config.js';
import { preprocessVideo, probeVideo, sampleFrameIndices } from './video.js';

const HAVE_FFMPEG = ['ffmpeg', 'ffprobe'].every((p) => spawnSync(p, ['-version']).status === 0);
if (!HAVE_FFMPEG)
  console.warn(
    'video.test.ts: ffmpeg/ffprobe not on PATH: the tests that decode a video are skipped (apt-get install ffmpeg)',
  );

const sum = (a: number[]) => a.reduce((s, v) => s + v, 0);

describe('sampleFrameIndices (Glm4vVideoProcessor.sample_frames)', () => {
  it('≤ 300 s: 2 per second at ceil(i·fps/2)', () => {
    expect(sampleFrameIndices({ fps: 10, totalFrames: 30, duration: 3 })).toEqual([0, 5, 10, 15, 20, 25]);
  });
  it('odd count repeats the last index', () => {
    expect(sampleFrameIndices({ fps: 10, totalFrames: 25, duration: 2.5 })).toEqual([0, 5, 10, 15, 20, 20]);
  });
  it('duplicates dropped when the source is slower than 2 fps, then made even', () => {
    expect(sampleFrameIndices({ fps: 2, totalFrames: 7, duration: 3.5 })).toEqual([0, 1, 2, 3, 4, 5, 6, 6]);
    expect(sampleFrameIndices({ fps: 1, totalFrames: 5, duration: 5 })).toEqual([0, 1, 2, 3, 4, 4]);
  });
  it('> 300 s: 600 targets over linspace(0, duration) (values from numpy)', () => {
    const a = sampleFrameIndices({ fps: 30, totalFrames: 12000, duration: 400 });
    expect([a.length, sum(a), a.slice(0, 5), a.slice(-3)]).toEqual([
      600,
      3600298,
      [0, 21, 41, 61, 81],
      [11960, 11980, 11999],
    ]);
    const fps = 30000 / 1001;
    const b = sampleFrameIndices({ fps, totalFrames: 29970, duration: 29970 / fps });
    expect([b.length, sum(b), b.slice(0, 5), b.slice(-3)]).toEqual([
      600,
      8991298,
      [0, 51, 101, 151, 201],
      [29870, 29920, 29969],
    ]);
    const c = sampleFrameIndices({ fps: 24, totalFrames: 301 * 24, duration: 301 });
    expect([c.length, sum(c), c.slice(0, 4), c.slice(-3)]).toEqual([600, 2167498, [0, 13, 25, 37], [7200, 7212, 7223]]);
  });
  it('> 300 s with fewer than 600 frames takes them all', () => {
    expect(sampleFrameIndices({ fps: 1, totalFrames: 400, duration: 400 })).toEqual(
      Array.from({ length: 400 }, (_, i) => i),
    );
  });
  it('unknown duration: round((total−1)/fps) + 1; unknown fps: 2', () => {
    expect(sampleFrameIndices({ fps: 4, totalFrames: 9 })).toEqual([0, 2, 4, 6, 8, 8]); // duration 3 → 6 targets
    expect(sampleFrameIndices({ totalFrames: 4 })).toEqual([0, 1, 2, 3]); // fps 2, duration round(1.5)+1 = 3
  });
  it('another rate (fps) and a frame cap (maxFrames); the cap defaults to 300 s at the rate, as the processor', () => {
    expect(sampleFrameIndices({ fps: 10, totalFrames: 100, duration: 10 }, { fps: 1 })).toEqual([
      0, 10, 20, 30, 40, 50, 60, 70, 80, 90,
    ]);
    expect(sampleFrameIndices({ fps: 10, totalFrames: 100, duration: 10 }, { maxFrames: 4 })).toEqual([0, 34, 67, 99]);
    expect(sampleFrameIndices({ fps: 10, totalFrames: 100, duration: 10 }, { maxFrames: 20 })).toHaveLength(20); // 2 fps fits
    expect(sampleFrameIndices({ fps: 30, totalFrames: 9300, duration: 310 }, { fps: 4 })).toHaveLength(1200);
  });
  it('too short or empty videos are InputErrors', () => {
    expect(() => sampleFrameIndices({ fps: 30, totalFrames: 10, duration: 0.3 })).toThrow(/too short to sample/);
    expect(() => sampleFrameIndices({ fps: 30, totalFrames: 0 })).toThrow(InputError);
  });
});

describe('preprocessVideo without ffmpeg', () => {
  it('names the missing program and how to install it', async () => {
    const file = new URL('../../test-fixtures/preprocess/decode/rgb.png', import.meta.url).pathname;
    const opts = { ffmpeg: '/nonexistent/ffmpeg', ffprobe: '/nonexistent/ffprobe' };
    await expect(preprocessVideo(file, PREPROCESSOR_DEFAULTS.video, opts)).rejects.toThrow(InputError);
    await expect(preprocessVideo(file, PREPROCESSOR_DEFAULTS.video, opts)).rejects.toThrow(
      /needs the '\/nonexistent\/ffprobe' program.*apt-get install ffmpeg/,
    );
  });
  it('a missing file is named', async () => {
    await expect(preprocessVideo('/nonexistent/clip.mp4', PREPROCESSOR_DEFAULTS.video)).rejects.toThrow(
      "video file '/nonexistent/clip.mp4': no such file",
    );
  });
});

/** A lossless clip (PNG codec in Matroska) whose frame k is filled with red = 8k, green = 100, blue = 200. */
function makeClip(dir: string, name: string, w: number, h: number, fps: number, frames: number): string {
  const raw = Buffer.alloc(w * h * 3 * frames);
  for (let k = 0; k < frames; k++) {
    for (let p = 0; p < w * h; p++) raw.set([(8 * k) % 256, 100, 200], (k * w * h + p) * 3);
  }
  const out = join(dir, name);
  const r = spawnSync(
    'ffmpeg',
    [
      '-v',
      'error',
      '-y',
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      '-s',
      `${w}x${h}`,
      '-r',
      String(fps),
      '-i',
      'pipe:0',
      '-c:v',
      'png',
      out,
    ],
    { input: raw },
  );
  if (r.status !== 0) throw new Error(`ffmpeg could not make the test clip: ${r.stderr}`);
  return out;
}

/** The red value the normaliser gives a byte u. */
const redOf = (u: number) =>
  Math.fround(Math.fround(Math.fround(u / 255) - Math.fround(0.48145466)) / Math.fround(0.26862954));

describe.skipIf(!HAVE_FFMPEG)('preprocessVideo with ffmpeg', () => {
  const dir = mkdtempSync(join(tmpdir(), 'glm4v-video-'));

  it('probes frame rate, count and size', async () => {
    const clip = makeClip(dir, 'probe.mkv', 40, 30, 10, 30);
    expect(await probeVideo(clip)).toEqual({ fps: 10, totalFrames: 30, duration: 3, width: 40, height: 30 });
  });

  it('3 s at 10 fps: frames 0,5,…,25 in temporal pairs, grid [3, 4, 4], timestamps 0 1 2', async () => {
    const clip = makeClip(dir, 'a.mkv', 56, 42, 10, 30);
    const cfg = { ...PREPROCESSOR_DEFAULTS.video, minPixels: 1568 };
    const v = await preprocessVideo(clip, cfg);
    // smart_resize(6, 42, 56): 42/28 = 1.5 → 2 (half to even) → 56; 56 → 56
    expect(v.grids).toEqual([[3, 4, 4]]);
    expect(v.timestamps).toEqual([0, 1, 2]);
    expect(v.pixelValues.length).toBe(48 * 1176);
    const frames = [0, 5, 10, 15, 20, 25];
    for (let g = 0; g < 3; g++) {
      for (let r = 0; r < 16; r++) {
        const row = (g * 16 + r) * 1176;
        expect(v.pixelValues[row]).toBe(redOf(8 * frames[2 * g])); // ch 0, t 0
        expect(v.pixelValues[row + 196]).toBe(redOf(8 * frames[2 * g + 1])); // ch 0, t 1
      }
    }
  });

  it('an odd sample count repeats the last frame; 1 fps source', async () => {
    const clip = makeClip(dir, 'b.mkv', 28, 28, 1, 5);
    const v = await preprocessVideo(clip, { ...PREPROCESSOR_DEFAULTS.video, minPixels: 784 });
    expect(v.grids).toEqual([[3, 2, 2]]);
    expect(v.timestamps).toEqual([0, 2, 4]); // frames 0 1 | 2 3 | 4 4
    const last = 2 * 4 * 1176;
    expect(v.pixelValues[last]).toBe(redOf(32));
    expect(v.pixelValues[last + 196]).toBe(redOf(32));
  });

  it('a file that is not a video is an InputError naming it', async () => {
    const bad = join(dir, 'bad.mp4');
    writeFileSync(bad, 'definitely not a video');
    await expect(preprocessVideo(bad, PREPROCESSOR_DEFAULTS.video)).rejects.toThrow(new RegExp(`video file '${bad}'`));
  });
});
