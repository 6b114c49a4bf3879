// Bicubic, antialiased resize of 8-bit RGB that reproduces Pillow's Image.resize(size, BICUBIC) bit for bit
// (Pillow's separable resampler, libImaging/Resample.c): Keys kernel with a = -0.5, support widened by the
// scale factor when downscaling, coefficients normalised in float64 then quantised to 22-bit fixed point,
// horizontal pass then vertical pass, each rounded and clamped to uint8. Same arithmetic, same order.

import { InputError } from '@glm4v/core';
import type { RgbImage } from './types.js';

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);
const BICUBIC_SUPPORT = 2;

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Filter taps of one axis: output i reads `count[i]` inputs from `first[i]` with weights `k[i*ksize ..]`. */
interface Coeffs {
  ksize: number;
  first: Int32Array;
  count: Int32Array;
  k: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for an axis of `inSize` → `outSize`. */
function precomputeCoeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const v = bicubic((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      // C's (int) cast truncates toward zero.
      k[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    first[xx] = xmin;
    count[xx] = xmax;
  }
  return { ksize, first, count, k };
}

/** clip8 of a fixed-point accumulator: arithmetic shift, then clamp to 0..255. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over rows [y0, y0 + rows) of `src` (width `inW`, 3 channels) into `rows`×`outW`. */
function resampleHorizontal(
  src: Uint8Array,
  inW: number,
  y0: number,
  rows: number,
  outW: number,
  c: Coeffs,
): Uint8Array {
  const out = new Uint8Array(rows * outW * 3);
  const { ksize, first, count, k } = c;
  for (let yy = 0; yy < rows; yy++) {
    const rowBase = (yy + y0) * inW * 3;
    const outBase = yy * outW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = first[xx];
      const n = count[xx];
      const kb = xx * ksize;
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      let p = rowBase + xmin * 3;
      for (let x = 0; x < n; x++, p += 3) {
        const kv = k[kb + x];
        s0 += src[p] * kv;
        s1 += src[p + 1] * kv;
        s2 += src[p + 2] * kv;
      }
      const o = outBase + xx * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return out;
}

/** Vertical pass: `src` has `width` columns; output row yy reads source rows first[yy] - y0 … */
function resampleVertical(src: Uint8Array, width: number, y0: number, outH: number, c: Coeffs): Uint8Array {
  const out = new Uint8Array(outH * width * 3);
  const { ksize, first, count, k } = c;
  const stride = width * 3;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = first[yy] - y0;
    const n = count[yy];
    const kb = yy * ksize;
    const outBase = yy * stride;
    for (let i = 0; i < stride; i++) {
      let s = HALF;
      let p = ymin * stride + i;
      for (let y = 0; y < n; y++, p += stride) s += src[p] * k[kb + y];
      out[outBase + i] = clip8(s);
    }
  }
  return out;
}

/**
 * Resize 8-bit RGB to `outH`×`outW` exactly as Pillow 9's `Image.resize((outW, outH), Image.BICUBIC)`.
 * A pass whose size does not change is skipped (as Pillow does); the same size returns a copy.
 */
export function resizeBicubic(img: RgbImage, outH: number, outW: number): RgbImage {
  const { data, height: inH, width: inW } = img;
  if (data.length !== inH * inW * 3) {
    throw new InputError(
      `resizeBicubic: pixel buffer of ${data.length} bytes does not match ${inW}x${inH}x3 = ${inH * inW * 3}`,
    );
  }
  for (const [name, v] of [
    ['height', outH],
    ['width', outW],
    ['source height', inH],
    ['source width', inW],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new InputError(`resizeBicubic: ${name} must be a positive integer, got ${v}`);
  }
  const needH = outW !== inW;
  const needV = outH !== inH;
  if (!needH && !needV) return { data: data.slice(), height: inH, width: inW };
  let cur = data;
  let rows = inH;
  let y0 = 0;
  const vert = needV ? precomputeCoeffs(inH, outH) : null;
  if (needH) {
    // Only the source rows that the vertical pass reads (Pillow's ybox_first / ybox_last).
    if (vert) {
      y0 = vert.first[0];
      rows = vert.first[outH - 1] + vert.count[outH - 1] - y0;
    }
    cur = resampleHorizontal(data, inW, y0, rows, outW, precomputeCoeffs(inW, outW));
  }
  if (vert) cur = resampleVertical(cur, outW, y0, outH, vert);
  return { data: cur, height: outH, width: outW };
}
