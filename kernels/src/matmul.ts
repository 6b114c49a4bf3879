// Linear layers y = x · Wᵀ (+ b) with W as stored in the checkpoint, [N, K] (matmul.wgsl, matmul_8x8.wgsl,
// matmul_subgroup_matrix.wgsl, matmul_broadcast.wgsl, matvec.wgsl with matvec_reduce_subgroup.wgsl or
// matvec_reduce_shared.wgsl, and matvec_splitk_sum.wgsl).
//
// Variants, all accumulating in f32:
// - 'subgroupMatrix' (matmul_subgroup_matrix.wgsl, matmul_subgroup_matrix.ts): the GPU's matrix units (tensor
//   cores) through WGSL subgroup matrices, for many rows wherever the adapter offers them; f16 operands (f32 where
//   the adapter multiplies only f32), f32 accumulation.
// - 'tiled8' (matmul_8x8.wgsl): 128-row workgroup-memory tiles, 8 × 8 outputs per invocation, double-buffered,
//   for many rows on other GPUs; 'tiled' (matmul.wgsl): 64 × 64 and 32 × 64 tiles, 4 × 4 or 2 × 4 outputs, for
//   fewer rows.
// - 'splitk' (matvec.wgsl): decode (M ≤ 8) on GPUs; a team of lanes reads each row of W contiguously, several
//   16-byte loads in flight per lane, and adds its partial sums with subgroup shuffles (or through workgroup memory
//   without subgroups); K split over workgroups with a second pass where N alone gives too few (linear-common.ts).
// - 'broadcast' (matmul_broadcast.wgsl): CPU adapters (lavapipe), for both. There every lane's load is a scalar
//   load per lane and barriers are expensive, so it uses no workgroup memory: each invocation keeps its own rows of
//   W in registers and x values are shared by subgroup broadcasts. Measured on lavapipe at 4096×4096 bf16: about
//   3× the tiled kernel's GFLOP/s at M = 512, and twice the split-K kernel's GB/s at M = 1.
// Weights are read 8 at a time (one vec4<u32> of packed bf16/f16, or two vec4<f32>) when K is a multiple of 8;
// otherwise rows of a 16-bit matrix straddle u32 words and a per-element reader (load_w) takes over.

import { ChunkedTensor, type Device, type Graph, type Tensor } from '@glm4v/core';
import MATMUL_WGSL from './matmul.wgsl.js';
import MATMUL_8X8_WGSL from './matmul_8x8.wgsl.js';
import BROADCAST_WGSL from './matmul_broadcast.wgsl.js';
import MATVEC_WGSL from './matvec.wgsl.js';
import { type ActDType, type WeightDType, assertDType, assertShape, prelude, rowsOf, variantTag } from './prelude.js';
import {
  type MatrixShape,
  type SubgroupMatrixPreset,
  matrixShapeFor,
  subgroupMatrixKernel,
} from './matmul_subgroup_matrix.js';
import {
  type KernelShape,
  LINEAR_PARAMS_FIELDS,
  type LinearOptions,
  MATVEC_MAX_ROWS,
  type SplitKPreset,
  broadcastShape,
  checkLinearIO,
  dispatchSplitK,
  needsF16,
  plainIO,
  dispatchTiles,
  prepareLinear,
  swigluTag,
} from './linear-common.js';
import { canBroadcast, canReduceWithSubgroups, isCpuAdapter } from './adapter.js';
import { QuantizedMatrix } from './quant.js';
import { linearQuant } from './matmul_quant.js';

export { MATVEC_MAX_ROWS, type LinearOptions } from './linear-common.js';

/** A linear layer's weight [N, K]: one tensor, row chunks, or block-quantised row chunks (quant.ts). */
export type LinearWeight = Tensor | ChunkedTensor | QuantizedMatrix;

/**
 * The uniform block and bindings 0–4 of the bf16/f16/f32-weight linear kernels, prepended to each (x and y of
 * elements XV and Y: A, except in the split-K matvec, linear-common.ts), and tile_of:
 * the BM × BN tile of y of workgroup (wid, nwg) (tiles numbered wid.x + wid.y · nwg.x for grids above 65535
 * workgroups, grid.ts) as its first row of x, first row of w, and 1 if it is one of p.tiles (else 0: the workgroup
 * returns).
 */
