// What the linear kernels share whatever the weight format (matmul.ts for f32/f16/bf16 weights, matmul_quant.ts
// for block-quantised ones): the uniform block, which kind of adapter runs them, and the checks on x, bias and y.

import { type Device, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import REDUCE_SUBGROUP_WGSL from './matvec_reduce_subgroup.wgsl.js';
import REDUCE_SHARED_WGSL from './matvec_reduce_shared.wgsl.js';
import { type ActDType, assertDType, assertShape, checkActDType, rowsOf } from './prelude.js';

export const LINEAR_PARAMS_FIELDS = 'M: u32, N: u32, K: u32, rows: u32, col0: u32, tiles_n: u32, tiles: u32, has_bias: u32';
export const LINEAR_PARAMS = new UniformLayout(LINEAR_PARAMS_FIELDS);

/** Rows of x up to which linear() uses matvec. */
export const MATVEC_MAX_ROWS = 8;

export interface LinearOptions {
  /** [N], any float dtype. */
  bias?: Tensor;
  /** Write here instead of a new tensor: shape [..., N], x's dtype. */
  out?: Tensor;
}

/** Software adapters run each workgroup as a loop on one CPU thread, 8 lanes per SIMD step (lavapipe). */
export function isCpuAdapter(device: Device): boolean {
  return device.adapter.isFallbackAdapter || device.adapter.architecture === 'software';
}

/** The broadcast kernels share 8 x values through lanes 0..7 of each subgroup. */
export function canBroadcast(device: Device): boolean {
  return device.has('subgroups') && (device.adapter.subgroupMinSize ?? 0) >= 8;
}

export function canReduceWithSubgroups(device: Device): boolean {
  return device.has('subgroups') && (device.adapter.subgroupMinSize ?? 0) >= 1;
}

/** Checks x [..., K], the bias [N] and the output [..., N] of a linear layer whose weight is `weight` [N, K]. */
export function checkLinearIO(device: Device, what: string, x: Tensor, weight: { label: string; shape: readonly number[] }, opts: LinearOptions): { M: number; N: number; K: number } {
  assertDType(`${what} input '${x.label}'`, x.dtype, ['f32', 'f16']);
  checkActDType(device, x.dtype as ActDType, `${what} input '${x.label}'`);
  if (x.shape.length < 1) throw new InputError(`${what}: input '${x.label}' is a scalar; expected [..., K]`);
  if (weight.shape.length !== 2) throw new InputError(`${what}: weight '${weight.label}' has shape [${weight.shape.join(', ')}]; expected [N, K]`);
  const [N, K] = weight.shape;
  const Kx = x.shape[x.shape.length - 1];
  if (K !== Kx) throw new InputError(`${what}: weight '${weight.label}' [${weight.shape.join(', ')}] does not match x '${x.label}' [..., ${Kx}]`);
  if (N === 0 || K === 0) throw new InputError(`${what}: weight '${weight.label}' [${weight.shape.join(', ')}] is empty`);
  if (opts.bias) {
    assertDType(`${what} bias '${opts.bias.label}'`, opts.bias.dtype, ['f32', 'f16', 'bf16']);
    assertShape(`${what} bias '${opts.bias.label}'`, opts.bias.shape, [N]);
    needsF16(device, what, `bias '${opts.bias.label}'`, opts.bias.dtype);
  }
  if (opts.out) {
    assertShape(`${what} output '${opts.out.label}'`, opts.out.shape, [...x.shape.slice(0, -1), N]);
    assertDType(`${what} output '${opts.out.label}'`, opts.out.dtype, [x.dtype]);
  }
  return { M: rowsOf(x), N, K };
}

export function needsF16(device: Device, what: string, name: string, dtype: string): void {
  if (dtype === 'f16' && !device.has('shader-f16')) throw new InputError(`${what}: ${name} is f16, which needs the shader-f16 feature that this adapter lacks`);
}

/** What a variant adds to the kernel: label suffix, override constants, and the tile one workgroup covers. */
export interface KernelShape {
  suffix: string;
  constants: Record<string, number>;
  subgroups: boolean;
  /** Rows of x and of W (columns of y) one workgroup covers. */
  rowsPerTile: number;
  colsPerTile: number;
}

/** The broadcast variant (CPU adapters): one row of x (decode) gets its own pipeline, no rows to skip in the K loop. */
export function broadcastShape(device: Device, p: { TM: number; TN: number; WG: number }, name: string, M: number): KernelShape {
  if (!canBroadcast(device)) throw new InputError(`variant '${name}' needs subgroups of at least 8 invocations, which this adapter lacks`);
  const TM = M === 1 ? 1 : p.TM; // about 6% faster on lavapipe
  return { suffix: TM === p.TM ? '' : `_m${TM}`, constants: { WG: p.WG, TM, TN: p.TN }, subgroups: true, rowsPerTile: TM, colsPerTile: p.WG * p.TN };
}

/** The split-K variant (decode on GPUs): its team size and the team_reduce WGSL to append to the kernel. */
export function splitKShape(device: Device, p: { T: number; R: number; WG: number }, name: string, reduce: 'subgroup' | 'shared'): KernelShape & { reduceWgsl: string } {
  const sub = reduce === 'subgroup';
  if (sub && !canReduceWithSubgroups(device)) throw new InputError(`variant '${name}' with subgroup reduction needs the subgroups feature, which this adapter lacks`);
  // A team must sit inside one subgroup: T no larger than the smallest subgroup (both powers of two).
  const T = sub ? Math.min(p.T, device.adapter.subgroupMinSize!) : p.T;
  // The shared reduction gives each of a team's MATVEC_MAX_ROWS · R sums to one of its T lanes.
  if (!sub && MATVEC_MAX_ROWS * p.R > T) throw new InputError(`variant '${name}': a team of ${T} lanes cannot reduce ${MATVEC_MAX_ROWS} × ${p.R} sums`);
  return {
    suffix: `_t${T}_${sub ? 'sg' : 'wg'}`,
    constants: { WG: p.WG, T, R: p.R },
    subgroups: sub,
    rowsPerTile: MATVEC_MAX_ROWS,
    colsPerTile: (p.WG / T) * p.R,
    reduceWgsl: sub ? REDUCE_SUBGROUP_WGSL : REDUCE_SHARED_WGSL,
  };
}
