// smart_resize: the target size of an image or video (docs/model.md#smart-resize; Glm4vImageProcessor's smart_resize).
// Python semantics are reproduced exactly: round() is round-half-to-even, int() truncates, and every
// floating-point expression is evaluated in the same order as the reference.

import { InputError } from '@glm4v/core';

export interface SmartResizeOptions {
  /** patch_size · merge_size (28). */
  factor: number;
  /** Lower bound on t·h·w. */
  minPixels: number;
  /** Upper bound on t·h·w. */
  maxPixels: number;
  /** temporal_patch_size (2). */
  temporalFactor: number;
}

/** Largest aspect ratio the reference accepts. */
export const MAX_ASPECT_RATIO = 200;

/** Python's round() of a float: nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for |x| < 2^52
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Target (h, w) for `t` frames of `h`×`w` pixels (a still image counts as t = 2). Both are multiples of
 * `factor`, t·h·w lies within [minPixels, maxPixels] where possible, and the aspect ratio is kept.
 */
export function smartResize(t: number, h: number, w: number, opts: SmartResizeOptions): { h: number; w: number } {
  const { factor, minPixels, maxPixels, temporalFactor } = opts;
  for (const [name, v] of [
    ['t', t],
    ['h', h],
    ['w', w],
    ['factor', factor],
    ['temporalFactor', temporalFactor],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new InputError(`smartResize: ${name} must be a positive integer, got ${v}`);
  }
  if (t < temporalFactor)
    throw new InputError(`smartResize: frame count t=${t} must be at least temporalFactor=${temporalFactor}`);
  let height = h;
  let width = w;
  if (height < factor || width < factor) {
    const scale = Math.max(factor / height, factor / width);
    height = Math.trunc(height * scale);
    width = Math.trunc(width * scale);
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (!(ratio <= MAX_ASPECT_RATIO)) {
    throw new InputError(
      `image of ${w}x${h} pixels (WxH) has aspect ratio ${ratio.toFixed(1)}: expected at most ${MAX_ASPECT_RATIO}`,
    );
  }
  let hBar = roundHalfEven(height / factor) * factor;
  let wBar = roundHalfEven(width / factor) * factor;
  const tBar = roundHalfEven(t / temporalFactor) * temporalFactor;
  if (tBar * hBar * wBar > maxPixels) {
    const beta = Math.sqrt((t * height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (tBar * hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (t * height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return { h: hBar, w: wBar };
}
