import { type Device, Graph, Tensor } from '@glm4v/core';
import { normal } from '@glm4v/core/testing';
import { addInPlace, gelu, siluMul } from '@glm4v/kernels';
import type { KernelCase } from './harness.js';

// The decoder MLP's silu(gate)·up on gate_up_proj's output [M, 2·13696].
function siluMulCase(rows: number): KernelCase {
  const inner = 13696;
  return {
    kernel: 'silu_mul',
    shape: `${rows}x${2 * inner}`,
    dtype: 'f32a',
    bound: 'memory',
    bytes: rows * inner * 12,
    flops: rows * inner * 5,
    async build(device: Device) {
      const gu = await Tensor.fromArray(device, 'f32', [rows, 2 * inner], normal(rows * 2 * inner, 1));
      const graph = new Graph(device, 'bench-silu-mul');
      siluMul(graph, gu);
      return { graph, dispose: () => [graph, gu].forEach((o) => o.dispose()) };
    },
  };
}

// The merger's exact-erf GELU on a 1024×1024 image's 1369 tokens × 4096.
function geluCase(rows: number, cols: number): KernelCase {
  return {
    kernel: 'gelu_erf',
    shape: `${rows}x${cols}`,
    dtype: 'f32a',
    bound: 'memory',
    bytes: rows * cols * 8,
    flops: rows * cols * 40,
    async build(device: Device) {
      const x = await Tensor.fromArray(device, 'f32', [rows, cols], normal(rows * cols, 2, 3));
      const graph = new Graph(device, 'bench-gelu');
      gelu(graph, x);
      return { graph, dispose: () => [graph, x].forEach((o) => o.dispose()) };
    },
  };
}

// The residual add of a 512-token prefill.
function addCase(rows: number, cols: number): KernelCase {
  return {
    kernel: 'add_inplace',
    shape: `${rows}x${cols}`,
    dtype: 'f32a',
    bound: 'memory',
    bytes: rows * cols * 12,
    flops: rows * cols,
    async build(device: Device) {
      const acc = await Tensor.fromArray(device, 'f32', [rows, cols], normal(rows * cols, 3));
      const b = await Tensor.fromArray(device, 'f32', [rows, cols], normal(rows * cols, 4));
      const graph = new Graph(device, 'bench-add');
      addInPlace(graph, acc, b);
      return { graph, dispose: () => [graph, acc, b].forEach((o) => o.dispose()) };
    },
  };
}

export const cases: KernelCase[] = [siluMulCase(1), siluMulCase(512), geluCase(1369, 4096), addCase(512, 4096)];
