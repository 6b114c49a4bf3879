// Random weights made on the GPU (random.wgsl): uniform in [-scale, scale), reproducible from a seed, for
// measuring speed and memory at the real model's shapes without a checkpoint.

import { ChunkedTensor, type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import RANDOM_WGSL from './random.wgsl.js';
import { grid1d } from './grid.js';

const PARAMS = new UniformLayout('words: u32, seed: u32, scale: f32, first: u32');
const WG = 256;
const KIND = { f32: 0, bf16: 1, f16: 2 } as const;

function fillTensor(g: Graph, t: Tensor, seed: number, scale: number, first: number): void {
  if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16') throw new InputError(`fillRandom: '${t.label}' has dtype ${t.dtype}; expected a float type`);
  const words = t.byteSize / 4;
  g.dispatch({
    kernel: { label: `random_uniform_${t.dtype}`, code: RANDOM_WGSL, constants: { WG, OUT_KIND: KIND[t.dtype] } },
    uniforms: { layout: PARAMS, values: { words, seed: seed >>> 0, scale, first: first >>> 0 } },
    outputs: [t],
    workgroups: grid1d(g.device, Math.ceil(words / WG)),
  });
}

/** Fills a tensor, or every chunk of a chunked matrix, with uniform values in [-scale, scale). */
export function fillRandom(g: Graph, t: Tensor | ChunkedTensor, seed: number, scale: number): void {
  if (t instanceof ChunkedTensor) {
    for (const c of t.chunks) fillTensor(g, c.tensor, seed, scale, c.rowStart * t.rowSize);
  } else fillTensor(g, t, seed, scale, 0);
}
