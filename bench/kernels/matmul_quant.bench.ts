import { type Device, Graph, Tensor } from '@glm4v/core';
import {
  QUANT_FORMATS,
  QUANT_LINEAR_PRESETS,
  type QuantFormat,
  type QuantPresetName,
  QuantizedMatrix,
  blocksPerRow,
  fillRandom,
  linear,
  linearQuant,
  matvecPlan,
  rowBytes,
  wordsPerBlock,
} from '@glm4v/kernels';
import type { KernelCase } from './harness.js';
import {
  DECODE_SHAPES,
  type MatvecFigures,
  REFERENCE_SUBGROUP,
  SHAPES,
  benchColumns,
  matvecRows,
} from './matmul.bench.js';

// The decoder's linear layers (matmul.bench.ts's shapes) with q8 and q4 weights: decode is matvec (M = 1), prefill
// matmul (M = 512). A case's bytes are the codes, scales, x and y: what a memory-bound kernel must move.

interface Options {
  /** Force a variant instead of the one linear() picks on this device. */
  preset?: QuantPresetName;
  flops?: number;
}

async function build(device: Device, format: QuantFormat, M: number, K: number, N: number, opts: Options) {
  const w = await QuantizedMatrix.empty(device, QUANT_FORMATS[format], [N, K], `${format}_w`);
  const x = await Tensor.empty(device, 'f32', [M, K], 'x');
  const fill = new Graph(device, `bench-${format}-fill`);
  fillRandom(fill, w, 1, 0.02);
  fillRandom(fill, x, 2, 1);
  await fill.run();
  fill.dispose();
  const graph = new Graph(device, `bench-${format}`);
  if (opts.preset) linearQuant(graph, x, w, {}, M <= 8 ? 'matvec' : 'matmul', { preset: opts.preset });
  else linear(graph, x, w);
  return { graph, dispose: () => [graph, x, w].forEach((o) => o.dispose()) };
}

function weightBytes(format: QuantFormat, K: number, N: number): number {
  const b = rowBytes(QUANT_FORMATS[format], K);
  return N * (b.data + b.scales);
}

function matvecCase(format: QuantFormat, K: number, N: number, opts: Options = {}): KernelCase {
  return {
    kernel: opts.preset ? `matvec:${opts.preset}` : 'matvec',
    shape: `${K}→${N}`,
    dtype: `${format}w_f32a`,
    bound: 'memory',
    bytes: weightBytes(format, K, N) + 4 * K + 4 * N,
    flops: 2 * N * K,
    build: (device) => build(device, format, 1, K, N, opts),
  };
}

function matmulCase(
  slice: boolean,
  format: QuantFormat,
  M: number,
  K: number,
  N: number,
  opts: Options = {},
): KernelCase {
  const cols = benchColumns(slice, M, K, N, opts.flops);
  return {
    kernel: opts.preset ? `matmul:${opts.preset}` : 'matmul',
    shape: `M=${M} ${K}→${N}${cols < N ? ` (${cols} of ${N} cols, CPU adapter)` : ''}`,
    dtype: `${format}w_f32a`,
    bound: 'compute',
    bytes: weightBytes(format, K, cols) + 4 * M * K + 4 * M * cols,
    flops: 2 * M * cols * K,
    build: (device) => build(device, format, M, K, cols, opts),
  };
}

/** The cases; `slice` (CPU adapters) cuts matmuls to MATMUL_FLOP_BUDGET (matmul.bench.ts). */
export const cases = (slice: boolean): KernelCase[] =>
  (['q8', 'q4'] as const).flatMap((f) => [
    ...DECODE_SHAPES.map(([K, N]) => matvecCase(f, K, N)),
    ...SHAPES.map(([K, N]) => matmulCase(slice, f, 512, K, N)),
    // The GPU variants, for comparison where they are not the default (the matmul small: slow on a CPU adapter).
    ...DECODE_SHAPES.map(([K, N]) => matvecCase(f, K, N, { preset: 'sk32u2' })),
    matmulCase(slice, f, 512, 4096, 4096, { preset: '64x64x32', flops: 1e9 }),
  ]);

/** The quantised matvec variants at the decode shapes, as matvecFigures (matmul.bench.ts). */
export function quantMatvecFigures(): MatvecFigures[] {
  return (['q8', 'q4'] as const).flatMap((f) => {
    const l = QUANT_FORMATS[f];
    return DECODE_SHAPES.flatMap(([K, N]) =>
      matvecRows(f, [K, N], QUANT_LINEAR_PRESETS.bcast8x4, {
        name: 'sk32u2',
        plan: matvecPlan(QUANT_LINEAR_PRESETS.sk32u2, REFERENCE_SUBGROUP, N, blocksPerRow(l, K), 4 * wordsPerBlock(l)),
      }),
    );
  });
}