const BINDINGS =
  `struct Params { ${LINEAR_PARAMS_FIELDS} }\n` +
  '@group(0) @binding(0) var<uniform> p: Params;\n' +
  '@group(0) @binding(1) var<storage, read> x: array<XV>;\n' +
  '@group(0) @binding(2) var<storage, read> w: array<WV>;\n' +
  '@group(0) @binding(3) var<storage, read> b: array<WS_b>;\n' +
  '@group(0) @binding(4) var<storage, read_write> y: array<Y>;\n' +
  'fn tile_of(wid: vec3u, nwg: vec3u, bm: u32, bn: u32) -> vec3u {\n' +
  '  let tile = wid.x + wid.y * nwg.x;\n' +
  '  return vec3u((tile / p.tiles_n) * bm, (tile % p.tiles_n) * bn, u32(tile < p.tiles));\n}\n';

export type TiledPreset = { kind: 'tiled'; BM: number; BN: number; BK: number; TM: number; TN: number };
/** 8 × 8 outputs per invocation, (BM / 8) · (BN / 8) invocations, k-tiles 8 deep. */
export type Tiled8Preset = { kind: 'tiled8'; BM: number; BN: number };
/** TM rows of x per workgroup (fewer in the last tile, or for matvec), TN rows of W per invocation. */
export type BroadcastPreset = { kind: 'broadcast'; TM: number; TN: number; WG: number };
export type LinearPreset = TiledPreset | Tiled8Preset | SubgroupMatrixPreset | BroadcastPreset | SplitKPreset;

