// Bicubic resampling of the ViT's learned position table to each image's patch grid (posembed.wgsl).

import { type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import POSEMBED_WGSL from './posembed.wgsl.js';
import {
  type ActDType,
  type WeightDType,
  assertDType,
  assertShape,
  checkActDType,
  prelude,
  variantTag,
} from './prelude.js';
import { grid1d, rowWorkgroupSize } from './grid.js';

const PARAMS = new UniformLayout('rows: u32, cols: u32, grid: u32');

export interface PosEmbedOptions {
  /** Side G of the square table (table rows = G·G): 24 in GLM-4.1V (image_size 336 / patch 14). */
  gridSize: number;
  /** Write (or with accumulate, add) here: [S, C], f32 or f16. */
  out?: Tensor;
  /** out += E (X₂ = X₁ + E) instead of out = E; needs out. */
  accumulate?: boolean;
}

/**
 * The learned position table [G·G, C] (row = G·r + c; f32, f16 or bf16) resampled bicubically to each patch's
 * image grid, as PyTorch's grid_sample(mode 'bicubic', align_corners False, padding 'border') does it (docs/model.md#position-embedding).
 * patches: i32 [S, 4] = (r, c, gh, gw): the patch's row and column in its image's patch grid and that grid's size.
 * Returns [S, C] (f32 unless out is f16).  (Glm4vVisionEmbeddings.forward)
 */
export function posEmbedBicubic(g: Graph, table: Tensor, patches: Tensor, opts: PosEmbedOptions): Tensor {
  const G = opts.gridSize;
  if (!Number.isInteger(G) || G < 1) throw new InputError(`posEmbedBicubic: gridSize ${G} is not a positive integer`);
  assertDType(`posEmbedBicubic table '${table.label}'`, table.dtype, ['f32', 'f16', 'bf16']);
  checkActDType(g.device, table.dtype, `posEmbedBicubic table '${table.label}'`);
  if (table.shape.length !== 2)
    throw new InputError(
      `posEmbedBicubic table '${table.label}' has shape [${table.shape.join(', ')}]; expected [${G * G}, C]`,
    );
  assertShape(`posEmbedBicubic table '${table.label}'`, table.shape, [G * G, undefined]);
  const cols = table.shape[1];
  assertDType(`posEmbedBicubic patches '${patches.label}'`, patches.dtype, ['i32']);
  if (patches.shape.length !== 2)
    throw new InputError(
      `posEmbedBicubic patches '${patches.label}' has shape [${patches.shape.join(', ')}]; expected [S, 4]`,
    );
  assertShape(`posEmbedBicubic patches '${patches.label}'`, patches.shape, [undefined, 4]);
  const rows = patches.shape[0];
  if (opts.accumulate && !opts.out) throw new InputError('posEmbedBicubic: accumulate needs an out tensor');
  const out = opts.out ?? g.tensor('f32', [rows, cols], 'pos_embed');
  assertShape(`posEmbedBicubic output '${out.label}'`, out.shape, [rows, cols]);
  assertDType(`posEmbedBicubic output '${out.label}'`, out.dtype, ['f32', 'f16']);
  const act = out.dtype as ActDType;
  checkActDType(g.device, act, 'posEmbedBicubic');
  const wd = table.dtype as WeightDType;
  g.dispatch({
    kernel: {
      label: `posembed_bicubic_${variantTag(wd, act)}${opts.accumulate ? '_add' : ''}`,
      code: prelude({ act, weights: { w: wd } }) + POSEMBED_WGSL,
      constants: { WG: rowWorkgroupSize(cols), ADD: opts.accumulate ? 1 : 0, PAIRS: cols % 2 === 0 ? 1 : 0 },
    },
    uniforms: { layout: PARAMS, values: { rows, cols, grid: G } },
    inputs: [patches, table],
    outputs: [out],
    workgroups: grid1d(g.device, rows),
  });
  return out;
}
