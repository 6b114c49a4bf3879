// The rows of a batched decode step: i32 [M, ROW_FIELDS], one row per sequence, written by the host before each
// step (a few bytes per row instead of per-kernel uniforms). Sequences keep their KV cache, sampler state and last
// token in a slot of a pool; kernels whose work differs per sequence read a row's fields:
//   slot    the pool slot: the KV-cache rows, sampler options and presence bits, the token to embed and to write
//   pos     the cache position the row's new token takes (its keys are cache positions [0, pos])
//   ropePos the token's rotary position (pos + the sequence's rope offset), the same on the t, h and w streams
//   step    the sampler's draw counter for this token (a u32, stored as its bits)
// The layout is declared once here; the WGSL constants are generated from it (ROWS_WGSL).

import { InputError, type Tensor } from '@glm4v/core';
import { assertDType, assertShape } from './prelude.js';

export const ROW = { slot: 0, pos: 1, ropePos: 2, step: 3 } as const;
export const ROW_FIELDS = 4;

export interface RowValues {
  slot: number;
  pos: number;
  ropePos: number;
  step: number;
}

/** `const ROW_FIELDS = 4u; const ROW_SLOT = 0u; ...`, prepended to the kernels that read rows. */
export const ROWS_WGSL =
  `const ROW_FIELDS = ${ROW_FIELDS}u;\n` +
  Object.entries(ROW)
    .map(([name, at]) => `const ROW_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()} = ${at}u;\n`)
    .join('');

/** The table of `rows` as the kernels read it. */
export function rowsTable(rows: readonly RowValues[]): Int32Array {
  const t = new Int32Array(rows.length * ROW_FIELDS);
  rows.forEach((r, i) => {
    for (const [name, at] of Object.entries(ROW)) {
      const v = r[name as keyof RowValues];
      const max = name === 'step' ? 2 ** 32 : 2 ** 31;
      if (!Number.isInteger(v) || v < 0 || v >= max)
        throw new InputError(
          `rowsTable: row ${i} ${name} is ${v}; expected an integer in [0, ${name === 'step' ? '2^32' : '2^31'})`,
        );
      t[i * ROW_FIELDS + at] = v | 0;
    }
  });
  return t;
}

/** Checks that `rows` is i32 [m, ROW_FIELDS]. */
export function checkRows(fn: string, rows: Tensor, m: number): void {
  assertDType(`${fn}: rows '${rows.label}'`, rows.dtype, ['i32']);
  assertShape(`${fn}: rows '${rows.label}'`, rows.shape, [m, ROW_FIELDS]);
}
