import { type Device, Graph, Tensor } from '@glm4v/core';
import { normal } from '@glm4v/core/testing';
import { rmsNorm } from '@glm4v/kernels';
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

export const cases: KernelCase[] = [rmsNormCase(1, 4096), rmsNormCase(512, 4096), rmsNormCase(5184, 1536)];
