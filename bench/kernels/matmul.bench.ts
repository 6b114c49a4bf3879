import { ChunkedTensor, type Device, Graph, Tensor } from '@glm4v/core';
import { fillRandom, linear, linearVariant, type LinearPresetName } from '@glm4v/kernels';
import type { KernelCase } from './harness.js';

// The decoder's linear layers with bf16 weights as in the checkpoint, K → N: q/k/v/o 4096 → 4096,
// gate_up_proj 4096 → 27392, down_proj 13696 → 4096, lm_head 4096 → 151552 (1.24 GB: ten row chunks on a
// 128 MiB binding limit). Decode is matvec (M = 1), prefill matmul (M = 512, 2048).
export const SHAPES: [number, number][] = [[4096, 4096], [4096, 27392], [13696, 4096], [4096, 151552]];

// A matmul run is cut to at most about this many flops by measuring a subset of the output columns (whole 256-column
// blocks; the shape label says so), so that a full bench stays within minutes on lavapipe (~20–25 GFLOP/s):
// M = 2048 × 4096 → 151552 alone is 2.5 TFLOP. Every column costs the same, so GFLOP/s is unchanged.
export const MATMUL_FLOP_BUDGET = 10e9;

/** Output columns of a matmul case: whole 256-column blocks within the flop budget (at least 256, at most N). */
export function benchColumns(M: number, K: number, N: number, budget = MATMUL_FLOP_BUDGET): number {
  return Math.min(N, Math.max(256, Math.floor(budget / (2 * M * K) / 256) * 256));
}

interface Options {
  act?: 'f32' | 'f16';
  /** Force a variant instead of the one linear() picks on this device. */
  preset?: LinearPresetName;
  /** Flops per matmul run (default MATMUL_FLOP_BUDGET). */
  flops?: number;
}

// f16 activations still multiply and accumulate in f32, so the dtype tag keeps those cases on the f32 FMA ceiling.
const dtypeTag = (act: 'f32' | 'f16') => (act === 'f16' ? 'bf16w_f16a_f32acc' : 'bf16w_f32a');

async function build(device: Device, M: number, K: number, N: number, opts: Options, label: string) {
  const act = opts.act ?? 'f32';
  const w = await ChunkedTensor.empty(device, 'bf16', [N, K], label);
  const fill = new Graph(device, `bench-${label}-fill`);
  fillRandom(fill, w, 1, 0.02);
  await fill.run();
  fill.dispose();
  const x = await Tensor.empty(device, act, [M, K], 'x');
  const fx = new Graph(device, `bench-${label}-fill-x`);
  fillRandom(fx, x, 2, 1);
  await fx.run();
  fx.dispose();
  const graph = new Graph(device, `bench-${label}`);
  const kind = M <= 8 ? 'matvec' : 'matmul';
  if (opts.preset) linearVariant(graph, x, w, {}, kind, { preset: opts.preset });
  else linear(graph, x, w);
  return { graph, dispose: () => [graph, x, w].forEach((o) => o.dispose()) };
}

function matvecCase(K: number, N: number, opts: Options = {}): KernelCase {
  const act = opts.act ?? 'f32';
  const a = act === 'f16' ? 2 : 4;
  return {
    kernel: opts.preset ? `matvec:${opts.preset}` : 'matvec',
    shape: `${K}→${N}`,
    dtype: dtypeTag(act),
    bound: 'memory',
    bytes: N * K * 2 + K * a + N * a,
    flops: 2 * N * K,
    build: (device) => build(device, 1, K, N, opts, 'matvec_w'),
  };
}

function matmulCase(M: number, K: number, N: number, opts: Options = {}): KernelCase {
  const act = opts.act ?? 'f32';
  const a = act === 'f16' ? 2 : 4;
  const cols = benchColumns(M, K, N, opts.flops);
  return {
    kernel: opts.preset ? `matmul:${opts.preset}` : 'matmul',
    shape: `M=${M} ${K}→${N}${cols < N ? ` (${cols} of ${N} cols)` : ''}`,
    dtype: dtypeTag(act),
    bound: 'compute',
    bytes: cols * K * 2 + M * K * a + M * cols * a,
    flops: 2 * M * cols * K,
    build: (device) => build(device, M, K, cols, opts, 'matmul_w'),
  };
}

export const cases: KernelCase[] = [
  ...SHAPES.map(([K, N]) => matvecCase(K, N)),
  matvecCase(4096, 4096, { act: 'f16' }),
  ...[512, 2048].flatMap((M) => SHAPES.map(([K, N]) => matmulCase(M, K, N))),
  matmulCase(512, 4096, 4096, { act: 'f16' }),
  matmulCase(2048, 4096, 4096, { act: 'f16' }),
  // The variants linear() picks on GPUs, for comparison where they are not the default (kept small: on lavapipe
  // the tiled kernel runs at a fifth of the broadcast kernel's speed).
  matvecCase(4096, 4096, { preset: 'sk32x2' }),
  matmulCase(512, 4096, 4096, { preset: '64x64x16', flops: 1e9 }),
];
