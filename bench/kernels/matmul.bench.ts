import { ChunkedTensor, type Device, Graph, Tensor } from '@glm4v/core';
import {
  LINEAR_PRESETS,
  type LinearPreset,
  type LinearPresetName,
  type MatvecPlan,
  fillRandom,
  linear,
  linearVariant,
  matvecPlan,
  selectLinearPreset,
} from '@glm4v/kernels';
import {
  type MatrixShape,
  matrixShapeFor,
  maxSubgroupSize,
  subgroupMatrixBytes,
  subgroupMatrixDepth,
} from '@glm4v/kernels';
import type { KernelCase } from './harness.js';

// The decoder's linear layers with bf16 weights as in the checkpoint, K → N: q/k/v/o 4096 → 4096,
// gate_up_proj 4096 → 27392, down_proj 13696 → 4096, lm_head 4096 → 151552 (1.24 GB: ten row chunks on a
// 128 MiB binding limit). Decode is matvec (M = 1), prefill matmul (M = 512, 2048).
export const SHAPES: [number, number][] = [
  [4096, 4096],
  [4096, 27392],
  [13696, 4096],
  [4096, 151552],
];
// Decode adds k_proj and v_proj, 4096 → 256 (2 KV heads of 128): too few rows alone to fill a GPU (split-K).
export const DECODE_SHAPES: [number, number][] = [...SHAPES, [4096, 256]];

// On a CPU adapter a matmul run is cut to at most about this many flops by measuring a subset of the output columns
// (whole 256-column blocks; the shape label says so), so that a full bench stays within minutes on lavapipe
// (~20–25 GFLOP/s): M = 2048 × 4096 → 151552 alone is 2.5 TFLOP. Every column costs the same there, so GFLOP/s is
// unchanged. GPUs run whole shapes: a slice would be under one wave of workgroups.
export const MATMUL_FLOP_BUDGET = 10e9;

/** Output columns of a matmul case: all N, or with `slice` whole 256-column blocks within the flop budget. */
export function benchColumns(slice: boolean, M: number, K: number, N: number, budget = MATMUL_FLOP_BUDGET): number {
  return slice ? Math.min(N, Math.max(256, Math.floor(budget / (2 * M * K) / 256) * 256)) : N;
}

interface Options {
  act?: 'f32' | 'f16';
  /** Force a variant instead of the one linear() picks on this device. */
  preset?: LinearPresetName;
  /** Flops per matmul run on a CPU adapter (default MATMUL_FLOP_BUDGET). */
  flops?: number;
  /** Weight dtype (default bf16, as in the checkpoint). */
  wd?: 'bf16' | 'f16';
  /** The kernel runs on the matrix units (judged against their throughput). */
  matrix?: boolean;
}

// f16 activations still multiply and accumulate in f32, so the dtype tag keeps those cases on the f32 FMA ceiling.
const dtypeTag = (act: 'f32' | 'f16', wd: 'bf16' | 'f16' = 'bf16') =>
  act === 'f16' ? `${wd}w_f16a_f32acc` : `${wd}w_f32a`;

async function build(device: Device, M: number, K: number, N: number, opts: Options, label: string) {
  const act = opts.act ?? 'f32';
  const w = await ChunkedTensor.empty(device, opts.wd ?? 'bf16', [N, K], label);
  const fill = new Graph(device, `bench-${label}-fill`);
  fillRandom(fill, w, 1, 0.02);
  await fill.run();
  fill.dispose();
  const x = await Tensor.empty(device, act, [M, K], 'x');
  const fx = new Graph(device, `bench-${label}-fill-x`);
  fillRandom(fx, x, 2, 1);
  await fx.run();
  fx.dispose();
  const graph = new Graph(device, `bench-${label}`);
  const kind = M <= 8 ? 'matvec' : 'matmul';
  if (opts.preset) linearVariant(graph, x, w, {}, kind, { preset: opts.preset });
  else linear(graph, x, w);
  return { graph, dispose: () => [graph, x, w].forEach((o) => o.dispose()) };
}

