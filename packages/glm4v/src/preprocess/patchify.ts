// Rescale, normalise and patchify frames into the vision tower's input (docs/model.md#image-pixels, #patchify).
// Arithmetic as transformers' PIL-backend image processor: rescale = float64 product cast to float32,
// normalise = (x − mean) / std in float32 with float32 mean/std.

import { ConfigError, InputError } from '@glm4v/core';
import type { PreprocessorConfig, RgbImage } from './types.js';

const f32 = Math.fround;

/** Throws ConfigError naming the first field of `cfg` that cannot drive preprocessing. */
export function checkPreprocessorConfig(cfg: PreprocessorConfig, what = 'preprocessor config'): void {
  for (const k of ['patchSize', 'temporalPatchSize', 'mergeSize', 'minPixels', 'maxPixels'] as const) {
    const v = cfg[k];
    if (!Number.isInteger(v) || v < 1) throw new ConfigError(`${what}: ${k} must be a positive integer, got ${v}`);
  }
  if (cfg.minPixels > cfg.maxPixels)
    throw new ConfigError(`${what}: minPixels ${cfg.minPixels} exceeds maxPixels ${cfg.maxPixels}`);
  for (const k of ['imageMean', 'imageStd'] as const) {
    const v = cfg[k];
    if (!Array.isArray(v) || v.length !== 3 || v.some((x) => !Number.isFinite(x))) {
      throw new ConfigError(`${what}: ${k} must be 3 finite numbers, got ${JSON.stringify(v)}`);
    }
  }
  if (cfg.imageStd.some((x) => x === 0))
    throw new ConfigError(`${what}: imageStd has a zero: ${JSON.stringify(cfg.imageStd)}`);
  if (!Number.isFinite(cfg.rescaleFactor) || cfg.rescaleFactor <= 0) {
    throw new ConfigError(`${what}: rescaleFactor must be a positive number, got ${cfg.rescaleFactor}`);
  }
}

/** The float32 value of each byte value for each channel: 3 tables of 256. */
function valueTables(cfg: PreprocessorConfig): Float32Array[] {
  return [0, 1, 2].map((ch) => {
    const t = new Float32Array(256);
    const mean = f32(cfg.imageMean[ch]);
    const std = f32(cfg.imageStd[ch]);
    for (let u = 0; u < 256; u++) {
      let x = cfg.doRescale ? f32(u * cfg.rescaleFactor) : u;
      if (cfg.doNormalize) x = f32(f32(x - mean) / std);
      t[u] = x;
    }
    return t;
  });
}

/**
 * Patch vectors of `frames` (all the same size, count a multiple of temporalPatchSize): frames (tp·g … tp·g+tp−1)
 * form temporal patch g; rows are g-major, then merge-window order; each row is [C][tp][P][P].
 * Returns [T/tp · gh · gw, 3·tp·P·P].
 */
export function patchify(frames: readonly RgbImage[], cfg: PreprocessorConfig): Float32Array {
  const P = cfg.patchSize;
  const m = cfg.mergeSize;
  const tp = cfg.temporalPatchSize;
  if (frames.length === 0 || frames.length % tp !== 0) {
    throw new InputError(
      `patchify: frame count ${frames.length} must be a positive multiple of temporalPatchSize ${tp}`,
    );
  }
  const { height: h, width: w } = frames[0];
  if (h % (P * m) !== 0 || w % (P * m) !== 0) {
    throw new InputError(`patchify: frame size ${w}x${h} (WxH) must be a multiple of patchSize·mergeSize = ${P * m}`);
  }
  for (const f of frames) {
    if (f.height !== h || f.width !== w || f.data.length !== h * w * 3) {
      throw new InputError(`patchify: frames differ in size: ${f.width}x${f.height} vs ${w}x${h}`);
    }
  }
  const tables = valueTables(cfg);
  const gh = h / P;
  const gw = w / P;
  const dim = 3 * tp * P * P;
  const out = new Float32Array((frames.length / tp) * gh * gw * dim);
  let row = 0;
  for (let g = 0; g < frames.length / tp; g++) {
    for (let bh = 0; bh < gh / m; bh++) {
      for (let bw = 0; bw < gw / m; bw++) {
        for (let mh = 0; mh < m; mh++) {
          for (let mw = 0; mw < m; mw++, row++) {
            writePatch(out, row * dim, frames, g * tp, tp, (bh * m + mh) * P, (bw * m + mw) * P, w, P, tables);
          }
        }
      }
    }
  }
  return out;
}

/** One patch vector [C][tp][P][P] whose top-left pixel is (y0, x0) in frames f0 … f0+tp−1. */
function writePatch(
  out: Float32Array,
  base: number,
  frames: readonly RgbImage[],
  f0: number,
  tp: number,
  y0: number,
  x0: number,
  w: number,
  P: number,
  tables: Float32Array[],
): void {
  for (let ch = 0; ch < 3; ch++) {
    const table = tables[ch];
    for (let t = 0; t < tp; t++) {
      const src = frames[f0 + t].data;
      let o = base + (ch * tp + t) * P * P;
      for (let y = 0; y < P; y++) {
        let i = ((y0 + y) * w + x0) * 3 + ch;
        for (let x = 0; x < P; x++, i += 3) out[o++] = table[src[i]];
      }
    }
  }
}
