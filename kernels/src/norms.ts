// RMSNorm and LayerNorm over the last dimension (rmsnorm.wgsl, layernorm.wgsl).

import { type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import RMSNORM_WGSL from './rmsnorm.wgsl.js';
import LAYERNORM_WGSL from './layernorm.wgsl.js';
import { type ActDType, type WeightDType, assertDType, assertShape, checkActDType, prelude, rowsOf, variantTag } from './prelude.js';
import { grid1d } from './grid.js';
import { isCpuAdapter } from './matmul.js';

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

export interface RmsNormOptions {
  /** Write here instead of a new tensor (same shape and dtype as x). */
  out?: Tensor;
  /** Add the result into `out` (which must be given): out += RMSNorm(x)·w. */
  accumulate?: boolean;
}

/** y = x / sqrt(mean(x²) + eps) · w over the last dimension.  (Glm4vRMSNorm) */
export function rmsNorm(g: Graph, x: Tensor, w: Tensor, eps: number, opts: RmsNormOptions = {}): Tensor {
  if (opts.accumulate && !opts.out) throw new InputError('rmsNorm: accumulate needs an out tensor');
  const out = opts.out ?? g.tensor(x.dtype, x.shape, 'rmsnorm_out');
  checkNorm(g, 'rmsNorm', x, [w], out);
  const rows = rowsOf(x);
  const cols = x.shape[x.shape.length - 1];
  const act = x.dtype as ActDType;
  const wd = w.dtype as WeightDType;
  g.dispatch({
    kernel: {
      label: `rmsnorm_${variantTag(wd, act)}${opts.accumulate ? '_add' : ''}_wg${workgroupSize(g)}`,
      code: prelude({ act, weights: { w: wd } }) + RMSNORM_WGSL,
      constants: { WG: workgroupSize(g), ADD: opts.accumulate ? 1 : 0 },
    },
    uniforms: { layout: PARAMS, values: { rows, cols, eps } },
    inputs: [x, w],
    outputs: [out],
    workgroups: grid1d(g.device, rows),
  });
  return out;
}

/** y = (x − mean) / sqrt(var + eps) · w + b over the last dimension.  (nn.LayerNorm) */
export function layerNorm(g: Graph, x: Tensor, w: Tensor, b: Tensor, eps: number, out?: Tensor): Tensor {
  const y = out ?? g.tensor(x.dtype, x.shape, 'layernorm_out');
  checkNorm(g, 'layerNorm', x, [w, b], y);
  const rows = rowsOf(x);
  const cols = x.shape[x.shape.length - 1];
  const act = x.dtype as ActDType;
  const weights = { w: w.dtype as WeightDType, b: b.dtype as WeightDType };
  g.dispatch({
    kernel: { label: `layernorm_${variantTag(weights.w, act)}_wg${workgroupSize(g)}`, code: prelude({ act, weights }) + LAYERNORM_WGSL, constants: { WG: workgroupSize(g) } },
    uniforms: { layout: PARAMS, values: { rows, cols, eps } },
    inputs: [x, w, b],
    outputs: [y],
    workgroups: grid1d(g.device, rows),
  });
  return y;
}
