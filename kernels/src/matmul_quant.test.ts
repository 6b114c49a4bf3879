// The quantised linear kernels against float64 on the dequantised weights: the codes and scales come from the host
// quantiser, the reference multiplies by dequantizeRows() exactly, so the only difference left is f32 rounding.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, Graph, InputError, Tensor } from '@glm4v/core';
import { TOLERANCE, asStored, expectClose, normal, poisoned } from '@glm4v/core/testing';
import type { ActDType, WeightDType } from './prelude.js';
import { linear, matmul, matvec } from './matmul.js';
import { canBroadcast, minSubgroupSize } from './adapter.js';
import { type QuantLinearVariant, QUANT_LINEAR_PRESETS, linearQuant, selectQuantPreset } from './matmul_quant.js';
import { QUANT_FORMATS, type QuantFormat, QuantizedMatrix, blocksPerRow, rowBytes } from './quant.js';
import { dequantizeRows, quantizeRows } from './quantize.js';
import { matvecPlan } from './linear-common.js';
import { linearInput, linearRef, scaleOf } from './test-util/linear-ref.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

type Fn = 'linear' | 'matmul' | 'matvec';
interface Case {
  M: number;
  N: number;
  K: number;
  format: QuantFormat;
  act?: ActDType;
  bias?: WeightDType;
  fn?: Fn;
  variant?: QuantLinearVariant;
  /** Split W into chunks of this many rows. */
  chunkRows?: number;
  /** x is [M, 2K], gate | up; the layer multiplies silu(gate) · up. */
  swiglu?: boolean;
}

/** Runs one case against float64; returns the dispatches it recorded (row chunks, plus the split-K second pass). */
async function check(c: Case): Promise<number> {
  const { M, N, K, format, act = 'f32', fn = 'linear' } = c;
  const layout = QUANT_FORMATS[format];
  const seed = M * 7919 + N * 31 + K;
  const xs = asStored(act, normal(M * K * (c.swiglu ? 2 : 1), seed));
  const xin = linearInput(xs, M, K, c.swiglu);
  const q = quantizeRows(layout, normal(N * K, seed + 1, 0.05), N, K, 'w');
  const ws = dequantizeRows(layout, q, N, K);
  const bs = c.bias ? asStored(c.bias, normal(N, seed + 2)) : undefined;
  const x = await Tensor.fromArray(device, act, [M, c.swiglu ? 2 * K : K], xs, 'x');
  const maxChunk = c.chunkRows
    ? c.chunkRows * Math.max(rowBytes(layout, K).data, rowBytes(layout, K).scales)
    : Infinity;
  const w = await QuantizedMatrix.fromHost(device, layout, [N, K], q, 'w', maxChunk);
  if (c.chunkRows) expect(w.chunks.length).toBe(Math.ceil(N / c.chunkRows));
  const b = bs ? await Tensor.fromArray(device, c.bias!, [N], bs, 'b') : undefined;
  const out = await poisoned(device, act, [M, N]);
  const g = new Graph(device);
  const opts = { bias: b, out, swiglu: c.swiglu };
  const y = c.variant
    ? linearQuant(g, x, w, opts, fn === 'matvec' ? 'matvec' : 'matmul', c.variant)
    : { linear, matmul, matvec }[fn](g, x, w, opts);
  expect(y).toBe(out);
  await g.run();
  const what = `${fn} ${c.variant?.preset ?? 'default'}${c.variant?.reduce ? `/${c.variant.reduce}` : ''} ${format}w ${act}a${c.bias ? ` +${c.bias} bias` : ''} M=${M} N=${N} K=${K}${c.swiglu ? ' swiglu' : ''}${c.chunkRows ? ` chunks of ${c.chunkRows}` : ''}`;
  expectClose(await out.read(), linearRef(xin, ws, bs, M, N, K), TOLERANCE[act], what, scaleOf(xin, ws, bs, M, N, K));
  const dispatches = g.stats.dispatches;
  g.dispose();
  for (const t of [x, w, b, out]) t?.dispose();
  return dispatches;
}

