// What the linear kernels share whatever the weight format (matmul.ts for f32/f16/bf16 weights, matmul_quant.ts
// for block-quantised ones): the uniform block, the checks on x, bias and y, the row limit of the decode kernels
// and their SwiGLU input (prepareLinear), x's reader, the per-chunk dispatches of the tiled and broadcast kernels
// (dispatchTiles), and the split-K matvec's plan (team, rows, K slices), output and second pass.

import { type Device, type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import REDUCE_SUBGROUP_WGSL from './matvec_reduce_subgroup.wgsl.js';
import REDUCE_SHARED_WGSL from './matvec_reduce_shared.wgsl.js';
import SPLITK_SUM_WGSL from './matvec_splitk_sum.wgsl.js';
import {
  type ActDType,
  type WeightDType,
  assertDType,
  assertShape,
  checkActDType,
  prelude,
  rowsOf,
} from './prelude.js';
import { grid1d } from './grid.js';
import { siluMul } from './pointwise.js';
import { canBroadcast, canReduceWithSubgroups, minSubgroupSize } from './adapter.js';

export const LINEAR_PARAMS_FIELDS =
  'M: u32, N: u32, K: u32, rows: u32, col0: u32, tiles_n: u32, tiles: u32, has_bias: u32';
export const LINEAR_PARAMS = new UniformLayout(LINEAR_PARAMS_FIELDS);

/** Rows of x up to which linear() uses matvec. */
export const MATVEC_MAX_ROWS = 8;

export interface LinearOptions {
  /** [N], any float dtype. */
  bias?: Tensor;
  /** Write here instead of a new tensor: shape [..., N], x's dtype. */
  out?: Tensor;
  /**
   * x is [..., 2K], an MLP's gate | up halves, and the layer multiplies silu(gate) · up (SwiGLU, the down_proj of
   * Glm4vTextMLP). The decode kernels compute it as they load x (no dispatch, no [..., K] tensor); the many-row
   * kernels get it from a siluMul dispatch first (swigluInput).
   */
  swiglu?: boolean;
}

/** Checks x [..., K], the bias [N] and the output [..., N] of a linear layer whose weight is `weight` [N, K]. */
export function checkLinearIO(
  device: Device,
  what: string,
  x: Tensor,
  weight: { label: string; shape: readonly number[] },
  opts: LinearOptions,
): { M: number; N: number; K: number } {
  assertDType(`${what} input '${x.label}'`, x.dtype, ['f32', 'f16']);
  checkActDType(device, x.dtype as ActDType, `${what} input '${x.label}'`);
  if (x.shape.length < 1) throw new InputError(`${what}: input '${x.label}' is a scalar; expected [..., K]`);
  if (weight.shape.length !== 2)
    throw new InputError(`${what}: weight '${weight.label}' has shape [${weight.shape.join(', ')}]; expected [N, K]`);
  const [N, K] = weight.shape;
  const Kx = x.shape[x.shape.length - 1];
  if (opts.swiglu && Kx !== 2 * K)
    throw new InputError(
      `${what}: x '${x.label}' [..., ${Kx}] is not the gate | up halves for weight '${weight.label}' [${weight.shape.join(', ')}]: expected [..., ${2 * K}]`,
    );
  if (!opts.swiglu && K !== Kx)
    throw new InputError(
      `${what}: weight '${weight.label}' [${weight.shape.join(', ')}] does not match x '${x.label}' [..., ${Kx}]`,
    );
  if (N === 0 || K === 0)
    throw new InputError(`${what}: weight '${weight.label}' [${weight.shape.join(', ')}] is empty`);
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

/** A weight's row chunk as a linear kernel binds it: its rows, its first row, and its buffers (W, or codes and scales). */
export interface WeightChunk {
  rows: number;
  rowStart: number;
  weights: Tensor[];
}

/**
 * What every linear wrapper does once the variant is chosen (its kind: 'splitk', 'broadcast', a tiled one): refuses
 * more than MATVEC_MAX_ROWS rows of x for matvec or split-K, makes y [..., N] (or takes opts.out), and gives x as
 * the kernel reads it. Under `swiglu` the decode kernels (split-K, or broadcast at ≤ MATVEC_MAX_ROWS rows) read
 * gate | up halves themselves; any other gets a siluMul dispatch's [..., K] first, and the options without `swiglu`.
 */
export function prepareLinear(
  g: Graph,
  x: Tensor,
  opts: LinearOptions,
  kind: 'matmul' | 'matvec',
  variant: string,
  dims: { M: number; N: number },
): { x: Tensor; opts: LinearOptions; y: Tensor } {
  const { M, N } = dims;
  if ((kind === 'matvec' || variant === 'splitk') && M > MATVEC_MAX_ROWS) {
    throw new InputError(
      `${kind}: x '${x.label}' [${x.shape.join(', ')}] has ${M} rows; at most ${MATVEC_MAX_ROWS} go through matvec`,
    );
  }
  const y = opts.out ?? g.tensor(x.dtype, [...x.shape.slice(0, -1), N], `${kind}_out`);
  const fused = variant === 'splitk' || (variant === 'broadcast' && M <= MATVEC_MAX_ROWS);
  if (!opts.swiglu || fused || M === 0) return { x, opts, y };
  return { x: siluMul(g, x), opts: { ...opts, swiglu: false }, y };
}

/**
 * Records a tiled or broadcast linear kernel: one dispatch per row chunk of W, over tiles of rowsPerTile rows of x
 * by colsPerTile rows of W (numbered for grids above 65535 workgroups, grid.ts).
 */
export function dispatchTiles(
  g: Graph,
  j: {
    kernel: { label: string; code: string };
    shape: KernelShape;
    x: Tensor;
    y: Tensor;
    bias?: Tensor;
    M: number;
    N: number;
    K: number;
    chunks: readonly WeightChunk[];
  },
): void {
  const { M, N, K, shape } = j;
  for (const c of j.chunks) {
    const tilesN = Math.ceil(c.rows / shape.colsPerTile);
    const tiles = tilesN * Math.ceil(M / shape.rowsPerTile);
    g.dispatch({
      kernel: { ...j.kernel, constants: shape.constants },
      uniforms: {
        layout: LINEAR_PARAMS,
        values: { M, N, K, rows: c.rows, col0: c.rowStart, tiles_n: tilesN, tiles, has_bias: j.bias ? 1 : 0 },
      },
      // Without a bias, x stands in for the unused binding.
      inputs: [j.x, ...c.weights, j.bias ?? j.x],
      outputs: [j.y],
      workgroups: grid1d(g.device, tiles),
    });
  }
}

/** Label suffix of a kernel that reads gate | up halves. */
export const swigluTag = (swiglu: boolean | undefined) => (swiglu ? '_swiglu' : '');

export function needsF16(device: Device, what: string, name: string, dtype: string): void {
  if (dtype === 'f16' && !device.has('shader-f16'))
    throw new InputError(`${what}: ${name} is f16, which needs the shader-f16 feature that this adapter lacks`);
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
export function broadcastShape(
  device: Device,
  p: { TM: number; TN: number; WG: number },
  name: string,
  M: number,
): KernelShape {
  if (!canBroadcast(device))
    throw new InputError(`variant '${name}' needs subgroups of at least 8 invocations, which this adapter lacks`);
  const TM = M === 1 ? 1 : p.TM; // about 6% faster on lavapipe
  return {
    suffix: TM === p.TM ? '' : `_m${TM}`,
    constants: { WG: p.WG, TM, TN: p.TN },
    subgroups: true,
    rowsPerTile: TM,
    colsPerTile: p.WG * p.TN,
  };
}

/** The split-K matvec (decode on GPUs): T lanes per row of W, U units per lane per step, WG invocations. */
export type SplitKPreset = { kind: 'splitk'; T: number; U: number; WG: number };

/**
 * Workgroups a matvec launches at least, where the shape allows, to fill the largest GPUs: about 4 per compute
 * unit on an H100 (132 SMs) or an RTX 4090 (128); with 16 KB of weights in flight per workgroup that is ~64 KB per
 * SM, the amount HBM needs at its latency (ARCHITECTURE.md, "Decode matvec").
 */
export const MATVEC_FILL_WORKGROUPS = 512;

/** What the split-K matvec launches for one weight: device-independent figures (bench:kernels prints them). */
export interface MatvecPlan {
  /** Lanes per row of W, rows of W per team, units (16-byte groups or 32-byte blocks) per lane per step. */
  T: number;
  R: number;
  U: number;
  WG: number;
  /** K slices: above 1, partial sums and a second pass (matvec_splitk_sum.wgsl). */
  slices: number;
  rowsPerWorkgroup: number;
  /** Workgroups of the first pass, all rows of W in one chunk. */
  workgroups: number;
  /** Bytes of W each workgroup loads before it uses the first (one step of every lane). */
  bytesInFlight: number;
}

/**
 * The plan for N rows of `units` units of `unitBytes` each. Two rows per team (twice the loads in flight per lane,
 * x read once for both) while that still gives MATVEC_FILL_WORKGROUPS / 2 workgroups, else one. Then, when the
 * row tiles are fewer than MATVEC_FILL_WORKGROUPS, K is split into as many slices as make up the difference, each
 * at least one whole step of every lane (T · U units): a slice shorter than that would trade the unrolled loads for
 * a second pass, whose dispatch costs more than the bytes it spreads. `slices` forces the count (tests).
 */
export function matvecPlan(
  p: SplitKPreset,
  T: number,
  N: number,
  units: number,
  unitBytes: number,
  slices?: number,
): MatvecPlan {
  const teams = p.WG / T;
  const R = Math.ceil(N / (2 * teams)) >= MATVEC_FILL_WORKGROUPS / 2 ? 2 : 1;
  const rowTiles = Math.ceil(N / (teams * R));
  const step = T * p.U;
  const want = slices ?? Math.min(Math.floor(MATVEC_FILL_WORKGROUPS / rowTiles), Math.floor(units / step));
  const S = sliceCount(units, Math.max(1, want), step);
  return {
    T,
    R,
    U: p.U,
    WG: p.WG,
    slices: S,
    rowsPerWorkgroup: teams * R,
    workgroups: rowTiles * S,
    bytesInFlight: p.WG * p.U * R * unitBytes,
  };
}

/** The slices slice_span() cuts `units` into when asked for `want`: whole steps each, so maybe fewer. */
function sliceCount(units: number, want: number, step: number): number {
  const per = Math.ceil(Math.ceil(units / want) / step) * step;
  return Math.ceil(units / per);
}

/** T for a preset on this device: no larger than the smallest subgroup when reducing with shuffles. */
export function splitKTeam(device: Device, p: SplitKPreset, name: string, reduce: 'subgroup' | 'shared'): number {
  const sub = reduce === 'subgroup';
  if (sub && !canReduceWithSubgroups(device))
    throw new InputError(
      `variant '${name}' with subgroup reduction needs the subgroups feature, which this adapter lacks`,
    );
  // A team must sit inside one subgroup: T no larger than the smallest subgroup (both powers of two).
  const T = sub ? Math.min(p.T, minSubgroupSize(device)) : p.T;
  // The shared reduction gives each of a team's MATVEC_MAX_ROWS · R sums (R ≤ 2) to one of its T lanes.
  if (!sub && MATVEC_MAX_ROWS * 2 > T)
    throw new InputError(`variant '${name}': a team of ${T} lanes cannot reduce ${MATVEC_MAX_ROWS} × 2 sums`);
  return T;
}

/**
 * WGSL the split-K kernels share, generated per pipeline: U (a constant: it sizes the kernel's register arrays);
 * slice_span; the x binding's element type XV with x8(m, k) (x[m, k .. k + 8), two vec4 loads where K is a multiple
 * of 8, which keeps every row of x 16-byte aligned; k + 8 ≤ K), x8g (the same, 0 past K, element by element) and
 * x8z (0 past K: x8 and one select where K is a multiple of 8, so that k + 8 ≤ K or k ≥ K); and the output's
 * element type Y with store_y: y + bias, or f32 partial sums [slices, M, N] for the second pass.
 */
function splitKHelpers(t: { U: number; xVector: boolean; partial: boolean; swiglu: boolean }): string {
  // x8's two vec4 loads of x[m, k .. k + 8), as silu(gate) · up under swiglu (rows of 2K, the up half K further)
  const x8 = t.swiglu
    ? 'fn x8(m: u32, k: u32) -> X8 {\n  let i = (2u * m * p.K + k) >> 2u;\n  let j = i + (p.K >> 2u);\n' +
      '  return X8(silu4(vec4f(x[i])) * vec4f(x[j]), silu4(vec4f(x[i + 1u])) * vec4f(x[j + 1u]));\n}\n'
    : 'fn x8(m: u32, k: u32) -> X8 { let i = (m * p.K + k) >> 2u; return X8(vec4f(x[i]), vec4f(x[i + 1u])); }\n';
  const x = t.xVector
    ? 'alias XV = vec4<A>;\nfn x_el(i: u32) -> f32 { return f32(x[i >> 2u][i & 3u]); }\n' +
      x8 +
      'fn x8z(m: u32, k: u32) -> X8 { let v = x8(m, min(k, p.K - 8u)); let z = vec4f(0.0); return X8(select(z, v.a, k < p.K), select(z, v.b, k < p.K)); }\n'
    : 'alias XV = A;\nfn x_el(i: u32) -> f32 { return f32(x[i]); }\nfn x8(m: u32, k: u32) -> X8 { return x8g(m, k); }\nfn x8z(m: u32, k: u32) -> X8 { return x8g(m, k); }\n';
  const y = t.partial
    ? 'alias Y = f32;\nfn store_y(m: u32, n: u32, slice: u32, v: f32) { y[(slice * p.M + m) * p.N + p.col0 + n] = v; }\n'
    : 'alias Y = A;\nfn store_y(m: u32, n: u32, slice: u32, v: f32) {\n' +
      '  y[m * p.N + p.col0 + n] = A(select(v, v + load_b(p.col0 + n), p.has_bias != 0u));\n}\n';
  return (
    `const U = ${t.U}u; // units per lane per step\n` +
    '/** Units [start, end) of K slice `slice` of `slices`: whole steps of `step` units, the last slice short. */\n' +
    'fn slice_span(units: u32, slices: u32, slice: u32, step: u32) -> vec2u {\n' +
    '  let per = ((units + slices - 1u) / slices + step - 1u) / step * step;\n' +
    '  let start = min(slice * per, units);\n  return vec2u(start, min(start + per, units));\n}\n' +
    'struct X8 { a: vec4f, b: vec4f } // x[m, k .. k + 4), x[m, k + 4 .. k + 8)\n' +
    xAt(t.swiglu) +
    'fn xg(m: u32, k: u32) -> f32 { return select(0.0, x_at(m, min(k, p.K - 1u)), k < p.K); }\n' +
    'fn x8g(m: u32, k: u32) -> X8 {\n' +
    '  return X8(vec4f(xg(m, k), xg(m, k + 1u), xg(m, k + 2u), xg(m, k + 3u)), vec4f(xg(m, k + 4u), xg(m, k + 5u), xg(m, k + 6u), xg(m, k + 7u)));\n}\n' +
    x +
    y
  );
}

/**
 * x_at(m, k) for k < K: element k of the layer's input row m, read with x_el(i) (one element of the x binding): x
 * itself, or silu(gate) · up from a row of 2K (swiglu). silu4 is the same on a vec4.
 */
function xAt(swiglu: boolean): string {
  if (!swiglu) return 'fn x_at(m: u32, k: u32) -> f32 { return x_el(m * p.K + k); }\n';
  return (
    '// silu(v) = v / (1 + e^-v); for v → −∞, e^-v overflows to inf and the quotient is −0, as it should be\n' +
    'fn silu4(v: vec4f) -> vec4f { return v / (1.0 + exp(-v)); }\n' +
    'fn x_at(m: u32, k: u32) -> f32 {\n  let i = 2u * m * p.K + k;\n  let g = x_el(i);\n  return g / (1.0 + exp(-g)) * x_el(i + p.K);\n}\n'
  );
}

/** The element types of x and y for the other linear kernels (scalars of A), and x_at (the broadcast kernels). */
export function plainIO(swiglu: boolean): string {
  return 'alias XV = A;\nalias Y = A;\nfn x_el(i: u32) -> f32 { return f32(x[i]); }\n' + xAt(swiglu);
}

const SUM_PARAMS_FIELDS = 'M: u32, N: u32, slices: u32, has_bias: u32';
const SUM_PARAMS = new UniformLayout(SUM_PARAMS_FIELDS);

/** One split-K matvec: the kernel's source from its shared helpers, what each row chunk binds besides x. */
export interface SplitKJob {
  preset: SplitKPreset;
  /** The preset's name and the label's start, e.g. 'matvec_bf16w_f32a_sk32u4'. */
  name: string;
  label: string;
  reduce: 'subgroup' | 'shared';
  x: Tensor;
  y: Tensor;
  bias?: Tensor;
  M: number;
  N: number;
  K: number;
  /** Units along K (8-weight groups or blocks), their bytes, and whether x8 may read vec4 pairs (K % 8 = 0). */
  units: number;
  unitBytes: number;
  xVector: boolean;
  chunks: readonly WeightChunk[];
  /** The whole WGSL given the helpers and the team reduction (both WGSL), and whether subgroups are enabled. */
  source: (helpers: string, subgroups: boolean) => string;
  /** Force this many K slices (tests). */
  slices?: number;
  /** x is gate | up halves [M, 2K] (LinearOptions.swiglu). */
  swiglu: boolean;
}

/** Records a split-K matvec: one dispatch per row chunk, then the second pass when K is split. */
export function dispatchSplitK(g: Graph, j: SplitKJob): MatvecPlan {
  const T = splitKTeam(g.device, j.preset, j.name, j.reduce);
  const plan = matvecPlan(j.preset, T, j.N, j.units, j.unitBytes, j.slices);
  const partial = plan.slices > 1;
  const sub = j.reduce === 'subgroup';
  const helpers =
    splitKHelpers({ U: plan.U, xVector: j.xVector, partial, swiglu: j.swiglu }) +
    (sub ? REDUCE_SUBGROUP_WGSL : REDUCE_SHARED_WGSL);
  const code = j.source(helpers, sub);
  const label = `${j.label}_t${T}r${plan.R}_${sub ? 'sg' : 'wg'}${partial ? `_s${plan.slices}` : ''}${j.xVector ? '' : '_k1'}${swigluTag(j.swiglu)}`;
  const out = partial ? g.tensor('f32', [plan.slices, j.M, j.N], `${j.label}_partial`) : j.y;
  for (const c of j.chunks) {
    const tilesN = Math.ceil(c.rows / plan.rowsPerWorkgroup);
    const tiles = tilesN * plan.slices;
    g.dispatch({
      kernel: { label, code, constants: { WG: plan.WG, T, R: plan.R } },
      uniforms: {
        layout: LINEAR_PARAMS,
        values: {
          M: j.M,
          N: j.N,
          K: j.K,
          rows: c.rows,
          col0: c.rowStart,
          tiles_n: tilesN,
          tiles,
          has_bias: j.bias ? 1 : 0,
        },
      },
      // Without a bias, x stands in for the unused binding.
      inputs: [j.x, ...c.weights, j.bias ?? j.x],
      outputs: [out],
      workgroups: grid1d(g.device, tiles),
    });
  }
  if (partial) {
    const act = j.y.dtype as ActDType;
    const b = j.bias ? (j.bias.dtype as WeightDType) : act;
    g.dispatch({
      kernel: {
        label: `matvec_splitk_sum_${act}a`,
        code: `${prelude({ act, weights: { b } })}struct Params { ${SUM_PARAMS_FIELDS} }\n${SPLITK_SUM_WGSL}`,
        constants: { WG: 256 },
      },
      uniforms: { layout: SUM_PARAMS, values: { M: j.M, N: j.N, slices: plan.slices, has_bias: j.bias ? 1 : 0 } },
      inputs: [out, j.bias ?? out],
      outputs: [j.y],
      workgroups: grid1d(g.device, Math.ceil((j.M * j.N) / 256)),
    });
  }
  return plan;
}
