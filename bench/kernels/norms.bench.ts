import { type Device, Graph, Tensor } from '@glm4v/core';
import { normal } from '@glm4v/core/testing';
import { rmsNorm, rmsNormResidual } from '@glm4v/kernels';
import type { KernelCase } from './harness.js';

function rmsNormCase(rows: number, cols: number): KernelCase {
  return {
    kernel: 'rmsnorm',
    shape: `${rows}x${cols}`,
    dtype: 'bf16w_f32a',
    bound: 'memory',
    bytes: rows * cols * 8 + cols * 2,
    flops: rows * cols * 4,
    async build(device: Device) {
      const x = await Tensor.fromArray(device, 'f32', [rows, cols], normal(rows * cols, 1));
      const w = await Tensor.fromArray(device, 'bf16', [cols], normal(cols, 2));
      const graph = new Graph(device, 'bench-rmsnorm');
      rmsNorm(graph, x, w, 1e-5);
      return { graph, dispose: () => [graph, x, w].forEach((o) => o.dispose()) };
    },
  };
}

/** The decoder's fused residual add + next norm: reads y and x, writes x and out (each f32 once; the re-reads of a
 *  row stay in cache), two bf16 weights. */
function rmsNormResidualCase(rows: number, cols: number): KernelCase {
  return {
    kernel: 'rmsnorm_residual',
    shape: `${rows}x${cols}`,
    dtype: 'bf16w_f32a',
    bound: 'memory',
    bytes: rows * cols * 16 + cols * 4,
    flops: rows * cols * 8,
    async build(device: Device) {
      const x = await Tensor.fromArray(device, 'f32', [rows, cols], normal(rows * cols, 1));
      const y = await Tensor.fromArray(device, 'f32', [rows, cols], normal(rows * cols, 2));
      const w = await Tensor.fromArray(device, 'bf16', [cols], normal(cols, 3));
      const graph = new Graph(device, 'bench-rmsnorm-residual');
      rmsNormResidual(graph, x, y, w, w, 1e-5);
      return { graph, dispose: () => [graph, x, y, w].forEach((o) => o.dispose()) };
    },
  };
}

export const cases: KernelCase[] = [
  rmsNormCase(1, 4096),
  rmsNormCase(512, 4096),
  rmsNormCase(5184, 1536),
  rmsNormResidualCase(1, 4096),
  rmsNormResidualCase(512, 4096),
];
