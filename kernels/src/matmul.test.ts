import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkedTensor, Device, Graph, InputError, Tensor } from '@glm4v/core';
import { TOLERANCE, asStored, expectClose, normal, poisoned } from '@glm4v/core/testing';
import { type ActDType, type WeightDType } from './prelude.js';
import {
  type LinearVariant,
  LINEAR_PRESETS,
  linear,
  linearVariant,
  matmul,
  matvec,
  selectLinearPreset,
} from './matmul.js';
import { matrixShapeFor } from './matmul_subgroup_matrix.js';
import { matvecPlan } from './linear-common.js';
import { canBroadcast, minSubgroupSize } from './adapter.js';
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
  wd?: WeightDType;
  act?: ActDType;
  bias?: WeightDType;
  fn?: Fn;
  variant?: LinearVariant;
  /** Split W into chunks of this many rows. */
  chunkRows?: number;
  /** x is [M, 2K], gate | up; the layer multiplies silu(gate) · up. */
  swiglu?: boolean;
}

/** Runs one case against float64; returns the dispatches it recorded (row chunks, plus the split-K second pass). */
async function check(c: Case): Promise<number> {
  const { M, N, K, wd = 'bf16', act = 'f32', fn = 'linear' } = c;
  // f16 matrix operands round x to f16: the f16 budget (its error per term is ε16·|x_k·w_k|, within the same scale)
  const f16Operands =
    c.variant?.emulateMatrix?.shape.operand === 'f16' ||
    (c.variant?.preset === 'sm128x128' && matrixShapeFor(device, LINEAR_PRESETS.sm128x128)?.operand === 'f16');
  const seed = M * 7919 + N * 31 + K;
  const xs = asStored(act, normal(M * K * (c.swiglu ? 2 : 1), seed));
  const xin = linearInput(xs, M, K, c.swiglu);
  const ws = asStored(wd, normal(N * K, seed + 1));
  const bs = c.bias ? asStored(c.bias, normal(N, seed + 2)) : undefined;
  const x = await Tensor.fromArray(device, act, [M, c.swiglu ? 2 * K : K], xs, 'x');
  const w = c.chunkRows
    ? await ChunkedTensor.fromArray(device, wd, [N, K], ws, 'w', c.chunkRows * K * (wd === 'f32' ? 4 : 2))
    : await Tensor.fromArray(device, wd, [N, K], ws, 'w');
  if (c.chunkRows && w instanceof ChunkedTensor) expect(w.chunks.length).toBe(Math.ceil(N / c.chunkRows));
  const b = bs ? await Tensor.fromArray(device, c.bias!, [N], bs, 'b') : undefined;
  const out = await poisoned(device, act, [M, N]);
  const g = new Graph(device);
  const opts = { bias: b, out, swiglu: c.swiglu };
  const y = c.variant
    ? linearVariant(g, x, w, opts, fn === 'matvec' ? 'matvec' : 'matmul', c.variant)
    : { linear, matmul, matvec }[fn](g, x, w, opts);
  expect(y).toBe(out);
  await g.run();
  const variantName = c.variant?.emulateMatrix
    ? `emulated ${JSON.stringify(c.variant.emulateMatrix)}`
    : (c.variant?.preset ?? 'default');
  const what = `${fn} ${variantName}${c.variant?.reduce ? `/${c.variant.reduce}` : ''} ${wd}w ${act}a${c.bias ? ` +${c.bias} bias` : ''} M=${M} N=${N} K=${K}${c.swiglu ? ' swiglu' : ''}${c.chunkRows ? ` chunks of ${c.chunkRows}` : ''}`;
  expectClose(
    await out.read(),
    linearRef(xin, ws, bs, M, N, K),
    TOLERANCE[f16Operands ? 'f16' : act],
    what,
    scaleOf(xin, ws, bs, M, N, K),
  );
  const dispatches = g.stats.dispatches;
  g.dispose();
  for (const t of [x, w, b, out]) t?.dispose();
  return dispatches;
}