function matvecCase(K: number, N: number, opts: Options = {}): KernelCase {
  const act = opts.act ?? 'f32';
  const a = act === 'f16' ? 2 : 4;
  return {
    kernel: opts.preset ? `matvec:${opts.preset}` : 'matvec',
    shape: `${K}→${N}`,
    dtype: dtypeTag(act),
    bound: 'memory',
    bytes: N * K * 2 + K * a + N * a,
    flops: 2 * N * K,
    build: (device) => build(device, 1, K, N, opts, 'matvec_w'),
  };
}

function matmulCase(slice: boolean, M: number, K: number, N: number, opts: Options = {}): KernelCase {
  const act = opts.act ?? 'f32';
  const a = act === 'f16' ? 2 : 4;
  const cols = benchColumns(slice, M, K, N, opts.flops);
  return {
    kernel: opts.preset ? `matmul:${opts.preset}` : 'matmul',
    shape: `M=${M} ${K}→${N}${cols < N ? ` (${cols} of ${N} cols, CPU adapter)` : ''}`,
    dtype: dtypeTag(act, opts.wd),
    bound: opts.matrix ? 'matrix' : 'compute',
    bytes: cols * K * 2 + M * K * a + M * cols * a,
    flops: 2 * M * cols * K,
    build: (device) => build(device, M, K, cols, opts, 'matmul_w'),
  };
}

/**
 * The cases for a device: `slice` (CPU adapters) cuts matmuls to MATMUL_FLOP_BUDGET. Where the adapter has subgroup
 * matrices with f16 operands, linear() takes f16 weights (converted at load), so the matmul cases use them too.
 */
export function cases(device: Device, slice: boolean): KernelCase[] {
  const shape = matrixShapeFor(device, LINEAR_PRESETS.sm128x128);
  const wd = shape?.operand === 'f16' ? 'f16' : 'bf16';
  const mm = (M: number, K: number, N: number, opts: Options = {}) => {
    const preset = opts.preset ?? selectLinearPreset(device, M, 'matmul', { N, dtype: wd });
    return matmulCase(slice, M, K, N, { wd, ...opts, matrix: preset === 'sm128x128' });
  };
  return [
    ...DECODE_SHAPES.map(([K, N]) => matvecCase(K, N)),
    matvecCase(4096, 4096, { act: 'f16' }),
    ...[512, 2048].flatMap((M) => SHAPES.map(([K, N]) => mm(M, K, N))),
    mm(512, 4096, 4096, { act: 'f16' }),
    mm(2048, 4096, 4096, { act: 'f16' }),
    // The vision tower's widest matmul: 5184 patches (a 1008×1008 image) through mlp.down_proj, 4096 → 1536.
    mm(5184, 4096, 1536),
    // The variants linear() picks on GPUs, for comparison where they are not the default (kept small on a CPU
    // adapter: there the tiled kernels run at a fifth of the broadcast kernel's speed).
    ...DECODE_SHAPES.map(([K, N]) => matvecCase(K, N, { preset: 'sk32u4' })),
    ...(['128x128x8', '128x64x8', '64x64x16'] as const).map((preset) =>
      mm(512, 4096, 4096, { preset, flops: 1e9, wd: 'bf16' }),
    ),
  ];
}

/** One GEMM tile's device-independent figures (bench:kernels prints them beside the timings). */
export interface TileFigures {
  preset: string;
  /** BM×BN×BK, and the matrix shape for subgroup matrices. */
  tile: string;
  /** Outputs per invocation (register blocks), or result matrices per subgroup. */
  perThread: string;
  invocations: number;
  workgroupBytes: number;
  /** Workgroup-memory bytes read per flop in the inner loop, and written per flop when the tiles are staged. */
  readPerFlop: number;
  writePerFlop: number;
}

// The matrix shape the subgroup-matrix figures assume where the adapter has none (NVIDIA's and AMD's f16 one, with
// 32 KiB of workgroup memory and subgroups of 32).
const REFERENCE_SHAPE: MatrixShape = { operand: 'f16', M: 16, N: 16, K: 16 };

