import { type Device, Graph, Tensor } from '@glm4v/core';
import { normal } from '@glm4v/core/testing';
import { ROW_FIELDS, ropeText, ropeVision, rowsTable } from '@glm4v/kernels';
import type { KernelCase } from './harness.js';

// Text M-RoPE on q (32 heads × 128, rotary 64, sections [8, 12, 12]): decode (one row of a batch's rows table) and
// a 512-token prefill. Only the rotary half of each head is read and written.
function ropeTextCase(rows: number): KernelCase {
  const [heads, headDim, rotaryDim] = [32, 128, 64];
  const decode = rows === 1;
  return {
    kernel: decode ? 'rope_text_decode' : 'rope_text',
    shape: `${rows}x${heads * headDim}`,
    dtype: 'f32a',
    bound: 'memory',
    bytes: rows * heads * rotaryDim * 8 + rows * (decode ? 4 : 12),
    flops: rows * heads * (rotaryDim / 2) * 6,
    async build(device: Device) {
      const x = await Tensor.fromArray(device, 'f32', [rows, heads * headDim], normal(rows * heads * headDim, 1));
      const pos = decode
        ? await Tensor.fromArray(
            device,
            'i32',
            [1, ROW_FIELDS],
            rowsTable([{ slot: 0, pos: 40000, ropePos: 40000, step: 0 }]),
          )
        : await Tensor.fromArray(
            device,
            'i32',
            [3, rows],
            Int32Array.from({ length: 3 * rows }, (_, i) => (i * 7919) % 65536),
          );
      const graph = new Graph(device, 'bench-rope-text');
      const opts = { numHeads: heads, headDim, rotaryDim, sections: [8, 12, 12] as const, theta: 10000 };
      ropeText(graph, x, { ...opts, positions: decode ? { rows: pos } : pos });
      return { graph, dispose: () => [graph, x, pos].forEach((o) => o.dispose()) };
    },
  };
}

// Vision 2-D RoPE on q of a 1008×1008 image (72×72 = 5184 patches, 12 heads × 128).
function ropeVisionCase(rows: number): KernelCase {
  const [heads, headDim] = [12, 128];
  return {
    kernel: 'rope_vision',
    shape: `${rows}x${heads * headDim}`,
    dtype: 'f32a',
    bound: 'memory',
    bytes: rows * heads * headDim * 8 + rows * 8,
    flops: rows * heads * (headDim / 2) * 6,
    async build(device: Device) {
      const x = await Tensor.fromArray(device, 'f32', [rows, heads * headDim], normal(rows * heads * headDim, 2));
      const coords = await Tensor.fromArray(
        device,
        'i32',
        [rows, 2],
        Int32Array.from({ length: 2 * rows }, (_, i) => (i >> 1) % 72),
      );
      const graph = new Graph(device, 'bench-rope-vision');
      ropeVision(graph, x, coords, { numHeads: heads, headDim, theta: 10000 });
      return { graph, dispose: () => [graph, x, coords].forEach((o) => o.dispose()) };
    },
  };
}

export const cases: KernelCase[] = [ropeTextCase(1), ropeTextCase(512), ropeVisionCase(5184)];