const hasF16 = () => device.has('shader-f16');

// [N, K]: K a multiple of 8 takes the vec4 weight path, any other K the per-element path (odd K: rows of a 16-bit
// matrix straddle u32 words).
const SHAPES: [number, number][] = [
  [1, 1],
  [3, 7],
  [17, 127],
  [127, 64],
  [4097, 8],
  [7, 4097],
];

describe('linear over rows, shapes and bias (bf16 weight, f32 x)', () => {
  for (const M of [1, 2, 3, 7, 8, 9, 17, 127, 130]) {
    it(`M = ${M}`, async () => {
      for (const [i, [N, K]] of SHAPES.entries()) await check({ M, N, K, bias: i % 2 ? 'f32' : undefined });
    });
  }
});

describe('weight and activation dtypes', () => {
  // The vec4 path for every pair; the per-element path (odd K) also for f16 weights (bf16 above; f32 rows never
  // straddle words).
  for (const act of ['f32', 'f16'] as const) {
    for (const wd of ['f32', 'f16', 'bf16'] as const) {
      it(`${wd} weight, ${act} x`, async (ctx) => {
        if ((act === 'f16' || wd === 'f16') && !hasF16()) return ctx.skip('the adapter lacks shader-f16');
        for (const M of [1, 17]) {
          await check({ M, N: 33, K: 64, wd, act, bias: act });
          if (act === 'f32' && wd === 'f16') await check({ M, N: 33, K: 63, wd, act });
        }
      });
    }
  }
  it('bf16 bias', async () => {
    await check({ M: 3, N: 20, K: 24, bias: 'bf16' });
    await check({ M: 12, N: 20, K: 24, bias: 'bf16' });
  });
});

