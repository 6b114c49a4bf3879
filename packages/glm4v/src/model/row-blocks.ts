// Row-wise layers over many rows (the ViT MLP over every patch of a large image, the merger) run in blocks of
// rows, so that their widest intermediate fits one storage binding (128 MiB on lavapipe: [S, 4096] f32 at
// S = 10764 patches, a 1920×1080 image, is 168 MiB). Blocks start on multiples of 64 rows, which keeps every
// view of an f32 row-major tensor on the 256-byte binding alignment.

import type { Tensor } from '@glm4v/core';

const ALIGN_ROWS = 64;

/** [start, end) row ranges covering `rows`, each at most `maxBindingBytes / (4 · widestCols)` rows (at least 64). */
export function rowBlocks(maxBindingBytes: number, rows: number, widestCols: number): [number, number][] {
  const fit = Math.floor(maxBindingBytes / (4 * widestCols));
  const block = Math.max(ALIGN_ROWS, Math.floor(fit / ALIGN_ROWS) * ALIGN_ROWS);
  const out: [number, number][] = [];
  for (let r = 0; r < rows; r += block) out.push([r, Math.min(rows, r + block)]);
  return out;
}

/** Rows [r0, r1) of a row-major tensor (the tensor itself when that is all of it). */
export function rowsView(t: Tensor, r0: number, r1: number): Tensor {
  const cols = t.shape[t.shape.length - 1];
  return r0 === 0 && r1 === t.shape[0] ? t : t.view([r1 - r0, cols], r0 * cols, `${t.label}[${r0}:${r1}]`);
}
