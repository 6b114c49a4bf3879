// Weights in f16 for the tensor-core matmul (convert.wgsl): bf16 or f32 rounded to f16 on the GPU, with the values
// beyond f16's range counted rather than turned into infinities.

import { type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import CONVERT_WGSL from './convert.wgsl.js';
import { assertDType, assertShape } from './prelude.js';
import { grid1d } from './grid.js';

const PARAMS = new UniformLayout('words: u32, n: u32');
const WG = 256;

/**
 * Records out = f16(x) for x bf16 or f32 and out f16 of x's shape. The number of values of x beyond ±65504 (or not
 * finite) is added to bad[0] (u32, zeroed by the caller); those elements of out are 0.
 */
export function toF16(g: Graph, x: Tensor, out: Tensor, bad: Tensor): void {
  assertDType(`toF16 input '${x.label}'`, x.dtype, ['bf16', 'f32']);
  assertDType(`toF16 output '${out.label}'`, out.dtype, ['f16']);
  assertShape(`toF16 output '${out.label}'`, out.shape, x.shape);
  assertDType(`toF16 counter '${bad.label}'`, bad.dtype, ['u32']);
  if (bad.numel < 1) throw new InputError(`toF16 counter '${bad.label}' is empty; expected at least one u32`);
  if (x.numel === 0) return;
  const words = out.byteSize / 4;
  g.dispatch({
    kernel: {
      label: `convert_${x.dtype}_f16`,
      code: CONVERT_WGSL,
      constants: { WG, SRC_F32: x.dtype === 'f32' ? 1 : 0 },
    },
    uniforms: { layout: PARAMS, values: { words, n: x.numel } },
    inputs: [x],
    outputs: [out, bad],
    workgroups: grid1d(g.device, Math.ceil(words / WG)),
  });
}