describe('every variant', () => {
  // The GPU variants run here too (forced), so lavapipe checks their indexing and tails; the default on lavapipe is
  // bcast8x4, checked above and forced below. Each compiles slowly on lavapipe (seconds), so each family meets the per-element weight
  // path (K = 127, 63) in one variant and the vec4 path (K = 64, 16, 8) in the other.
  const variants: [Fn, LinearVariant, [number, number][]][] = [
    [
      'matmul',
      { preset: '128x128x8' },
      [
        [17, 127],
        [130, 64],
        [4097, 8],
      ],
    ],
    [
      'matmul',
      { preset: '128x64x8' },
      [
        [17, 8],
        [130, 63],
        [67, 24],
      ],
    ],
    [
      'matmul',
      { preset: '64x64x16' },
      [
        [17, 127],
        [130, 63],
        [4097, 1],
      ],
    ],
    [
      'matmul',
      { preset: '32x64x16' },
      [
        [17, 8],
        [130, 64],
        [4097, 16],
      ],
    ],
  ];
  // The CPU-adapter kernel, forced so GPUs (which default to the ones above) run it too: one row of x (its _m1
  // pipeline) and a short last tile of rows (M = 9 with TM = 8), odd K (per-element weights) and the vec4 path.
  it('bcast8x4 (forced)', async (ctx) => {
    if (!canBroadcast(device)) return ctx.skip('the adapter lacks subgroups of 8 or more');
    const variant: LinearVariant = { preset: 'bcast8x4' };
    for (const M of [1, 9]) {
      for (const [N, K] of [
        [17, 127],
        [130, 63],
        [37, 64],
      ])
        await check({ M, N, K, fn: 'matmul', variant, bias: M === 9 ? 'f32' : undefined });
    }
    await check({ M: 3, N: 33, K: 63, fn: 'matvec', variant });
  });
  // The tensor-core kernel on the adapter's matrix units, where it has them: the path linear() takes there.
  it('sm128x128 (subgroup matrices, forced)', async (ctx) => {
    const shape = matrixShapeFor(device, LINEAR_PRESETS.sm128x128);
    if (!shape)
      return ctx.skip(
        'the adapter has no subgroup matrices (chromium-experimental-subgroup-matrix) fitting the 128×128 tile',
      );
    const variant: LinearVariant = { preset: 'sm128x128' };
    const wd = shape.operand === 'f16' ? 'f16' : 'bf16';
    for (const M of [1, 9, 130, 300]) {
      for (const [N, K] of [
        [17, 127],
        [130, 64],
        [257, 520],
      ])
        await check({ M, N, K, wd, fn: 'matmul', variant, bias: M === 9 ? 'f32' : undefined });
    }
    await check({ M: 200, N: 70, K: 72, wd, act: 'f16', fn: 'matmul', variant, bias: 'f16' });
  });
  // Its tiling on every adapter with subgroups: scalar stand-ins for the matrix builtins (same loads, strides and
  // layouts, whole matrices per invocation), small tiles and matrix shapes so lavapipe runs them in seconds. Two
  // shapes: f16 operands with M ≠ N (as Intel's 8×16×16), and f32 operands (as Apple's 8×8×8); tails in M, N, K.
  const emulated: LinearVariant['emulateMatrix'][] = [
    { shape: { operand: 'f16', M: 4, N: 8, K: 8 }, tile: { BM: 16, BN: 32, SGM: 2, SGN: 2 } },
    { shape: { operand: 'f32', M: 4, N: 4, K: 4 }, tile: { BM: 16, BN: 8, SGM: 2, SGN: 1 } },
  ];
  for (const e of emulated) {
    it(`subgroup-matrix tiling with emulated ${e!.shape.operand} ${e!.shape.M}×${e!.shape.N}×${e!.shape.K} matrices`, async (ctx) => {
      if (!device.has('subgroups')) return ctx.skip('the adapter lacks subgroups');
      if (e!.shape.operand === 'f16' && !hasF16()) return ctx.skip('the adapter lacks shader-f16');
      const variant: LinearVariant = { emulateMatrix: e };
      for (const M of [1, 9, 37]) {
        for (const [N, K] of [
          [17, 127],
          [33, 64],
          [9, 40],
        ])
          await check({ M, N, K, fn: 'matmul', variant, bias: M === 9 ? 'f32' : undefined });
      }
      if (hasF16()) await check({ M: 20, N: 40, K: 24, wd: 'f16', fn: 'matmul', variant, chunkRows: 13 });
    });
  }
  for (const [fn, variant, shapes] of variants) {
    it(`${variant.preset}${variant.reduce ? ` (${variant.reduce} reduction)` : ''}`, async (ctx) => {
      if (variant.reduce === 'subgroup' && !device.has('subgroups')) return ctx.skip('the adapter lacks subgroups');
      const rows = fn === 'matvec' ? [1, 3, 8] : [1, 9, 130];
      for (const M of rows) {
        for (const [N, K] of shapes)
          await check({ M, N, K, fn, variant, bias: M === 3 || M === 9 ? 'f32' : undefined });
      }
    });
  }
});

