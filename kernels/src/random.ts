// Random weights made on the GPU (random.wgsl): uniform in [-scale, scale), reproducible from a seed, for
// measuring speed and memory at the real model's shapes without a checkpoint. u32 tensors get uniform random
// bits (the codes of a quantised matrix, where every bit pattern is valid).

import { ChunkedTensor, type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import RANDOM_WGSL from './random.wgsl.js';
import { grid1d } from './grid.js';
import { QuantizedMatrix } from './quant.js';

const PARAMS = new UniformLayout('words: u32, seed: u32, scale: f32, first: u32');
const WG = 256;
const KIND = { f32: 0, bf16: 1, f16: 2, u32: 3 } as const;

function fillTensor(g: Graph, t: Tensor, seed: number, scale: number, first: number): void {
  if (t.dtype === 'i32')
    throw new InputError(`fillRandom: '${t.label}' has dtype ${t.dtype}; expected a float type or u32`);
  const words = t.byteSize / 4;
  g.dispatch({
    kernel: { label: `random_uniform_${t.dtype}`, code: RANDOM_WGSL, constants: { WG, OUT_KIND: KIND[t.dtype] } },
    uniforms: { layout: PARAMS, values: { words, seed: seed >>> 0, scale, first: first >>> 0 } },
    outputs: [t],
    workgroups: grid1d(g.device, Math.ceil(words / WG)),
  });
}

/**
 * Fills a tensor, or every chunk of a chunked matrix, with uniform values in [-scale, scale) (u32: random bits).
 * A quantised matrix gets random codes and scales (and mins) that keep its weights within [-scale, scale].
 */
export function fillRandom(g: Graph, t: Tensor | ChunkedTensor | QuantizedMatrix, seed: number, scale: number): void {
  if (t instanceof QuantizedMatrix) {
    // q8: |d·q| ≤ 127·|d|; q4: |d·q + m| ≤ 15·|d| + |m|, with d and m drawn from the same range
    const s = scale / (t.layout.bits === 8 ? 128 : 16);
    for (const c of t.chunks) {
      fillTensor(g, c.data, seed, 0, c.rowStart * c.data.shape[1]);
      fillTensor(g, c.scales, seed + 0x9e3779b9, s, c.rowStart * c.scales.shape[1]);
    }
  } else if (t instanceof ChunkedTensor) {
    for (const c of t.chunks) fillTensor(g, c.tensor, seed, scale, c.rowStart * t.rowSize);
  } else fillTensor(g, t, seed, scale, 0);
}
