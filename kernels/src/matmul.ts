// Linear layers y = x · Wᵀ (+ b) with W as stored in the checkpoint, [N, K] (matmul.wgsl, matmul_broadcast.wgsl,
// matvec.wgsl with matvec_reduce_subgroup.wgsl or matvec_reduce_shared.wgsl).
//
// Variants, all accumulating in f32:
// - 'tiled' (matmul.wgsl): workgroup-memory tiles with a register block per invocation, for many rows on GPUs.
// - 'splitk' (matvec.wgsl): decode (M ≤ 8) on GPUs; a team of lanes reads each row of W contiguously with wide
//   loads and adds its partial sums with subgroup shuffles, or through workgroup memory without subgroups.
// - 'broadcast' (matmul_broadcast.wgsl): CPU adapters (lavapipe), for both. There every lane's load is a scalar
//   load per lane and barriers are expensive, so it uses no workgroup memory: each invocation keeps its own rows of
//   W in registers and x values are shared by subgroup broadcasts. Measured on lavapipe at 4096×4096 bf16: about
//   3× the tiled kernel's GFLOP/s at M = 512, and twice the split-K kernel's GB/s at M = 1.
// Weights are read 8 at a time (one vec4<u32> of packed bf16/f16, or two vec4<f32>) when K is a multiple of 8;
// otherwise rows of a 16-bit matrix straddle u32 words and a per-element reader (load_w) takes over.

import { ChunkedTensor, type Device, type Graph, InputError, type Tensor } from '@glm4v/core';
import MATMUL_WGSL from './matmul.wgsl.js';
import BROADCAST_WGSL from './matmul_broadcast.wgsl.js';
import MATVEC_WGSL from './matvec.wgsl.js';
import { type ActDType, type WeightDType, assertDType, assertShape, prelude, rowsOf, variantTag } from './prelude.js';
import { grid1d } from './grid.js';
import { type KernelShape, LINEAR_PARAMS, LINEAR_PARAMS_FIELDS, type LinearOptions, MATVEC_MAX_ROWS, broadcastShape, canBroadcast, canReduceWithSubgroups, checkLinearIO, isCpuAdapter, needsF16, splitKShape } from './linear-common.js';
import { QuantizedMatrix } from './quant.js';
import { linearQuant } from './matmul_quant.js';

export { MATVEC_MAX_ROWS, canBroadcast, isCpuAdapter, type LinearOptions } from './linear-common.js';

/** A linear layer's weight [N, K]: one tensor, row chunks, or block-quantised row chunks (quant.ts). */
export type LinearWeight = Tensor | ChunkedTensor | QuantizedMatrix;

/** The uniform block and bindings 0–4 of matmul.wgsl, matvec.wgsl and matmul_broadcast.wgsl, prepended to each. */
const BINDINGS =
  `struct Params { ${LINEAR_PARAMS_FIELDS} }\n` +
  '@group(0) @binding(0) var<uniform> p: Params;\n' +
  '@group(0) @binding(1) var<storage, read> x: array<A>;\n' +
  '@group(0) @binding(2) var<storage, read> w: array<WV>;\n' +
  '@group(0) @binding(3) var<storage, read> b: array<WS_b>;\n' +
  '@group(0) @binding(4) var<storage, read_write> y: array<A>;\n';

export type TiledPreset = { kind: 'tiled'; BM: number; BN: number; BK: number; TM: number; TN: number };
/** TM rows of x per workgroup (fewer in the last tile, or for matvec), TN rows of W per invocation. */
export type BroadcastPreset = { kind: 'broadcast'; TM: number; TN: number; WG: number };
/** T lanes per row of W (lowered to the smallest subgroup size when reducing with subgroups), R rows per team. */
export type SplitKPreset = { kind: 'splitk'; T: number; R: number; WG: number };
export type LinearPreset = TiledPreset | BroadcastPreset | SplitKPreset;