describe('split-K matvec sk32u4 (forced)', () => {
  // The GPU decode kernel on this adapter. With subgroups of 8 (lavapipe) a team is 8 lanes and a step 8 · 4 groups
  // of 8 weights, so K = 4097 has 16 steps' worth and small N splits K into slices (a second pass); N ≥ 8192 gives
  // two rows per team. Odd K takes the per-element weight path, K a multiple of 8 the vec4 one. Each case checks
  // the dispatches against matvecPlan: one per chunk, plus one where K is split.
  const sub: LinearVariant = { preset: 'sk32u4', reduce: 'subgroup' };
  const planned = (N: number, K: number, v: LinearVariant, T: number) =>
    matvecPlan(LINEAR_PRESETS.sk32u4, T, N, Math.ceil(K / 8), 16, v.slices);
  const T = () => Math.min(32, minSubgroupSize(device) || 32);
  for (const M of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`M = ${M}: N and K small and large, K split where N is small`, async (ctx) => {
      if (!device.has('subgroups')) return ctx.skip('the adapter lacks subgroups');
      for (const [i, [N, K]] of (
        [
          [1, 1],
          [7, 4097],
          [256, 4096],
          [130, 64],
          [8200, 24],
        ] as const
      ).entries()) {
        const n = await check({ M, N, K, fn: 'matvec', variant: sub, bias: i % 2 ? 'f32' : undefined });
        expect(n, `N=${N} K=${K}`).toBe(planned(N, K, sub, T()).slices > 1 ? 2 : 1);
      }
    });
  }
  it('two rows per team with forced K slices; weight and activation dtypes', async (ctx) => {
    if (!device.has('subgroups')) return ctx.skip('the adapter lacks subgroups');
    const split: LinearVariant = { ...sub, slices: 2 };
    expect(planned(8200, 520, split, T())).toMatchObject({ R: 2, slices: 2 });
    expect(await check({ M: 8, N: 8200, K: 520, fn: 'matvec', variant: split, bias: 'bf16' })).toBe(2);
    expect(await check({ M: 3, N: 33, K: 1032, wd: 'f32', fn: 'matvec', variant: sub, bias: 'f32' })).toBe(2);
    if (!hasF16()) return;
    expect(await check({ M: 2, N: 40, K: 2056, wd: 'f16', act: 'f16', fn: 'matvec', variant: sub, bias: 'f16' })).toBe(
      2,
    );
    await check({ M: 5, N: 33, K: 63, wd: 'f16', act: 'f16', fn: 'matvec', variant: sub });
  });
  it('shared reduction (teams of 32 lanes)', async () => {
    const v: LinearVariant = { preset: 'sk32u4', reduce: 'shared' };
    for (const M of [1, 3, 8]) {
      for (const [N, K] of [
        [17, 127],
        [2050, 1032],
      ] as const) {
        expect(await check({ M, N, K, fn: 'matvec', variant: v, bias: M === 3 ? 'f32' : undefined })).toBe(
          planned(N, K, v, 32).slices > 1 ? 2 : 1,
        );
      }
    }
    expect(planned(2050, 1032, v, 32)).toMatchObject({ R: 2, slices: 1 });
    expect(await check({ M: 4, N: 2050, K: 2056, fn: 'matvec', variant: { ...v, slices: 2 } })).toBe(2);
  });
  it('plans for a GPU with subgroups of 32: the real decode shapes', () => {
    const plan = (N: number, K: number) => matvecPlan(LINEAR_PRESETS.sk32u4, 32, N, K / 8, 16);
    // q/o: two rows per team, 512 workgroups, 16 KB in flight each; k/v (N = 256): one row per team, K in 4 slices.
    expect(plan(4096, 4096)).toMatchObject({ R: 2, slices: 1, workgroups: 512, bytesInFlight: 16384 });
    expect(plan(256, 4096)).toMatchObject({ R: 1, slices: 4, workgroups: 256, bytesInFlight: 8192 });
    expect(plan(4096, 13696)).toMatchObject({ R: 2, slices: 1, workgroups: 512 });
    expect(plan(27392, 4096)).toMatchObject({ R: 2, slices: 1, workgroups: 3424 });
  });
});

