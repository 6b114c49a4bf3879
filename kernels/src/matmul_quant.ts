// Linear layers over block-quantised weights (quant.ts): y = x · W'ᵀ (+ b), each block's codes dequantised in
// registers (matmul_quant_broadcast.wgsl, matvec_quant.wgsl with matvec_reduce_{subgroup,shared}.wgsl and
// matvec_splitk_sum.wgsl, matmul_quant.wgsl). linear() (matmul.ts) sends a QuantizedMatrix here; the variants mirror the bf16 ones:
// - 'broadcast': CPU adapters (lavapipe), any M: no workgroup memory, x shared by subgroup broadcasts, TN rows of
//   W per invocation. What the software adapter's speed figures measure.
// - 'splitk': decode (M ≤ 8) on GPUs: a team of lanes per row of W, two blocks per lane per step (four 16-byte
//   code loads per row in flight), K split over workgroups where N alone gives too few (linear-common.ts).
// - 'tiled': many rows on GPUs: the W tile dequantised into workgroup memory 32 weights deep.
// Both GPU variants are tested on every machine by forcing them.

import { type Device, type Graph, type Tensor } from '@glm4v/core';
import BROADCAST_WGSL from './matmul_quant_broadcast.wgsl.js';
import MATVEC_WGSL from './matvec_quant.wgsl.js';
import TILED_WGSL from './matmul_quant.wgsl.js';
import { type ActDType, type WeightDType, assertShape, prelude } from './prelude.js';
import {
  type KernelShape,
  LINEAR_PARAMS_FIELDS,
  type LinearOptions,
  type SplitKPreset,
  broadcastShape,
  checkLinearIO,
  dispatchSplitK,
  plainIO,
  dispatchTiles,
  prepareLinear,
  swigluTag,
} from './linear-common.js';
import { canBroadcast, canReduceWithSubgroups, isCpuAdapter } from './adapter.js';
import { type QuantizedMatrix, blocksPerRow, quantReader, rowBytes, wordsPerBlock } from './quant.js';

/**
 * The uniform block and bindings of the three quantised kernels, prepended to each (WQ is each kernel's code word;
 * x and y of elements XV and Y: A, except in the split-K matvec, linear-common.ts).
 */
const QUANT_BINDINGS =
  `struct Params { ${LINEAR_PARAMS_FIELDS} }\n` +
  '@group(0) @binding(0) var<uniform> p: Params;\n' +
  '@group(0) @binding(1) var<storage, read> x: array<XV>;\n' +
  '@group(0) @binding(2) var<storage, read> w: array<WQ>;\n' +
  '@group(0) @binding(3) var<storage, read> s: array<u32>;\n' +
  '@group(0) @binding(4) var<storage, read> b: array<WS_b>;\n' +
  '@group(0) @binding(5) var<storage, read_write> y: array<Y>;\n';

/** BK is 32 weights (one code load per invocation per step), fixed in matmul_quant.wgsl. */
export type QuantTiledPreset = { kind: 'tiled'; BM: number; BN: number; TM: number; TN: number };
export type QuantBroadcastPreset = { kind: 'broadcast'; TM: number; TN: number; WG: number };
export type QuantLinearPreset = QuantTiledPreset | QuantBroadcastPreset | SplitKPreset;

/** Every variant by name; the name ends the kernel label, e.g. 'matvec_q4w_f32a_bcast8x4_m1'. */
export const QUANT_LINEAR_PRESETS = {
  /** GPUs, M ≥ 64: 64×64 tile, 4×4 outputs per invocation, 256 invocations, one 8-weight code load each per step. */
  '64x64x32': { kind: 'tiled', BM: 64, BN: 64, TM: 4, TN: 4 },
  /** GPUs, 8 < M < 64: 32×64 tile, 2×4 outputs per invocation. */
  '32x64x32': { kind: 'tiled', BM: 32, BN: 64, TM: 2, TN: 4 },
  /** GPUs, M ≤ 8: 32 lanes per row of W, 2 blocks (2 × 32 bytes of codes) per lane per row per step, workgroups
   *  of 128; rows per team and K slices from the shape (matvecPlan, linear-common.ts). */
  sk32u2: { kind: 'splitk', T: 32, U: 2, WG: 128 },
  /** CPU adapters, any M: 8 rows of x (1 when M = 1) × 4 rows of W per invocation, workgroups of 32. */
  bcast8x4: { kind: 'broadcast', TM: 8, TN: 4, WG: 32 },
} as const satisfies Record<string, QuantLinearPreset>;

