// The vision tower's two convolutions as GEMMs (patch_embed.wgsl for the weight layout change): the Conv3d patch
// embedding and the 2×2 downsample conv.

import { type Graph, InputError, type Tensor, UniformLayout, itemSize } from '@glm4v/core';
import PATCH_EMBED_WGSL from './patch_embed.wgsl.js';
import { assertShape } from './prelude.js';
import { grid1d } from './grid.js';
import { linear } from './matmul.js';

const PARAMS = new UniformLayout('words: u32, c: u32');
const WG = 256;

/**
 * The downsample conv weight W [O, C, 2, 2] as W' [O, 4C], W'[o][(2i + j)·C + ch] = W[o][ch][i][j], in the same
 * dtype (16-bit types move as 16-bit elements). A GPU kernel, run once at load.  (docs/model.md#load-time-layout)
 */
export function permuteDownsampleWeight(g: Graph, w: Tensor): Tensor {
  if (w.shape.length !== 4)
    throw new InputError(
      `permuteDownsampleWeight weight '${w.label}' has shape [${w.shape.join(', ')}]; expected [O, C, 2, 2]`,
    );
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

/**
 * Patch embedding: the Conv3d with kernel = stride = (2, 14, 14) covers a whole patch, so it is a linear map of the
 * flattened patches: patches [S, K] · reshape(W, [hidden, K])ᵀ + b → [S, hidden]. W is the checkpoint's
 * [hidden, C, T, P, P] (flatten order c, t, y, x, as the patches are built) or already [hidden, K].
 * (Glm4vVisionPatchEmbed; docs/model.md#patch-embedding)
 */
export function patchEmbed(g: Graph, patches: Tensor, w: Tensor, b: Tensor): Tensor {
  if (w.shape.length < 2)
    throw new InputError(
      `patchEmbed weight '${w.label}' has shape [${w.shape.join(', ')}]; expected [hidden, C, T, P, P] or [hidden, K]`,
    );
  const hidden = w.shape[0];
  const k = hidden === 0 ? 0 : w.numel / hidden;
  if (patches.shape.length !== 2)
    throw new InputError(
      `patchEmbed patches '${patches.label}' has shape [${patches.shape.join(', ')}]; expected [S, ${k}]`,
    );
  assertShape(`patchEmbed patches '${patches.label}'`, patches.shape, [undefined, k]);
  assertShape(`patchEmbed bias '${b.label}'`, b.shape, [hidden]);
  return linear(g, patches, w.shape.length === 2 ? w : w.reshape([hidden, k]), { bias: b }); // [S, K] -> [S, hidden]
}

/**
 * The 2×2 downsample conv as a GEMM: x [S, C] (the four patches of each merge window on consecutive rows) viewed
 * as [S/4, 4C], times W'ᵀ (W' [O, 4C] from permuteDownsampleWeight) plus b → [S/4, O].
 * (Glm4vVisionModel.downsample; docs/model.md#downsample)
 */
export function downsample(g: Graph, x: Tensor, wPermuted: Tensor, b: Tensor): Tensor {
  if (x.shape.length !== 2 || x.shape[0] % 4 !== 0) {
    throw new InputError(
      `downsample input '${x.label}' has shape [${x.shape.join(', ')}]; expected [S, C] with S a multiple of 4 (whole 2×2 windows)`,
    );
  }
  const [s, c] = x.shape;
  assertShape(`downsample weight '${wPermuted.label}'`, wPermuted.shape, [undefined, 4 * c]);
  assertShape(`downsample bias '${b.label}'`, b.shape, [wPermuted.shape[0]]);
  return linear(g, x.reshape([s / 4, 4 * c]), wPermuted, { bias: b }); // [S, C] = [S/4, 4C] -> [S/4, O]
}