/** Every variant by name; the name ends the kernel label, e.g. 'matmul_bf16w_f32a_64x64x16'. */
export const LINEAR_PRESETS = {
  /** GPUs, M ≥ 64: 64×64 tile, 4×4 outputs per invocation, 256 invocations. */
  '64x64x16': { kind: 'tiled', BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  /** GPUs, 8 < M < 64: 32×64 tile, 2×4 outputs per invocation, 256 invocations. */
  '32x64x16': { kind: 'tiled', BM: 32, BN: 64, BK: 16, TM: 2, TN: 4 },
  /** GPUs, M ≤ 8: 32 lanes per row of W, 2 rows per team, 4 teams per workgroup. */
  sk32x2: { kind: 'splitk', T: 32, R: 2, WG: 128 },
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
}

/**
 * The variant for M rows of x. On CPU adapters with subgroups of ≥ 8 lanes: 'bcast8x4', for matvec and matmul.
 * Elsewhere: 'sk32x2' for matvec, and for matmul '32x64x16' below 64 rows, '64x64x16' from 64 rows.
 */
export function selectLinearPreset(device: Device, M: number, kind: 'matmul' | 'matvec'): LinearPresetName {
  if (isCpuAdapter(device) && canBroadcast(device)) return 'bcast8x4';
  if (kind === 'matvec') return 'sk32x2';
  return M < 64 ? '32x64x16' : '64x64x16';
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
export function linearVariant(g: Graph, x: Tensor, w: Tensor | ChunkedTensor, opts: LinearOptions, kind: 'matmul' | 'matvec', variant: LinearVariant = {}): Tensor {
  const m = w instanceof ChunkedTensor ? w : ChunkedTensor.single(w);
  const { M, N, K } = checkArgs(g.device, kind, x, m, opts);
  const name = variant.preset ?? selectLinearPreset(g.device, M, kind);
  const preset: LinearPreset = LINEAR_PRESETS[name];
  if ((kind === 'matvec' || preset.kind === 'splitk') && M > MATVEC_MAX_ROWS) {
    throw new InputError(`${kind}: x '${x.label}' [${x.shape.join(', ')}] has ${M} rows; at most ${MATVEC_MAX_ROWS} go through matvec`);
  }
  const y = opts.out ?? g.tensor(x.dtype, [...x.shape.slice(0, -1), N], `${kind}_out`);
  if (M === 0) return y;
  const act = x.dtype as ActDType;
  const wd = m.dtype as WeightDType;
  const bias = opts.bias;
  const vector = K % 8 === 0;
  const reduce = variant.reduce ?? (canReduceWithSubgroups(g.device) ? 'subgroup' : 'shared');
  const k = kernelFor(g.device, preset, name, reduce, M);
  const code =
    prelude({ act, weights: vector ? { b: bias ? bias.dtype as WeightDType : act } : { w: wd, b: bias ? bias.dtype as WeightDType : act }, subgroups: k.subgroups }) +
    weightReader(wd, vector) +
    BINDINGS +
    k.code;
  // The preset's name, then what the wrapper chose: '_m1' one row of x, '_t8_sg' team size and reduction, '_k1'
  // the per-element weight path.
  const label = `${kind}_${variantTag(wd, act)}_${name}${k.suffix}${vector ? '' : '_k1'}`;
  for (const c of m.chunks) {
    const tilesN = Math.ceil(c.rows / k.colsPerTile);
    const tiles = tilesN * Math.ceil(M / k.rowsPerTile);
    g.dispatch({
      kernel: { label, code, constants: k.constants },
      uniforms: { layout: LINEAR_PARAMS, values: { M, N, K, rows: c.rows, col0: c.rowStart, tiles_n: tilesN, tiles, has_bias: bias ? 1 : 0 } },
      // Without a bias, x stands in for the unused binding.
      inputs: [x, c.tensor, bias ?? x],
      outputs: [y],
      workgroups: grid1d(g.device, tiles),
    });
  }
  return y;
}

type KernelChoice = KernelShape & { code: string };

function kernelFor(device: Device, p: LinearPreset, name: string, reduce: 'subgroup' | 'shared', M: number): KernelChoice {
  if (p.kind === 'tiled') {
    const WG = (p.BM / p.TM) * (p.BN / p.TN);
    return { suffix: '', code: MATMUL_WGSL, constants: { BM: p.BM, BN: p.BN, BK: p.BK, TM: p.TM, TN: p.TN, WG }, subgroups: false, rowsPerTile: p.BM, colsPerTile: p.BN };
  }
  if (p.kind === 'broadcast') return { ...broadcastShape(device, p, name, M), code: BROADCAST_WGSL };
  const k = splitKShape(device, p, name, reduce);
  return { ...k, code: MATVEC_WGSL + k.reduceWgsl };
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

function checkArgs(device: Device, what: string, x: Tensor, w: ChunkedTensor, opts: LinearOptions): { M: number; N: number; K: number } {
  assertDType(`${what} weight '${w.label}'`, w.dtype, ['f32', 'f16', 'bf16']);
  const dims = checkLinearIO(device, what, x, w, opts);
  needsF16(device, what, `weight '${w.label}'`, w.dtype);
  for (const c of w.chunks) assertShape(`${what} weight chunk '${c.tensor.label}'`, c.tensor.shape, [c.rows, dims.K]);
  return dims;
}