export type QuantPresetName = keyof typeof QUANT_LINEAR_PRESETS;

export interface QuantLinearVariant {
  preset?: QuantPresetName;
  /** How 'splitk' adds a team's partial sums. Default: 'subgroup' where the adapter allows it. */
  reduce?: 'subgroup' | 'shared';
  /** 'splitk': ask for this many K slices instead of matvecPlan's choice. */
  slices?: number;
}

/** As selectLinearPreset (matmul.ts): broadcast on CPU adapters with 8-lane subgroups, else split-K or tiled. */
export function selectQuantPreset(device: Device, M: number, kind: 'matmul' | 'matvec'): QuantPresetName {
  if (isCpuAdapter(device) && canBroadcast(device)) return 'bcast8x4';
  if (kind === 'matvec') return 'sk32u2';
  return M < 64 ? '32x64x32' : '64x64x32';
}

/** linear() over a quantised W, through the matvec or matmul kernels (or a forced variant). One dispatch per chunk. */
export function linearQuant(
  g: Graph,
  x: Tensor,
  w: QuantizedMatrix,
  opts: LinearOptions,
  kind: 'matmul' | 'matvec',
  variant: QuantLinearVariant = {},
): Tensor {
  const { M, N, K } = checkQuantArgs(g.device, kind, x, w, opts);
  const name = variant.preset ?? selectQuantPreset(g.device, M, kind);
  const preset: QuantLinearPreset = QUANT_LINEAR_PRESETS[name];
  let y: Tensor;
  ({ x, opts, y } = prepareLinear(g, x, opts, kind, preset.kind, { M, N }));
  if (M === 0) return y;
  const swiglu = Boolean(opts.swiglu);
  const act = x.dtype as ActDType;
  const bias = opts.bias;
  const chunks = w.chunks.map((c) => ({ rows: c.rows, rowStart: c.rowStart, weights: [c.data, c.scales] }));
  const head = (subgroups: boolean) =>
    prelude({ act, weights: { b: bias ? (bias.dtype as WeightDType) : act }, subgroups }) +
    quantReader(w.layout, { dequant: preset.kind === 'tiled' });
  const label = `${kind}_${w.layout.name}w_${act}a_${name}${swigluTag(swiglu)}`;
  if (preset.kind === 'splitk') {
    const reduce = variant.reduce ?? (canReduceWithSubgroups(g.device) ? 'subgroup' : 'shared');
    const source = (io: string, subgroups: boolean) => head(subgroups) + io + QUANT_BINDINGS + MATVEC_WGSL;
    // A block (32 bytes of codes, two 16-byte loads) is the unit; x8 reads vec4 pairs where K is a multiple of 8.
    const units = { units: blocksPerRow(w.layout, K), unitBytes: 4 * wordsPerBlock(w.layout), xVector: K % 8 === 0 };
    dispatchSplitK(g, {
      preset,
      name,
      label,
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
      ...units,
    });
    return y;
  }
  const k = kernelFor(g.device, preset, name, M);
  const code = head(k.subgroups) + plainIO(swiglu) + QUANT_BINDINGS + k.code;
  dispatchTiles(g, { kernel: { label: label + k.suffix, code }, shape: k, x, y, bias, M, N, K, chunks });
  return y;
}

type KernelChoice = KernelShape & { code: string };

function kernelFor(device: Device, p: Exclude<QuantLinearPreset, SplitKPreset>, name: string, M: number): KernelChoice {
  if (p.kind === 'tiled') {
    const WG = (p.BM / p.TM) * (p.BN / p.TN);
    return {
      suffix: '',
      code: TILED_WGSL,
      constants: { BM: p.BM, BN: p.BN, TM: p.TM, TN: p.TN, WG },
      subgroups: false,
      rowsPerTile: p.BM,
      colsPerTile: p.BN,
    };
  }
  return { ...broadcastShape(device, p, name, M), code: BROADCAST_WGSL };
}

function checkQuantArgs(
  device: Device,
  what: string,
  x: Tensor,
  w: QuantizedMatrix,
  opts: LinearOptions,
): { M: number; N: number; K: number } {
  const dims = checkLinearIO(device, what, x, w, opts);
  const b = rowBytes(w.layout, dims.K);
  for (const c of w.chunks) {
    assertShape(`${what} weight chunk '${c.data.label}'`, c.data.shape, [c.rows, b.data / 4]);
    assertShape(`${what} weight chunk '${c.scales.label}'`, c.scales.shape, [c.rows, b.scales / 2]);
  }
  return dims;
}
