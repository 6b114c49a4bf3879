// Still images → vision-tower input (docs/model.md#smart-resize, #image-pixels, #patchify): decode, smart_resize (the image counted as
// temporalPatchSize frames), Pillow-exact bicubic resize, rescale/normalise, temporal duplication, patchify.

import { InputError } from '@glm4v/core';
import { concatFloat32 } from '../arrays.js';
import { decodeImage } from '#platform';
import { describeImage } from './image-input.js';
import { checkPreprocessorConfig, patchify } from './patchify.js';
import { resizeBicubic } from './resample.js';
import { smartResize } from './smart-resize.js';
import type { ImageInput, PreparedImages, PreprocessorConfig, RgbImage } from './types.js';

/** Target size of an image of h×w pixels under `cfg` (the size its patches cover). */
export function imageTargetSize(h: number, w: number, cfg: PreprocessorConfig): { h: number; w: number } {
  const factor = cfg.patchSize * cfg.mergeSize;
  if (!cfg.doResize) {
    if (h % factor !== 0 || w % factor !== 0) {
      throw new InputError(`image of ${w}x${h} (WxH) with doResize off: both sides must be multiples of ${factor}`);
    }
    return { h, w };
  }
  return smartResize(cfg.temporalPatchSize, h, w, {
    factor,
    minPixels: cfg.minPixels,
    maxPixels: cfg.maxPixels,
    temporalFactor: cfg.temporalPatchSize,
  });
}

/** Resize one decoded frame to its target and patchify `copies` identical frames. */
function prepareOne(img: RgbImage, cfg: PreprocessorConfig): { pixels: Float32Array; grid: [number, number, number] } {
  const size = imageTargetSize(img.height, img.width, cfg);
  const resized = size.h === img.height && size.w === img.width ? img : resizeBicubic(img, size.h, size.w);
  const frames = new Array<RgbImage>(cfg.temporalPatchSize).fill(resized);
  return { pixels: patchify(frames, cfg), grid: [1, size.h / cfg.patchSize, size.w / cfg.patchSize] };
}

function concat(parts: { pixels: Float32Array; grid: [number, number, number] }[]): PreparedImages {
  return { pixelValues: concatFloat32(parts.map((p) => p.pixels)), grids: parts.map((p) => p.grid) };
}

/** Raw 8-bit HWC RGB → patches (for callers that decoded the image themselves). */
export async function preprocessRgb(
  rgb: Uint8Array,
  height: number,
  width: number,
  cfg: PreprocessorConfig,
): Promise<PreparedImages> {
  checkPreprocessorConfig(cfg);
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new InputError(`preprocessRgb: height and width must be positive integers, got ${height}x${width}`);
  }
  if (!(rgb instanceof Uint8Array) || rgb.length !== height * width * 3) {
    throw new InputError(
      `preprocessRgb: expected ${height}x${width}x3 = ${height * width * 3} bytes of RGB, got ${rgb?.length}`,
    );
  }
  return concat([prepareOne({ data: rgb, height, width }, cfg)]);
}

/** Images (paths or encoded bytes), in order → concatenated patches and one grid per image. */
export async function preprocessImages(
  images: readonly ImageInput[],
  cfg: PreprocessorConfig,
): Promise<PreparedImages> {
  checkPreprocessorConfig(cfg);
  const parts = [];
  for (let i = 0; i < images.length; i++) {
    const img = await decodeImage(images[i], i);
    try {
      parts.push(prepareOne(img, cfg));
    } catch (e) {
      if (e instanceof InputError) throw new InputError(`${describeImage(images[i], i)}: ${e.message}`, { cause: e });
      throw e;
    }
  }
  return concat(parts);
}