// [N, K]: K a multiple of the block, and not (1, 7, 127, 4097: a short last block of padding codes).
const SHAPES: [number, number][] = [
  [1, 1],
  [3, 7],
  [17, 127],
  [127, 64],
  [4097, 32],
  [7, 4097],
];
const FORMATS = Object.keys(QUANT_FORMATS) as QuantFormat[];
// The first case of a split-K pipeline compiles it: lavapipe takes 10–40 s per q4 pipeline on a busy machine.
const COMPILE_MS = 300_000;

describe.each(FORMATS)('%s: linear over rows, shapes and bias (the default variant)', (format) => {
  for (const M of [1, 3, 8, 9, 130]) {
    it(`M = ${M}`, async () => {
      for (const [i, [N, K]] of SHAPES.entries()) await check({ M, N, K, format, bias: i % 2 ? 'f32' : undefined });
    });
  }
});

describe.each(FORMATS)('%s: every variant', (format) => {
  // The GPU variants run here too (forced), so a CPU adapter checks their indexing and tails; each family meets a K
  // that is a multiple of the block and one that is not.
  const variants: [Fn, QuantLinearVariant][] = [
    ['matmul', { preset: '64x64x32' }],
    ['matmul', { preset: '32x64x32' }],
  ];
  for (const [fn, variant] of variants) {
    it(`${variant.preset}${variant.reduce ? ` (${variant.reduce} reduction)` : ''}`, async (ctx) => {
      if (variant.reduce === 'subgroup' && !device.has('subgroups')) return ctx.skip('the adapter lacks subgroups');
      for (const M of [1, 9, 130]) {
        for (const [N, K] of [
          [17, 127],
          [130, 64],
          [65, 100],
          [9, 1100],
        ])
          await check({ M, N, K, format, fn, variant, bias: M === 9 ? 'f32' : undefined });
      }
    });
  }
  // The CPU-adapter kernel, forced so GPUs (which default to the ones above) run it too.
  it('bcast8x4 (forced)', async (ctx) => {
    if (!canBroadcast(device)) return ctx.skip('the adapter lacks subgroups of 8 or more');
    for (const M of [1, 9]) {
      for (const [N, K] of [
        [17, 127],
        [130, 63],
        [37, 64],
      ])
        await check({
          M,
          N,
          K,
          format,
          fn: 'matmul',
          variant: { preset: 'bcast8x4' },
          bias: M === 9 ? 'f32' : undefined,
        });
    }
  });
});

describe.each(FORMATS)('%s: split-K matvec sk32u2 (forced)', (format) => {
  // The GPU decode kernel on this adapter. With subgroups of 8 (lavapipe) a team is 8 lanes and a step 8 · 2
  // blocks, so K = 4097 (a short last block of padding codes) and 2048 have several steps and small N splits K into
  // slices (a second pass); N ≥ 8192 gives two rows per team. Each case checks the dispatches against matvecPlan.
  const layout = QUANT_FORMATS[format];
  const sub: QuantLinearVariant = { preset: 'sk32u2', reduce: 'subgroup' };
  const planned = (N: number, K: number, v: QuantLinearVariant, T: number) =>
    matvecPlan(QUANT_LINEAR_PRESETS.sk32u2, T, N, blocksPerRow(layout, K), 32, v.slices);
  const T = () => Math.min(32, minSubgroupSize(device) || 32);
  for (const M of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`M = ${M}: N and K small and large, K split where N is small`, { timeout: COMPILE_MS }, async (ctx) => {
      if (!device.has('subgroups')) return ctx.skip('the adapter lacks subgroups');
      for (const [i, [N, K]] of (
        [
          [1, 1],
          [7, 4097],
          [256, 2048],
          [130, 100],
          [8200, 40],
        ] as const
      ).entries()) {
        const n = await check({ M, N, K, format, fn: 'matvec', variant: sub, bias: i % 2 ? 'f32' : undefined });
        expect(n, `N=${N} K=${K}`).toBe(planned(N, K, sub, T()).slices > 1 ? 2 : 1);
      }
    });
  }
  it('shared reduction (teams of 32 lanes), forced slices', { timeout: COMPILE_MS }, async () => {
    const v: QuantLinearVariant = { preset: 'sk32u2', reduce: 'shared' };
    for (const M of [1, 8]) {
      for (const [N, K] of [
        [65, 8200],
        [2050, 72],
      ] as const) {
        // the per-element x path is met above
        expect(await check({ M, N, K, format, fn: 'matvec', variant: v, bias: M === 8 ? 'f32' : undefined })).toBe(
          planned(N, K, v, 32).slices > 1 ? 2 : 1,
        );
      }
    }
    expect(planned(2050, 72, v, 32)).toMatchObject({ R: 2, slices: 1 });
    expect(await check({ M: 3, N: 9, K: 4160, format, fn: 'matvec', variant: { ...v, slices: 3 } })).toBe(2);
  });
  it('plans for a GPU with subgroups of 32: the real decode shapes', () => {
    const plan = (N: number, K: number) => matvecPlan(QUANT_LINEAR_PRESETS.sk32u2, 32, N, blocksPerRow(layout, K), 32);
    expect(plan(4096, 4096)).toMatchObject({ R: 2, slices: 1, workgroups: 512, bytesInFlight: 16384 });
    // k/v (N = 256): one row per team; q8's 128 blocks a row make two steps of 64, so two slices; q4's 64 one.
    expect(plan(256, 4096)).toMatchObject({ R: 1, slices: format === 'q8' ? 2 : 1 });
  });
});

