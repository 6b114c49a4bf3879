import { type Device, Graph, Tensor } from '@glm4v/core';
import { fillRandom, permuteDownsampleWeight } from '@glm4v/kernels';
import type { KernelCase } from './harness.js';

// The load-time layout change of the real downsample weight [4096, 1536, 2, 2] bf16 (read and written once).
function permuteCase(o: number, c: number): KernelCase {
  return {
    kernel: 'permute_downsample',
    shape: `${o}x${c}x2x2`,
    dtype: 'bf16w',
    bound: 'memory',
    bytes: o * c * 4 * 2 * 2,
    flops: 0,
    async build(device: Device) {
      const w = await Tensor.empty(device, 'bf16', [o, c, 2, 2], 'downsample.weight');
      const fill = new Graph(device, 'bench-permute-fill');
      fillRandom(fill, w, 1, 0.02);
      await fill.run();
      fill.dispose();
      const graph = new Graph(device, 'bench-permute-downsample');
      permuteDownsampleWeight(graph, w);
      return { graph, dispose: () => [graph, w].forEach((o) => o.dispose()) };
    },
  };
}

export const cases: KernelCase[] = [permuteCase(4096, 1536)];