/** Every workgroup-memory GEMM preset's tile, memory and traffic per flop (2 flops per multiply-add). */
export function gemmTiles(device: Device): TileFigures[] {
  const out: TileFigures[] = [];
  for (const [name, p] of Object.entries(LINEAR_PRESETS) as [string, LinearPreset][]) {
    if (p.kind === 'tiled') {
      out.push({
        preset: name,
        tile: `${p.BM}×${p.BN}×${p.BK}`,
        perThread: `${p.TM}×${p.TN}`,
        invocations: (p.BM / p.TM) * (p.BN / p.TN),
        workgroupBytes: 4 * p.BK * (p.BM + 1 + p.BN + 1),
        readPerFlop: (4 * (p.TM + p.TN)) / (2 * p.TM * p.TN), // scalar loads: TM of x, TN of w per k
        writePerFlop: (4 * (p.BM + p.BN)) / (2 * p.BM * p.BN),
      });
    } else if (p.kind === 'tiled8') {
      out.push({
        preset: name,
        tile: `${p.BM}×${p.BN}×8`,
        perThread: '8×8',
        invocations: (p.BM / 8) * (p.BN / 8),
        workgroupBytes: 2 * 8 * 4 * (p.BM + p.BN), // double-buffered
        readPerFlop: (4 * 16) / (2 * 64), // 4 vec4 loads per k for 64 multiply-adds
        writePerFlop: (4 * (p.BM + p.BN)) / (2 * p.BM * p.BN),
      });
    } else if (p.kind === 'subgroupMatrix') {
      const own = matrixShapeFor(device, p);
      const s = own ?? REFERENCE_SHAPE;
      const e = s.operand === 'f16' ? 2 : 4;
      const [RM, RN] = [p.BM / p.SGM / s.M, p.BN / p.SGN / s.N];
      const BK = subgroupMatrixDepth(p, s, own ? device.limits.maxComputeWorkgroupStorageSize : 32768)!;
      out.push({
        preset: name,
        tile: `${p.BM}×${p.BN}×${BK}, ${s.operand} ${s.M}×${s.N}×${s.K}${own ? '' : ' (not on this adapter)'}`,
        perThread: `${RM}×${RN} matrices / subgroup`,
        invocations: p.SGM * p.SGN * (own ? maxSubgroupSize(device) : 32),
        workgroupBytes: subgroupMatrixBytes(p, s, BK),
        readPerFlop: (e * s.K * (RM * s.M + RN * s.N)) / (2 * RM * RN * s.M * s.N * s.K), // RM left and RN right matrices per k-step
        writePerFlop: (e * (p.BM + p.BN)) / (2 * p.BM * p.BN),
      });
    }
  }
  return out;
}

/** One matvec variant's launch at one decode shape (bench:kernels prints them beside the GEMM tiles). */
export interface MatvecFigures {
  variant: string;
  weight: string;
  shape: string;
  workgroups: number;
  /** Bytes of W each workgroup has loaded before it uses the first: one step of every lane. */
  bytesInFlight: number;
  /** Rows of W per team (split-K) or per invocation (broadcast), and K slices. */
  rows: number;
  slices: number;
}

/** Subgroup size the split-K figures assume: NVIDIA's 32 (AMD's wave64 still gets teams of 32 lanes). */
export const REFERENCE_SUBGROUP = 32;

/**
 * The two rows of one weight at one decode shape K→N: the broadcast variant (WG invocations, each TN rows of W and
 * one 16-byte load per row per step) and the split-K one as `plan` launches it.
 */
export function matvecRows(
  weight: string,
  [K, N]: readonly [number, number],
  b: { WG: number; TN: number },
  splitK: { name: string; plan: MatvecPlan },
): MatvecFigures[] {
  const shape = `${K}→${N}`;
  const p = splitK.plan;
  return [
    {
      variant: 'bcast8x4',
      weight,
      shape,
      workgroups: Math.ceil(N / (b.WG * b.TN)),
      bytesInFlight: b.WG * b.TN * 16,
      rows: b.TN,
      slices: 1,
    },
    {
      variant: splitK.name,
      weight,
      shape,
      workgroups: p.workgroups,
      bytesInFlight: p.bytesInFlight,
      rows: p.R,
      slices: p.slices,
    },
  ];
}

/** The bf16 matvec variants at the decode shapes, all rows of W in one chunk, on a GPU with subgroups of 32. */
export function matvecFigures(): MatvecFigures[] {
  return DECODE_SHAPES.flatMap(([K, N]) =>
    matvecRows('bf16', [K, N], LINEAR_PRESETS.bcast8x4, {
      name: 'sk32u4',
      plan: matvecPlan(LINEAR_PRESETS.sk32u4, REFERENCE_SUBGROUP, N, K / 8, 16),
    }),
  );
}
