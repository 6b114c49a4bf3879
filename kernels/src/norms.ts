// RMSNorm and LayerNorm over the last dimension (rmsnorm.wgsl, layernorm.wgsl), and the decoder's residual add
// fused with the next RMSNorm (rmsnorm_residual.wgsl). All three reduce through workgroup_sum.wgsl.

import { type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import RMSNORM_WGSL from './rmsnorm.wgsl.js';
import RMSNORM_RESIDUAL_WGSL from './rmsnorm_residual.wgsl.js';
import LAYERNORM_WGSL from './layernorm.wgsl.js';
import WORKGROUP_SUM_WGSL from './workgroup_sum.wgsl.js';
import {
  type ActDType,
  type WeightDType,
  assertDType,
  assertShape,
  checkActDType,
  prelude,
  rowsOf,
  variantTag,
} from './prelude.js';
import { grid1d } from './grid.js';
import { isCpuAdapter } from './adapter.js';

const PARAMS = new UniformLayout('rows: u32, cols: u32, eps: f32');
/** Invocations per row: GPUs want many; CPU adapters run a workgroup as a loop where each barrier costs a
 *  context switch per SIMD group, so fewer, longer invocations are ~2× faster there (lavapipe, [512, 4096]). */
function workgroupSize(g: Graph): number {
  return isCpuAdapter(g.device) ? 32 : 256;
}

/** Checks both norms share: x f32|f16, each parameter [cols] of a float type, out shaped and typed like x. */
function checkNorm(g: Graph, name: string, x: Tensor, params: readonly Tensor[], out: Tensor): void {
  const cols = x.shape[x.shape.length - 1];
  assertDType(`${name} input '${x.label}'`, x.dtype, ['f32', 'f16']);
  checkActDType(g.device, x.dtype as ActDType, name);
  for (const p of params) {
    assertDType(`${name} parameter '${p.label}'`, p.dtype, ['f32', 'f16', 'bf16']);
    assertShape(`${name} parameter '${p.label}'`, p.shape, [cols]);
    if (p.dtype === 'f16') checkActDType(g.device, 'f16', `${name} parameter '${p.label}'`);
  }
  assertShape(`${name} output '${out.label}'`, out.shape, x.shape);
  assertDType(`${name} output '${out.label}'`, out.dtype, [x.dtype]);
}

/** One workgroup per row of x [rows, cols]: the shared dispatch of the three norm kernels. */
function dispatchRows(
  g: Graph,
  label: string,
  code: string,
  x: Tensor,
  eps: number,
  inputs: Tensor[],
  outputs: Tensor[],
): void {
  const wg = workgroupSize(g);
  g.dispatch({
    kernel: { label: `${label}_wg${wg}`, code, constants: { WG: wg } },
    uniforms: { layout: PARAMS, values: { rows: rowsOf(x), cols: x.shape[x.shape.length - 1], eps } },
    inputs,
    outputs,
    workgroups: grid1d(g.device, rowsOf(x)),
  });
}

/** y = x / sqrt(mean(x²) + eps) · w over the last dimension; `out` (same shape and dtype as x) or a new tensor.  (Glm4vRMSNorm) */
export function rmsNorm(g: Graph, x: Tensor, w: Tensor, eps: number, out?: Tensor): Tensor {
  const y = out ?? g.tensor(x.dtype, x.shape, 'rmsnorm_out');
  checkNorm(g, 'rmsNorm', x, [w], y);
  const act = x.dtype as ActDType;
  const wd = w.dtype as WeightDType;
  dispatchRows(
    g,
    `rmsnorm_${variantTag(wd, act)}`,
    prelude({ act, weights: { w: wd } }) + WORKGROUP_SUM_WGSL + RMSNORM_WGSL,
    x,
    eps,
    [x, w],
    [y],
  );
  return y;
}

/**
 * The decoder's "residual add, then the next norm" in one dispatch: x += RMSNorm(y)·w1 in place, and returns
 * RMSNorm(x)·w2 (in `out` if given, else a new tensor), both with the same eps. y, x and out are [rows, cols] of
 * one activation dtype; x is updated before the second norm reads it, exactly as two separate rmsNorm calls would.
 */
export function rmsNormResidual(
  g: Graph,
  x: Tensor,
  y: Tensor,
  w1: Tensor,
  w2: Tensor,
  eps: number,
  out?: Tensor,
): Tensor {
  const normed = out ?? g.tensor(x.dtype, x.shape, 'rmsnorm_residual_out');
  checkNorm(g, 'rmsNormResidual', x, [w1, w2], normed);
  assertShape(`rmsNormResidual branch '${y.label}'`, y.shape, x.shape);
  assertDType(`rmsNormResidual branch '${y.label}'`, y.dtype, [x.dtype]);
  if (y === x || normed === x || normed === y)
    throw new InputError(
      `rmsNormResidual: the residual '${x.label}', branch '${y.label}' and output '${normed.label}' must be three tensors`,
    );
  const act = x.dtype as ActDType;
  const weights = { w1: w1.dtype as WeightDType, w2: w2.dtype as WeightDType };
  const tag = weights.w1 === weights.w2 ? variantTag(weights.w1, act) : `${weights.w1}w_${variantTag(weights.w2, act)}`;
  dispatchRows(
    g,
    `rmsnorm_residual_${tag}`,
    prelude({ act, weights }) + WORKGROUP_SUM_WGSL + RMSNORM_RESIDUAL_WGSL,
    x,
    eps,
    [y, w1, w2],
    [x, normed],
  );
  return normed;
}

/** y = (x − mean) / sqrt(var + eps) · w + b over the last dimension.  (nn.LayerNorm) */
export function layerNorm(g: Graph, x: Tensor, w: Tensor, b: Tensor, eps: number, out?: Tensor): Tensor {
  const y = out ?? g.tensor(x.dtype, x.shape, 'layernorm_out');
  checkNorm(g, 'layerNorm', x, [w, b], y);
  const act = x.dtype as ActDType;
  const weights = { w: w.dtype as WeightDType, b: b.dtype as WeightDType };
  dispatchRows(
    g,
    `layernorm_${variantTag(weights.w, act)}`,
    prelude({ act, weights }) + WORKGROUP_SUM_WGSL + LAYERNORM_WGSL,
    x,
    eps,
    [x, w, b],
    [y],
  );
  return y;
}