describe('chunked weights', () => {
  // Small forced chunks: odd row counts, odd K (chunks of a bf16 matrix straddling words), a short last chunk.
  const cases: Case[] = [
    { M: 1, N: 37, K: 63, chunkRows: 5, bias: 'f32' },
    { M: 5, N: 37, K: 64, chunkRows: 3 },
    { M: 130, N: 37, K: 63, chunkRows: 5 },
    { M: 19, N: 40, K: 16, chunkRows: 7, wd: 'f32', bias: 'f32' },
    { M: 2, N: 23, K: 9, chunkRows: 1 },
    { M: 70, N: 29, K: 63, chunkRows: 9, fn: 'matmul', variant: { preset: '64x64x16' } },
    { M: 4, N: 29, K: 64, chunkRows: 9, fn: 'matvec', variant: { preset: 'sk32u4', reduce: 'subgroup' } },
    {
      M: 7,
      N: 37,
      K: 4097,
      chunkRows: 5,
      fn: 'matvec',
      variant: { preset: 'sk32u4', reduce: 'subgroup' },
      bias: 'f32',
    }, // K split
    { M: 3, N: 29, K: 2048, chunkRows: 9, fn: 'matvec', variant: { preset: 'sk32u4', reduce: 'shared', slices: 2 } },
  ];
  for (const c of cases) {
    it(`M=${c.M} N=${c.N} K=${c.K} ${c.wd ?? 'bf16'}, ${c.chunkRows} rows per chunk${c.variant ? ` (${c.variant.preset})` : ''}`, async (ctx) => {
      if (c.variant?.reduce === 'subgroup' && !device.has('subgroups')) return ctx.skip('the adapter lacks subgroups');
      await check(c);
    });
  }
  it('f16 activations', async (ctx) => {
    if (!hasF16()) return ctx.skip('the adapter lacks shader-f16');
    await check({ M: 3, N: 37, K: 64, chunkRows: 5, act: 'f16', bias: 'f16' });
  });
});

describe('SwiGLU input (swiglu: x = gate | up, [M, 2K])', () => {
  // The decode kernels read both halves and multiply silu(gate) · up as they load x, so the layer takes as many
  // dispatches as without swiglu; many rows take a siluMul dispatch first. Odd K reads x element by element, K a
  // multiple of 8 in vec4 pairs; a chunked W and a split K (3 slices) read x once per dispatch each.
  const shapes: [number, number][] = [
    [1, 1],
    [7, 4097],
    [33, 64],
    [130, 1032],
  ];
  const decode: [string, LinearVariant | undefined][] = [
    ['default', undefined],
    ['bcast8x4', { preset: 'bcast8x4' }],
    ['sk32u4', { preset: 'sk32u4', reduce: 'subgroup' }],
    ['sk32u4 (shared reduction, 3 slices)', { preset: 'sk32u4', reduce: 'shared', slices: 3 }],
  ];
  for (const [name, variant] of decode) {
    it(`${name}: fused into the x loads, no extra dispatch`, async (ctx) => {
      if (variant?.preset === 'bcast8x4' && !canBroadcast(device)) return ctx.skip('the adapter lacks subgroups of 8');
      if (variant?.reduce === 'subgroup' && !device.has('subgroups')) return ctx.skip('the adapter lacks subgroups');
      for (const M of [1, 3, 8]) {
        for (const [i, [N, K]] of shapes.entries()) {
          const c: Case = { M, N, K, fn: 'matvec', variant, bias: i % 2 ? 'f32' : undefined };
          expect(await check({ ...c, swiglu: true }), `M=${M} N=${N} K=${K}`).toBe(await check(c));
        }
      }
      await check({ M: 2, N: 29, K: 64, chunkRows: 9, fn: 'matvec', variant, swiglu: true });
    });
  }
  it('f16 activations and weights', async (ctx) => {
    if (!hasF16()) return ctx.skip('the adapter lacks shader-f16');
    for (const K of [63, 64]) await check({ M: 2, N: 40, K, wd: 'f16', act: 'f16', bias: 'f16', swiglu: true });
    if (!device.has('subgroups')) return;
    const variant: LinearVariant = { preset: 'sk32u4', reduce: 'subgroup' }; // x read as vec4<f16> pairs
    for (const K of [63, 1032])
      await check({ M: 3, N: 40, K, wd: 'f16', act: 'f16', fn: 'matvec', variant, swiglu: true });
  });
  it('many rows: a siluMul dispatch, then the matmul', async () => {
    for (const M of [9, 130]) {
      const c: Case = { M, N: 33, K: 64 };
      expect(await check({ ...c, swiglu: true })).toBe((await check(c)) + 1);
    }
  });
});

