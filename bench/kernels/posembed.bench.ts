import { type Device, Graph, Tensor } from '@glm4v/core';
import { normal } from '@glm4v/core/testing';
import { posEmbedBicubic } from '@glm4v/kernels';
import type { KernelCase } from './harness.js';

// The 24×24 position table (bf16, width 1536) resampled to a 1008×1008 image's 72×72 = 5184 patches. Bytes: the
// table once and the f32 output; 16 taps of 2 flops per output.
function posEmbedCase(gh: number, gw: number): KernelCase {
  const [G, C] = [24, 1536];
  const S = gh * gw;
  return {
    kernel: 'posembed_bicubic',
    shape: `${S}x${C}`,
    dtype: 'bf16w_f32a',
    bound: 'memory',
    bytes: S * C * 4 + G * G * C * 2 + S * 16,
    flops: S * C * 32,
    async build(device: Device) {
      const table = await Tensor.fromArray(device, 'bf16', [G * G, C], normal(G * G * C, 1, 0.02));
      const list = new Int32Array(4 * S);
      for (let k = 0; k < S; k++) list.set([Math.floor(k / gw), k % gw, gh, gw], 4 * k);
      const patches = await Tensor.fromArray(device, 'i32', [S, 4], list);
      const graph = new Graph(device, 'bench-posembed');
      posEmbedBicubic(graph, table, patches, { gridSize: G });
      return { graph, dispose: () => [graph, table, patches].forEach((o) => o.dispose()) };
    },
  };
}

export const cases: KernelCase[] = [posEmbedCase(72, 72)];