describe.each(FORMATS)('%s: chunked weights, dtypes', (format) => {
  it('small forced chunks: odd row counts, a short last chunk, K not a multiple of the block', async () => {
    await check({ M: 1, N: 37, K: 63, format, chunkRows: 5, bias: 'f32' });
    await check({ M: 5, N: 37, K: 64, format, chunkRows: 3 });
    await check({ M: 130, N: 37, K: 96, format, chunkRows: 5, bias: 'bf16' });
    await check({ M: 2, N: 23, K: 9, format, chunkRows: 1 });
    await check({ M: 70, N: 29, K: 63, format, chunkRows: 9, fn: 'matmul', variant: { preset: '64x64x32' } });
    await check({
      M: 4,
      N: 29,
      K: 64,
      format,
      chunkRows: 9,
      fn: 'matvec',
      variant: { preset: 'sk32u2', reduce: 'shared' },
    });
    if (device.has('subgroups'))
      expect(
        await check({
          M: 6,
          N: 37,
          K: 4097,
          format,
          chunkRows: 5,
          fn: 'matvec',
          variant: { preset: 'sk32u2' },
          bias: 'f32',
        }),
      ).toBe(9); // K split
  });

  it('f16 activations and bias', async (ctx) => {
    if (!device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
    for (const M of [1, 17]) await check({ M, N: 33, K: 96, format, act: 'f16', bias: 'f16' });
    if (device.has('subgroups'))
      await check({
        M: 4,
        N: 33,
        K: 2056,
        format,
        act: 'f16',
        bias: 'f16',
        fn: 'matvec',
        variant: { preset: 'sk32u2', slices: 2 },
      });
  });
});

describe.each(FORMATS)('%s: SwiGLU input (swiglu: x = gate | up, [M, 2K])', (format) => {
  // As matmul.test.ts: the decode kernels multiply silu(gate) · up as they load x (no extra dispatch), many rows
  // take a siluMul dispatch first.
  const decode: [string, QuantLinearVariant | undefined][] = [
    ['default', undefined],
    ['bcast8x4', { preset: 'bcast8x4' }],
    ['sk32u2', { preset: 'sk32u2', reduce: 'subgroup' }],
    ['sk32u2 (shared reduction, 2 slices)', { preset: 'sk32u2', reduce: 'shared', slices: 2 }],
  ];
  for (const [name, variant] of decode) {
    it(`${name}: fused into the x loads, no extra dispatch`, { timeout: COMPILE_MS }, async (ctx) => {
      if (variant?.preset === 'bcast8x4' && !canBroadcast(device)) return ctx.skip('the adapter lacks subgroups of 8');
      if (variant?.reduce === 'subgroup' && !device.has('subgroups')) return ctx.skip('the adapter lacks subgroups');
      for (const M of [1, 8]) {
        for (const [i, [N, K]] of (
          [
            [7, 4097],
            [33, 64],
          ] as const
        ).entries()) {
          const c: Case = { M, N, K, format, fn: 'matvec', variant, bias: i % 2 ? 'f32' : undefined };
          expect(await check({ ...c, swiglu: true }), `M=${M} N=${N} K=${K}`).toBe(await check(c));
        }
      }
    });
  }
  it('many rows: a siluMul dispatch, then the matmul', async () => {
    const c: Case = { M: 9, N: 33, K: 64, format };
    expect(await check({ ...c, swiglu: true })).toBe((await check(c)) + 1);
  });
});

describe('layout and routing', () => {
  it('codes and scales round-trip through the GPU chunks', async () => {
    for (const format of FORMATS) {
      const layout = QUANT_FORMATS[format];
      const q = quantizeRows(layout, normal(11 * 70, 3), 11, 70, 'w');
      const w = await QuantizedMatrix.fromHost(device, layout, [11, 70], q, 'w', 3 * rowBytes(layout, 70).data);
      expect(w.chunks.length).toBe(4);
      const back = await w.read();
      expect(back.data).toEqual(q.data);
      expect(back.scales).toEqual(q.scales);
      expect(w.byteSize).toBe(11 * (rowBytes(layout, 70).data + rowBytes(layout, 70).scales));
      w.dispose();
    }
  });

  it('routes M ≤ 8 to matvec and larger M to matmul, one dispatch per chunk, labelled with the format', async (ctx) => {
    if (!device.has('timestamp-query')) return ctx.skip('the adapter lacks timestamp-query');
    const layout = QUANT_FORMATS.q4;
    const w = await QuantizedMatrix.fromHost(
      device,
      layout,
      [12, 64],
      quantizeRows(layout, normal(12 * 64, 1), 12, 64, 'w'),
      'w',
      5 * rowBytes(layout, 64).data,
    );
    for (const [M, family] of [
      [8, 'matvec'],
      [9, 'matmul'],
    ] as const) {
      const x = await Tensor.fromArray(device, 'f32', [M, 64], normal(M * 64, 2));
      const g = new Graph(device);
      linear(g, x, w);
      const labels = (await g.profile()).map((e) => e.label);
      expect(labels.length).toBe(3);
      for (const l of labels)
        expect(l.startsWith(`${family}_q4w_f32a_${selectQuantPreset(device, M, family)}`), l).toBe(true);
      g.dispose();
      x.dispose();
    }
    w.dispose();
  });

  it('every tiled preset has one 8-weight code load per invocation per step', () => {
    for (const [name, p] of Object.entries(QUANT_LINEAR_PRESETS)) {
      if (p.kind === 'tiled') expect((p.BM / p.TM) * (p.BN / p.TN), name).toBe(p.BN * 4);
    }
  });
});

describe('bad input', () => {
  it('names a quantised weight whose K does not match x, and refuses more than 8 rows in matvec', async () => {
    const layout = QUANT_FORMATS.q8;
    const w = await QuantizedMatrix.fromHost(
      device,
      layout,
      [8, 40],
      quantizeRows(layout, normal(320, 1), 8, 40, 'w'),
      'lm_head.weight',
    );
    const x = await Tensor.fromArray(device, 'f32', [2, 41], normal(82, 2), 'x');
    const x9 = await Tensor.fromArray(device, 'f32', [9, 40], normal(360, 2), 'x9');
    const g = new Graph(device);
    expect(() => linear(g, x, w)).toThrow(InputError);
    expect(() => linear(g, x, w)).toThrow(/weight 'lm_head\.weight' \[8, 40\] does not match x 'x' \[\.\.\., 41\]/);
    expect(() => matvec(g, x9, w)).toThrow(/x 'x9' \[9, 40\] has 9 rows; at most 8/);
    for (const o of [g, x, x9, w]) o.dispose();
  });
});
