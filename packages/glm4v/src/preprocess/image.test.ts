import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '@glm4v/core';
import { readSafetensors, toNumbers } from '../../test-fixtures/read-safetensors.js';
import { parsePreprocessorConfig } from '../config.js';
import { preprocessImages, preprocessRgb } from './image.js';
import { smartResize } from './smart-resize.js';
import type { PreprocessorConfig } from './types.js';

const ROOT = new URL('../../../../', import.meta.url).pathname;
const FIX = `${ROOT}packages/glm4v/test-fixtures/preprocess/`;

/** The real checkpoint's image preprocessor values (docs/model.md#preprocessor-config). */
export const REAL_CFG: PreprocessorConfig = {
  minPixels: 12544,
  maxPixels: 9633792,
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
  imageMean: [0.48145466, 0.4578275, 0.40821073],
  imageStd: [0.26862954, 0.26130258, 0.27577711],
  rescaleFactor: 1 / 255,
  doResize: true,
  doRescale: true,
  doNormalize: true,
  doConvertRgb: true,
};

function conformanceCfg(): PreprocessorConfig {
  const file = `${ROOT}conformance/fixtures/tiny-glm4v-f32/preprocessor_config.json`;
  return parsePreprocessorConfig(JSON.parse(readFileSync(file, 'utf8')), file, 'image');
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const opts = { factor: 28, minPixels: 12544, maxPixels: 9633792, temporalFactor: 2 };

describe('smartResize (docs/model.md#smart-resize worked examples, W×H in, H×W out)', () => {
  const cases: [number, number, number, number][] = [
    // [H, W] -> [h, w]
    [1024, 1024, 1036, 1036],
    [1080, 1920, 1092, 1932],
    [224, 224, 224, 224],
    [100, 100, 112, 112],
    [42, 42, 84, 84],
    [2160, 3840, 1624, 2912],
    [20, 500, 28, 700],
    [350, 350, 336, 336], // 12.5 -> 12 (half to even); Math.round would give 364
    [378, 630, 392, 616], // 13.5 -> 14, 22.5 -> 22
  ];
  for (const [H, W, h, w] of cases) {
    it(`${W}x${H} -> ${w}x${h}`, () => {
      expect(smartResize(2, H, W, opts)).toEqual({ h, w });
      expect(smartResize(2, W, H, opts)).toEqual({ h: w, w: h }); // symmetric
    });
  }
  it('token bounds: at most 6144 tokens per image, at least 8 (2·h·w within the pixel budget)', () => {
    for (const [H, W] of [
      [5000, 5000],
      [9000, 100],
      [30, 30],
      [28, 5599],
    ]) {
      const { h, w } = smartResize(2, H, W, opts);
      expect(2 * h * w).toBeLessThanOrEqual(opts.maxPixels);
      expect((h / 28) * (w / 28)).toBeGreaterThanOrEqual(8);
    }
  });
  it('video limits: frame count enters the budget', () => {
    const v = { ...opts, maxPixels: 47040000 };
    const { h, w } = smartResize(600, 1080, 1920, v);
    expect(600 * h * w).toBeLessThanOrEqual(47040000);
    expect(smartResize(4, 1080, 1920, v)).toEqual({ h: 1092, w: 1932 });
  });
  it('aspect ratio over 200 is refused; 200 exactly is allowed', () => {
    expect(() => smartResize(2, 10, 2010, opts)).toThrow(InputError);
    expect(() => smartResize(2, 10, 2010, opts)).toThrow(/aspect ratio 201\.0: expected at most 200/);
    expect(smartResize(2, 28, 5600, opts)).toEqual({ h: 28, w: 5600 });
  });
  it('too few frames, non-integer sizes', () => {
    expect(() => smartResize(1, 100, 100, opts)).toThrow(/t=1 must be at least temporalFactor=2/);
    expect(() => smartResize(2, 0, 100, opts)).toThrow(/h must be a positive integer/);
    expect(() => smartResize(2, 10.5, 100, opts)).toThrow(InputError);
  });
});

describe('preprocessRgb reproduces the conformance fixtures', () => {
  for (const name of ['case-b_image', 'case-d_bf16_image']) {
    it(`${name}: pixel_values within 1e-6, grid equal`, async () => {
      const f = readSafetensors(`${ROOT}conformance/fixtures/${name}.safetensors`);
      const rgb = f.get('image_0_rgb')!;
      const [H, W] = rgb.shape;
      const got = await preprocessRgb(rgb.data as Uint8Array, H, W, conformanceCfg());
      expect(got.grids).toEqual([toNumbers(f.get('image_grid_thw')!)]);
      expect(got.pixelValues.length).toBe(f.get('pixel_values')!.shape[0] * 1176);
      expect(maxAbsDiff(got.pixelValues, f.get('pixel_values')!.data as Float32Array)).toBeLessThanOrEqual(1e-6);
    });
  }
});

describe('preprocessImages end to end', () => {
  it('a PNG that needs resizing: equal to the numpy/PIL pipeline (pipeline.safetensors)', async () => {
    const ref = readSafetensors(`${FIX}pipeline.safetensors`);
    const cfg = { ...REAL_CFG, minPixels: 1568 };
    const got = await preprocessImages([{ path: `${FIX}pipeline-45x61.png` }], cfg);
    expect(got.grids).toEqual([Array.from(ref.get('image_grid_thw')!.data as Int32Array)]);
    // Both sides compute the same float32 expressions: the result is identical, not just close.
    expect(maxAbsDiff(got.pixelValues, ref.get('pixel_values')!.data as Float32Array)).toBe(0);
  });

  it('several images are concatenated in order, each with its own grid', async () => {
    const cfg = { ...REAL_CFG, minPixels: 1568 };
    const a = await preprocessImages([{ path: `${FIX}pipeline-45x61.png` }], cfg);
    const b = await preprocessImages([{ path: `${FIX}decode/rgb.png` }], cfg);
    const ab = await preprocessImages(
      [{ path: `${FIX}pipeline-45x61.png` }, { data: readFileSync(`${FIX}decode/rgb.png`) }],
      cfg,
    );
    expect(ab.grids).toEqual([...a.grids, ...b.grids]);
    expect(ab.pixelValues.length).toBe(a.pixelValues.length + b.pixelValues.length);
    expect(ab.pixelValues.subarray(0, a.pixelValues.length)).toEqual(a.pixelValues);
    expect(ab.pixelValues.subarray(a.pixelValues.length)).toEqual(b.pixelValues);
  });

  it('temporal duplication: both halves of every patch vector are equal', async () => {
    const got = await preprocessImages([{ path: `${FIX}decode/rgb.png` }], REAL_CFG);
    for (let r = 0; r < got.pixelValues.length / 1176; r++) {
      for (let ch = 0; ch < 3; ch++) {
        const a = got.pixelValues.subarray(r * 1176 + ch * 392, r * 1176 + ch * 392 + 196);
        const b = got.pixelValues.subarray(r * 1176 + ch * 392 + 196, r * 1176 + ch * 392 + 392);
        expect(a).toEqual(b);
      }
    }
  });

  it('a 3840x2160 JPEG takes the max-pixel branch: grid 1x116x208 (6032 tokens)', async () => {
    const jpeg = await sharp({
      create: { width: 3840, height: 2160, channels: 3, background: { r: 200, g: 100, b: 50 } },
    })
      .jpeg()
      .toBuffer();
    const got = await preprocessImages([{ data: jpeg }], REAL_CFG);
    expect(got.grids).toEqual([[1, 116, 208]]);
    expect((116 * 208) / 4).toBe(6032);
    expect(got.pixelValues.length).toBe(116 * 208 * 1176);
  });

  it('errors name the image: missing file, corrupt file, aspect ratio', async () => {
    await expect(preprocessImages([{ path: '/nonexistent/cat.png' }], REAL_CFG)).rejects.toThrow(
      "image file '/nonexistent/cat.png': no such file",
    );
    const thin = await sharp({ create: { width: 2010, height: 10, channels: 3, background: '#000' } })
      .png()
      .toBuffer();
    await expect(preprocessImages([{ path: `${FIX}decode/rgb.png` }, { data: thin }], REAL_CFG)).rejects.toThrow(
      /image #1 .*aspect ratio 201\.0/,
    );
  });

  it('doResize off needs sizes that are multiples of 28', async () => {
    const cfg = { ...REAL_CFG, doResize: false };
    await expect(preprocessRgb(new Uint8Array(30 * 28 * 3), 30, 28, cfg)).rejects.toThrow(/multiples of 28/);
    const ok = await preprocessRgb(new Uint8Array(56 * 28 * 3), 56, 28, cfg);
    expect(ok.grids).toEqual([[1, 4, 2]]);
  });

  it('bad config and bad raw input are typed errors', async () => {
    await expect(preprocessRgb(new Uint8Array(12), 2, 2, { ...REAL_CFG, patchSize: 0 })).rejects.toThrow(ConfigError);
    await expect(preprocessRgb(new Uint8Array(12), 2, 2, { ...REAL_CFG, imageStd: [1, 0, 1] })).rejects.toThrow(
      /imageStd has a zero/,
    );
    await expect(preprocessRgb(new Uint8Array(11), 2, 2, REAL_CFG)).rejects.toThrow(/expected 2x2x3 = 12 bytes/);
  });

  it('doRescale/doNormalize off give the raw byte values', async () => {
    const rgb = new Uint8Array(28 * 28 * 3).map((_, i) => i % 251);
    const got = await preprocessRgb(rgb, 28, 28, {
      ...REAL_CFG,
      minPixels: 1568,
      doRescale: false,
      doNormalize: false,
    });
    // row 0 = patch (0,0): channel 0, t 0, y 0, x 0..13 = bytes 0, 3, 6, …
    expect(Array.from(got.pixelValues.subarray(0, 4))).toEqual([0, 3, 6, 9]);
  });
});