describe('shapes and routing', () => {
  it('keeps leading dimensions of x', async () => {
    const [K, N] = [24, 10];
    const xs = asStored('f32', normal(2 * 3 * K, 1));
    const ws = asStored('bf16', normal(N * K, 2));
    const x = await Tensor.fromArray(device, 'f32', [2, 3, K], xs);
    const w = await Tensor.fromArray(device, 'bf16', [N, K], ws);
    const g = new Graph(device);
    const y = g.keep(linear(g, x, w));
    expect(y.shape).toEqual([2, 3, N]);
    expect(y.dtype).toBe('f32');
    await g.run();
    expectClose(
      await y.read(),
      linearRef(xs, ws, undefined, 6, N, K),
      TOLERANCE.f32,
      'linear [2, 3, K]',
      scaleOf(xs, ws, undefined, 6, N, K),
    );
    g.dispose();
    x.dispose();
    w.dispose();
  });

  it('routes M ≤ 8 to matvec and larger M to matmul, one dispatch per chunk', async (ctx) => {
    if (!device.has('timestamp-query')) return ctx.skip('the adapter lacks timestamp-query');
    const K = 16;
    const w = await ChunkedTensor.fromArray(device, 'bf16', [12, K], normal(12 * K, 1), 'w', 5 * K * 2);
    for (const [M, family] of [
      [8, 'matvec'],
      [9, 'matmul'],
    ] as const) {
      const x = await Tensor.fromArray(device, 'f32', [M, K], normal(M * K, 2));
      const g = new Graph(device);
      linear(g, x, w);
      const labels = (await g.profile()).map((e) => e.label);
      expect(labels.length).toBe(3);
      for (const l of labels)
        expect(l.startsWith(`${family}_bf16w_f32a_${selectLinearPreset(device, M, family)}`), l).toBe(true);
      g.dispose();
      x.dispose();
    }
    w.dispose();
  });

  it('spreads more than 65535 workgroups over a 2-D grid', async () => {
    // One more tile of x rows than one grid dimension holds; K = 1 and N = 3 keep it cheap.
    const preset = LINEAR_PRESETS[selectLinearPreset(device, 1000, 'matmul', { N: 3, dtype: 'bf16' })];
    const rowsPerTile = 'BM' in preset ? preset.BM : preset.kind === 'broadcast' ? preset.TM : 1;
    const M = device.limits.maxComputeWorkgroupsPerDimension * rowsPerTile + 1;
    await check({ M, N: 3, K: 1, fn: 'matmul' });
  });

  it('falls back to workgroup memory without subgroups', async () => {
    const plain = await Device.create({ disableFeatures: ['subgroups'] });
    try {
      expect(selectLinearPreset(plain, 1, 'matvec')).toBe('sk32u4');
      expect(selectLinearPreset(plain, 8, 'matvec', { N: 256, dtype: 'bf16' })).toBe('sk32u4');
      expect(selectLinearPreset(plain, 9, 'matmul')).toBe('32x64x16');
      expect(selectLinearPreset(plain, 64, 'matmul')).toBe('64x64x16');
      const x = await Tensor.fromArray(plain, 'f32', [1, 8], normal(8, 1));
      const w = await Tensor.fromArray(plain, 'bf16', [3, 8], normal(24, 2));
      const g = new Graph(plain);
      expect(() => linearVariant(g, x, w, {}, 'matmul', { preset: 'bcast8x4' })).toThrow(/needs subgroups/);
      expect(() => linearVariant(g, x, w, {}, 'matvec', { preset: 'sk32u4', reduce: 'subgroup' })).toThrow(
        /needs the subgroups feature/,
      );
      for (const o of [g, x, w]) o.dispose();
    } finally {
      plain.dispose();
    }
  });

  it('every preset names a kernel the wrapper can build', () => {
    for (const [name, p] of Object.entries(LINEAR_PRESETS)) {
      if (p.kind === 'tiled') {
        expect(p.BK % 8, name).toBe(0);
        expect((p.BM / p.TM) * (p.BN / p.TN), name).toBeLessThanOrEqual(
          device.limits.maxComputeInvocationsPerWorkgroup,
        );
        expect(Math.max(p.TM, p.TN), name).toBeLessThanOrEqual(4);
      }
      if (p.kind === 'tiled8') {
        // matmul_8x8.wgsl: 8×8 blocks of vec4 pairs, every invocation loads at most 8 x values and 1 weight group
        const WG = (p.BM / 8) * (p.BN / 8);
        expect([p.BM % 8, p.BN % 8], name).toEqual([0, 0]);
        expect(WG, name).toBeLessThanOrEqual(device.limits.maxComputeInvocationsPerWorkgroup);
        expect(WG, name).toBeGreaterThanOrEqual(Math.max(p.BM, p.BN));
        expect(2 * 8 * 4 * (p.BM + p.BN), name).toBeLessThanOrEqual(16384); // WebGPU's default workgroup storage
      }
      if (p.kind === 'subgroupMatrix') {
        // the 16×16 matrices of NVIDIA, AMD and Intel, and Apple's 8×8, all divide each subgroup's block
        for (const m of [8, 16]) expect([(p.BM / p.SGM) % m, (p.BN / p.SGN) % m], name).toEqual([0, 0]);
      }
    }
  });
});

