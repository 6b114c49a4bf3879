// The vision tower's two convolutions as GEMMs (patch_embed.wgsl for the weight layout change): the Conv3d patch
// embedding and the 2×2 downsample conv.

import { type Graph, InputError, type Tensor, UniformLayout, itemSize } from '@glm4v/core';
import PATCH_EMBED_WGSL from './patch_embed.wgsl.js';
import { assertShape } from './prelude.js';
import { grid1d } from './grid.js';

const PARAMS = new UniformLayout('words: u32, c: u32');
const WG = 256;

/**
 * The downsample conv weight W [O, C, 2, 2] as W' [O, 4C], W'[o][(2i + j)·C + ch] = W[o][ch][i][j], in the same
 * dtype (16-bit types move as 16-bit elements). A GPU kernel, run once at load.  (spec §6.6, pitfall 10)
 */
export function permuteDownsampleWeight(g: Graph, w: Tensor): Tensor {
  if (w.shape.length !== 4) throw new InputError(`permuteDownsampleWeight weight '${w.label}' has shape [${w.shape.join(', ')}]; expected [O, C, 2, 2]`);
  assertShape(`permuteDownsampleWeight weight '${w.label}'`, w.shape, [undefined, undefined, 2, 2]);
  const [o, c] = w.shape;
  const out = g.tensor(w.dtype, [o, 4 * c], `${w.label}.permuted`);
  const wide = itemSize(w.dtype) === 4;
  const words = out.byteSize / 4; // a 16-bit W has 4·O·C elements: always whole words
  // one invocation per channel (32-bit) or channel pair (16-bit, C even) moving four words; else one word each
  const entryPoint = wide ? 'permute_downsample_wide' : c % 2 === 0 ? 'permute_downsample_pairs' : 'permute_downsample';
  const invocations = entryPoint === 'permute_downsample' ? words : words / 4;
  g.dispatch({
    kernel: { label: `${entryPoint}_${wide ? '32' : '16'}bit`, code: PATCH_EMBED_WGSL, entryPoint, constants: { WG } },
    uniforms: { layout: PARAMS, values: { words, c } },
    inputs: [w],
    outputs: [out],
    workgroups: grid1d(g.device, Math.ceil(invocations / WG)),
  });
  return out;
}