/** Every variant by name; the name ends the kernel label, e.g. 'matmul_bf16w_f32a_64x64x16'. */
export const LINEAR_PRESETS = {
  /** GPUs with subgroup matrices, M ≥ 64: 128×128 tile over 4 × 2 subgroups, each a 32×64 block of matrices. */
  sm128x128: { kind: 'subgroupMatrix', BM: 128, BN: 128, SGM: 4, SGN: 2 },
  /** Other GPUs, M ≥ 128 with many tiles: 128×128 tile, 8×8 outputs per invocation, 256 invocations. */
  '128x128x8': { kind: 'tiled8', BM: 128, BN: 128 },
  /** Other GPUs, M ≥ 128 with fewer tiles (one more wave of workgroups): 128×64 tile, 8×8 outputs, 128 invocations. */
  '128x64x8': { kind: 'tiled8', BM: 128, BN: 64 },
  /** Other GPUs, 64 ≤ M < 128: 64×64 tile, 4×4 outputs per invocation, 256 invocations. */
  '64x64x16': { kind: 'tiled', BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  /** GPUs, 8 < M < 64: 32×64 tile, 2×4 outputs per invocation, 256 invocations. */
  '32x64x16': { kind: 'tiled', BM: 32, BN: 64, BK: 16, TM: 2, TN: 4 },
  /** GPUs, M ≤ 8: 32 lanes per row of W (a subgroup, fewer where subgroups are smaller), 4 groups of 8 weights
   *  (4 × 16 bytes) per lane per row per step, workgroups of 128; rows per team and K slices from the shape
   *  (matvecPlan, linear-common.ts). */
  sk32u4: { kind: 'splitk', T: 32, U: 4, WG: 128 },
  /** CPU adapters, any M: 8 rows of x (1 when M = 1, label suffix _m1) × 4 rows of W per invocation, workgroups of
   *  32 (on lavapipe, 8 to 64 measure the same at M = 512, and 32–64 best at M = 1). */
  bcast8x4: { kind: 'broadcast', TM: 8, TN: 4, WG: 32 },
} as const satisfies Record<string, LinearPreset>;

export type LinearPresetName = keyof typeof LINEAR_PRESETS;

/** Which variant to run, for tests and benchmarks; linear/matmul/matvec choose it themselves. */
export interface LinearVariant {
  preset?: LinearPresetName;
  /** How 'splitk' adds a team's partial sums. Default: 'subgroup' where the adapter allows it. */
  reduce?: 'subgroup' | 'shared';
  /** 'splitk': ask for this many K slices instead of matvecPlan's choice (whole steps each, so maybe fewer). */
  slices?: number;
  /**
   * Tests on any adapter: the 'subgroupMatrix' kernel with scalar stand-ins for the matrix builtins, this matrix
   * shape and, instead of the preset's, this tile (the stand-ins hold a subgroup's whole block in each invocation).
   */
  emulateMatrix?: { shape: MatrixShape; tile: Omit<SubgroupMatrixPreset, 'kind'> };
}

/** Below this many tiles of 128 × 128, '128x64x8' (twice the workgroups) is chosen over '128x128x8'. */
const MIN_LARGE_TILES = 256;

/**
 * The weight dtype the tensor-core kernel needs here: 'f16' where it runs on f16 operands (bf16 weights are then
 * converted once at load, checked for values beyond f16's range); undefined where it does not run.
 */
export function matmulWeightDType(device: Device): 'f16' | undefined {
  if (isCpuAdapter(device)) return undefined;
  return matrixShapeFor(device, LINEAR_PRESETS.sm128x128)?.operand === 'f16' ? 'f16' : undefined;
}

/** Where the tensor-core kernel can take weights of `wd`: f16 operands need f16 weights, f32 operands take any. */
function canUseMatrixUnits(device: Device, wd: WeightDType | undefined): boolean {
  if (isCpuAdapter(device)) return false;
  const shape = matrixShapeFor(device, LINEAR_PRESETS.sm128x128);
  return shape !== undefined && (shape.operand === 'f32' || wd === 'f16');
}

/**
 * The variant for M rows of x times a weight [N, K] of dtype `weight.dtype`. On CPU adapters with subgroups of
 * ≥ 8 lanes: 'bcast8x4', for matvec and matmul. Elsewhere: 'sk32u4' for matvec; for matmul '32x64x16' below 64
 * rows, then 'sm128x128' where the adapter's matrix units take the weight (f16 weights for f16 operands), else
 * '64x64x16' below 128 rows and from 128 rows '128x128x8', or '128x64x8' when 128 × 128 tiles would number fewer
 * than MIN_LARGE_TILES (a GPU has about 100 compute units to fill).
 */
export function selectLinearPreset(
  device: Device,
  M: number,
  kind: 'matmul' | 'matvec',
  weight: { N?: number; dtype?: WeightDType } = {},
): LinearPresetName {
  if (isCpuAdapter(device) && canBroadcast(device)) return 'bcast8x4';
  if (kind === 'matvec') return 'sk32u4';
  if (M < 64) return '32x64x16';
  if (canUseMatrixUnits(device, weight.dtype)) return 'sm128x128';
  if (M < 128) return '64x64x16';
  const tiles = Math.ceil(M / 128) * Math.ceil((weight.N ?? Infinity) / 128);
  return tiles < MIN_LARGE_TILES ? '128x64x8' : '128x128x8';
}

/**
 * y[..., N] = x[..., K] · Wᵀ (+ b): matvec for M ≤ 8 rows of x, the tiled matmul otherwise; a quantised W goes to
 * the kernels of matmul_quant.ts, which dequantise it in registers. (nn.Linear)
 */
export function linear(g: Graph, x: Tensor, w: LinearWeight, opts: LinearOptions = {}): Tensor {
  return byWeight(g, x, w, opts, rowsOf(x) <= MATVEC_MAX_ROWS ? 'matvec' : 'matmul');
}

/** linear() through the many-row kernels, whatever M. */
export function matmul(g: Graph, x: Tensor, w: LinearWeight, opts: LinearOptions = {}): Tensor {
  return byWeight(g, x, w, opts, 'matmul');
}

/** linear() through the decode kernels; M ≤ 8. */
export function matvec(g: Graph, x: Tensor, w: LinearWeight, opts: LinearOptions = {}): Tensor {
  return byWeight(g, x, w, opts, 'matvec');
}

function byWeight(g: Graph, x: Tensor, w: LinearWeight, opts: LinearOptions, kind: 'matmul' | 'matvec'): Tensor {
  return w instanceof QuantizedMatrix ? linearQuant(g, x, w, opts, kind) : linearVariant(g, x, w, opts, kind);
}

/** linear() with a chosen variant (tests, benchmarks). One dispatch per row chunk of W. */
export function linearVariant(
  g: Graph,
  x: Tensor,
  w: Tensor | ChunkedTensor,
  opts: LinearOptions,
  kind: 'matmul' | 'matvec',
  variant: LinearVariant = {},
): Tensor {
  const m = w instanceof ChunkedTensor ? w : ChunkedTensor.single(w);
  const { M, N, K } = checkArgs(g.device, kind, x, m, opts);
  const emulate = variant.emulateMatrix;
  const name = emulate
    ? `sm${emulate.tile.BM}x${emulate.tile.BN}`
    : (variant.preset ?? selectLinearPreset(g.device, M, kind, { N, dtype: m.dtype as WeightDType }));
  const preset: LinearPreset = emulate
    ? { kind: 'subgroupMatrix', ...emulate.tile }
    : LINEAR_PRESETS[name as LinearPresetName];
  let y: Tensor;
  ({ x, opts, y } = prepareLinear(g, x, opts, kind, preset.kind, { M, N }));
  if (M === 0) return y;
  const act = x.dtype as ActDType;
  const wd = m.dtype as WeightDType;
  const bias = opts.bias;
  const vector = K % 8 === 0;
  const swiglu = Boolean(opts.swiglu);
  const types = { act, wd, bias: bias ? (bias.dtype as WeightDType) : act, vector, swiglu };
  const chunks = m.chunks.map((c) => ({ rows: c.rows, rowStart: c.rowStart, weights: [c.tensor] }));
  if (preset.kind === 'splitk') {
    const reduce = variant.reduce ?? (canReduceWithSubgroups(g.device) ? 'subgroup' : 'shared');
    const source = (io: string, subgroups: boolean) =>
      linearSource({ head: '', io, code: MATVEC_WGSL, subgroups }, types);
    const job = {
      preset,
      name,
      label: `${kind}_${variantTag(wd, act)}_${name}`,
      reduce,
      x,
      y,
      bias,
      M,
      N,
      K,
      chunks,
      source,
      slices: variant.slices,
      swiglu,
    };
    // An 8-weight group (16 bytes of bf16/f16, 32 of f32) is the unit; x8 reads vec4 pairs where K is a multiple of 8.
    dispatchSplitK(g, { ...job, units: Math.ceil(K / 8), unitBytes: wd === 'f32' ? 32 : 16, xVector: vector });
    return y;
  }
  const k = kernelFor(g.device, preset, name, M, emulate?.shape);
  const code = linearSource(k, types);
  // The preset's name, then what the wrapper chose: '_m1' one row of x, '_k1' the per-element weight path (the
  // split-K matvec adds its team, rows per team, reduction and K slices: '_t32r1_sg_s4').
  const label = `${kind}_${variantTag(wd, act)}_${name}${k.suffix}${vector ? '' : '_k1'}${swigluTag(swiglu)}`;
  dispatchTiles(g, { kernel: { label, code }, shape: k, x, y, bias, M, N, K, chunks });
  return y;
}

/**
 * A linear kernel's whole WGSL: its directives, the dtype prelude (b, and w on the per-element path), the weight
 * reader, the element types of x and y and x's reader (`io`, plainIO unless given), BINDINGS, then the kernel.
 * `vector`: K is a multiple of 8 (weights read 8 at a time); `swiglu`: x holds gate | up halves.
 */
export function linearSource(
  k: { head: string; io?: string; code: string; subgroups: boolean },
  t: { act: ActDType; wd: WeightDType; bias: WeightDType; vector: boolean; swiglu?: boolean },
): string {
  const weights: Record<string, WeightDType> = t.vector ? { b: t.bias } : { w: t.wd, b: t.bias };
  return (
    k.head +
    prelude({ act: t.act, weights, subgroups: k.subgroups }) +
    weightReader(t.wd, t.vector) +
    (k.io ?? plainIO(Boolean(t.swiglu))) +
    BINDINGS +
    k.code
  );
}

/** `head`: directives that must precede the prelude. */
type KernelChoice = KernelShape & { head: string; code: string };

function kernelFor(
  device: Device,
  p: Exclude<LinearPreset, SplitKPreset>,
  name: string,
  M: number,
  emulate?: MatrixShape,
): KernelChoice {
  if (p.kind === 'tiled') {
    const WG = (p.BM / p.TM) * (p.BN / p.TN);
    return {
      suffix: '',
      head: '',
      code: MATMUL_WGSL,
      constants: { BM: p.BM, BN: p.BN, BK: p.BK, TM: p.TM, TN: p.TN, WG },
      subgroups: false,
      rowsPerTile: p.BM,
      colsPerTile: p.BN,
    };
  }
  if (p.kind === 'tiled8') {
    const WG = (p.BM / 8) * (p.BN / 8);
    return {
      suffix: '',
      head: '',
      code: MATMUL_8X8_WGSL,
      constants: { BM: p.BM, BN: p.BN, WG },
      subgroups: false,
      rowsPerTile: p.BM,
      colsPerTile: p.BN,
    };
  }
  if (p.kind === 'subgroupMatrix') {
    const k = subgroupMatrixKernel(device, p, name, emulate ? { shape: emulate, emulate: true } : {});
    // The label names the matrix shape and k-tile depth: '_f16m16x16x16_bk16', and '_emulated' for the stand-ins.
    const s = emulate ?? matrixShapeFor(device, p)!;
    const suffix = `_${s.operand}m${s.M}x${s.N}x${s.K}_bk${k.BK}${emulate ? '_emulated' : ''}`;
    return { suffix, head: k.head, code: k.tail, constants: {}, subgroups: true, rowsPerTile: p.BM, colsPerTile: p.BN };
  }
  return { ...broadcastShape(device, p, name, M), head: '', code: BROADCAST_WGSL };
}

/**
 * WGSL reading 8 consecutive weights of a row: struct W8 (weights k+0,2,4,6 in e, k+1,3,5,7 in o), the binding's
 * element type WV, and w8(row, group). Vector form (K a multiple of 8): one vec4<u32> of packed bf16/f16 widened
 * exactly, or two vec4<f32>. Scalar form: load_w per element from the prelude, 0 past K.
 */
function weightReader(wd: WeightDType, vector: boolean): string {
  const head = 'struct W8 { e: vec4f, o: vec4f }\n';
  if (!vector) {
    return (
      head +
      'alias WV = WS_w;\n' +
      'fn wk(base: u32, k: u32) -> f32 { return select(0.0, load_w(base + min(k, p.K - 1u)), k < p.K); }\n' +
      'fn w8(row: u32, g: u32) -> W8 {\n' +
      '  let base = row * p.K;\n  let k = g * 8u;\n' +
      '  return W8(vec4f(wk(base, k), wk(base, k + 2u), wk(base, k + 4u), wk(base, k + 6u)),\n' +
      '            vec4f(wk(base, k + 1u), wk(base, k + 3u), wk(base, k + 5u), wk(base, k + 7u)));\n}\n'
    );
  }
  if (wd === 'bf16') {
    return (
      head +
      'alias WV = vec4<u32>;\n' +
      'fn w8(row: u32, g: u32) -> W8 {\n' +
      '  let v = w[row * (p.K / 8u) + g];\n' +
      '  return W8(bitcast<vec4f>(v << vec4u(16u)), bitcast<vec4f>(v & vec4u(0xffff0000u)));\n}\n'
    );
  }
  if (wd === 'f16') {
    return (
      head +
      'alias WV = vec4<u32>;\n' +
      'fn w8(row: u32, g: u32) -> W8 {\n' +
      '  let v = w[row * (p.K / 8u) + g];\n' +
      '  let a = unpack2x16float(v.x);\n  let b = unpack2x16float(v.y);\n  let c = unpack2x16float(v.z);\n  let d = unpack2x16float(v.w);\n' +
      '  return W8(vec4f(a.x, b.x, c.x, d.x), vec4f(a.y, b.y, c.y, d.y));\n}\n'
    );
  }
  return (
    head +
    'alias WV = vec4<f32>;\n' +
    'fn w8(row: u32, g: u32) -> W8 {\n' +
    '  let i = 2u * (row * (p.K / 8u) + g);\n  let a = w[i];\n  let b = w[i + 1u];\n' +
    '  return W8(vec4f(a.x, a.z, b.x, b.z), vec4f(a.y, a.w, b.y, b.w));\n}\n'
  );
}

function checkArgs(
  device: Device,
  what: string,
  x: Tensor,
  w: ChunkedTensor,
  opts: LinearOptions,
): { M: number; N: number; K: number } {
  assertDType(`${what} weight '${w.label}'`, w.dtype, ['f32', 'f16', 'bf16']);
  const dims = checkLinearIO(device, what, x, w, opts);
  needsF16(device, what, `weight '${w.label}'`, w.dtype);
  for (const c of w.chunks) assertShape(`${what} weight chunk '${c.tensor.label}'`, c.tensor.shape, [c.rows, dims.K]);
  return dims;
}