describe('bad input', () => {
  const t = (dtype: 'f32' | 'bf16' | 'i32', shape: number[], label?: string) =>
    Tensor.fromArray(device, dtype, shape, new Float32Array(shape.reduce((a, b) => a * b, 1)), label);

  it('names a weight whose K does not match x', async () => {
    const x = await t('f32', [2, 4096]);
    const w = await t('bf16', [8, 4095], 'q_proj.weight');
    const g = new Graph(device);
    expect(() => linear(g, x, w)).toThrow(InputError);
    expect(() => linear(g, x, w)).toThrow(/weight 'q_proj\.weight' \[8, 4095\] does not match x .*\[\.\.\., 4096\]/);
    for (const o of [g, x, w]) o.dispose();
  });

  it('rejects bad bias, output, dtypes and ranks', async () => {
    const x = await t('f32', [3, 8], 'x');
    const w = await t('bf16', [5, 8], 'w');
    const g = new Graph(device);
    const bias4 = await t('f32', [4], 'b');
    expect(() => linear(g, x, w, { bias: bias4 })).toThrow(/bias 'b' has shape \[4\]; expected \[5\]/);
    const out = await t('f32', [3, 4], 'y');
    expect(() => linear(g, x, w, { out })).toThrow(/output 'y' has shape \[3, 4\]; expected \[3, 5\]/);
    const outBf = await t('bf16', [3, 5], 'ybf');
    expect(() => linear(g, x, w, { out: outBf })).toThrow(/output 'ybf' has dtype bf16; expected f32/);
    const xi = await t('i32', [3, 8], 'ids');
    expect(() => linear(g, xi, w)).toThrow(/input 'ids' has dtype i32/);
    const w1 = await t('bf16', [8], 'vec');
    expect(() => linear(g, x, w1)).toThrow(/weight 'vec' has shape \[8\]; expected \[N, K\]/);
    for (const o of [g, x, w, bias4, out, outBf, xi, w1]) o.dispose();
  });

  it('names x that is not gate | up halves twice K wide under swiglu', async () => {
    const x = await t('f32', [2, 8], 'gate_up');
    const w = await t('bf16', [5, 8], 'down_proj.weight');
    const g = new Graph(device);
    expect(() => linear(g, x, w, { swiglu: true })).toThrow(
      /x 'gate_up' \[\.\.\., 8\] is not the gate \| up halves for weight 'down_proj\.weight' \[5, 8\]: expected \[\.\.\., 16\]/,
    );
    for (const o of [g, x, w]) o.dispose();
  });

  it('rejects more than 8 rows in matvec', async () => {
    const x = await t('f32', [9, 8], 'x');
    const w = await t('bf16', [5, 8], 'w');
    const g = new Graph(device);
    expect(() => matvec(g, x, w)).toThrow(/x 'x' \[9, 8\] has 9 rows; at most 8/);
    for (const o of [g, x, w]) o.dispose();
  });
});
