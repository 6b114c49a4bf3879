import { type Device, Graph, type Params, Tensor } from '@glm4v/core';
import {
  type AttentionPresetName,
  type KvDType,
  ROW_FIELDS,
  attentionDecode,
  attentionPrefill,
  attentionSegments,
  createKvCache,
  fillRandom,
  rowsTable,
} from '@glm4v/kernels';
import type { KernelCase } from './harness.js';

// Attention at the real model's shapes. Text: 32 query heads, 2 kv heads, head dim 128. Decode reads the whole
// K and V cache per token (memory-bound: bytes = the cache bytes read; a batched step reads each sequence's own
// cache slot); prefill at 2k tokens is compute-bound (causal: 4·S²·D·Hq / 2 flops). Vision: a 1008×1008 image,
// 72×72 = 5184 patches, 12 heads × 128, one segment.
const [HQ, HKV, D] = [32, 2, 128];

// On a CPU adapter the vision case is cut to about this many flops by measuring a subset of its heads (the shape
// label says so): all 12 heads are 4·S²·D·12 = 165 GFLOP, half a minute per run on a busy lavapipe, and the
// harness runs it twice (wall clock, then timestamps). Every head costs the same, so GFLOP/s is unchanged.
// GPUs run all heads.
const VISION_FLOP_BUDGET = 60e9;

async function random(device: Device, dtype: 'f32' | 'f16', shape: number[], seed: number): Promise<Tensor> {
  const t = await Tensor.empty(device, dtype, shape, `x${seed}`);
  const g = new Graph(device, 'bench-attention-fill');
  fillRandom(g, t, seed, 1);
  await g.run();
  g.dispose();
  return t;
}

/** Decode for `rows` sequences of a batch, each `ctx` keys deep in its own cache slot. */
function decodeCase(ctx: number, kv: KvDType, rows = 1): KernelCase {
  const e = kv === 'f16' ? 2 : 4;
  return {
    kernel: 'attention_decode',
    shape: `ctx=${ctx}${rows > 1 ? ` rows=${rows}` : ''}`,
    dtype: `${kv}kv_f32a`,
    bound: 'memory',
    bytes: rows * 2 * HKV * ctx * D * e,
    flops: rows * 4 * HQ * D * ctx,
    async build(device: Device) {
      const cache = await createKvCache(device, HKV, ctx, D, kv, 'bench_kv', rows);
      const fill = new Graph(device, 'bench-attention-fill-cache');
      fillRandom(fill, cache.k, 1, 1);
      fillRandom(fill, cache.v, 2, 1);
      await fill.run();
      fill.dispose();
      const qkv = await random(device, 'f32', [rows, (HQ + 2 * HKV) * D], 3);
      const table = rowsTable(
        Array.from({ length: rows }, (_, slot) => ({ slot, pos: ctx - 1, ropePos: ctx - 1, step: 0 })),
      );
      const rowsT = await Tensor.fromArray(device, 'i32', [rows, ROW_FIELDS], table, 'rows');
      const graph = new Graph(device, 'bench-attention-decode');
      const rope = { rotaryDim: D / 2, theta: 10000 };
      attentionDecode(graph, qkv, cache, {
        numHeads: HQ,
        numKvHeads: HKV,
        headDim: D,
        rows: rowsT,
        maxKeys: (p: Params) => p.maxKeys,
        rope,
      });
      return {
        graph,
        params: { maxKeys: ctx },
        dispose: () => [graph, qkv, rowsT, cache.k, cache.v].forEach((o) => o.dispose()),
      };
    },
  };
}

function prefillCase(s: number, preset?: AttentionPresetName): KernelCase {
  return {
    kernel: preset ? `attention_prefill:${preset}` : 'attention_prefill',
    shape: `S=${s}`,
    dtype: 'f32kv_f32a',
    bound: 'compute',
    bytes: s * (2 * HQ + 4 * HKV) * D * 4,
    flops: (4 * s * s * D * HQ) / 2,
    async build(device: Device) {
      const cache = await createKvCache(device, HKV, s, D, 'f32', 'bench_kv');
      const qkv = await random(device, 'f32', [s, (HQ + 2 * HKV) * D], 1);
      const graph = new Graph(device, 'bench-attention-prefill');
      attentionPrefill(graph, qkv, cache, { numHeads: HQ, numKvHeads: HKV, headDim: D, start: 0, preset });
      return { graph, dispose: () => [graph, qkv, cache.k, cache.v].forEach((o) => o.dispose()) };
    },
  };
}

function visionCase(slice: boolean, s: number, allHeads: number): KernelCase {
  const heads = slice ? Math.min(allHeads, Math.max(1, Math.floor(VISION_FLOP_BUDGET / (4 * s * s * D)))) : allHeads;
  return {
    kernel: 'attention_segments',
    shape: `S=${s} H=${allHeads}${heads < allHeads ? ` (${heads} of ${allHeads} heads, CPU adapter)` : ''}`,
    dtype: 'f32a',
    bound: 'compute',
    bytes: 4 * s * heads * D * 4,
    flops: 4 * s * s * D * heads,
    async build(device: Device) {
      const [q, k, v] = await Promise.all([1, 2, 3].map((seed) => random(device, 'f32', [s, heads * D], seed)));
      const graph = new Graph(device, 'bench-attention-vision');
      attentionSegments(graph, q, k, v, [0, s], { numHeads: heads, headDim: D });
      return { graph, dispose: () => [graph, q, k, v].forEach((o) => o.dispose()) };
    },
  };
}

/** The cases for a device: `slice` (CPU adapters) measures a subset of the vision heads. */
export function cases(slice: boolean): KernelCase[] {
  return [
    decodeCase(1024, 'f32'),
    decodeCase(8192, 'f32'),
    decodeCase(4096, 'f32', 8),
    decodeCase(32768, 'f32'),
    decodeCase(32768, 'f16'),
    prefillCase(2048),
    // GPUs: the workgroup-memory kernel prefill used before flash8x2, for comparison
    ...(slice ? [] : [prefillCase(2048, 'tiled64x16')]),
    visionCase(slice, 5184, 12),
  ];
}
