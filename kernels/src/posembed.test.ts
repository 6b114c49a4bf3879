import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, Graph, InputError, Tensor } from '@glm4v/core';
import { TOLERANCE, asStored, expectClose, normal, poisoned } from '@glm4v/core/testing';
import { posEmbedBicubic } from './posembed.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

// ---- float64 reference: PyTorch's grid_sample(input [1, C, G, G], grid, mode='bicubic', padding_mode='border',
// align_corners=False) written out literally, with the grid the reference model builds for each patch.
const CUBIC_A = -0.75;
const conv1 = (x: number) => ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1; // cubic_convolution1
const conv2 = (x: number) => ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A; // cubic_convolution2
const cubicCoefficients = (t: number) => [conv2(t + 1), conv1(t), conv1(1 - t), conv2(1 - t + 1)]; // get_cubic_upsample_coefficients
const unnormalize = (coord: number, size: number) => ((coord + 1) * size - 1) / 2; // grid_sampler_unnormalize, align_corners=False
const clipCoordinate = (x: number, size: number) => Math.min(size - 1, Math.max(x, 0)); // border padding, per tap

/** patches: [S][4] = (r, c, gh, gw); table: [G·G, C] with row G·r + c. */
function posEmbedRef(table: Float64Array, G: number, C: number, patches: ArrayLike<number>): Float64Array {
  const S = patches.length / 4;
  const out = new Float64Array(S * C);
  for (let s = 0; s < S; s++) {
    const [r, c, gh, gw] = [patches[4 * s], patches[4 * s + 1], patches[4 * s + 2], patches[4 * s + 3]];
    // Glm4vVisionEmbeddings: normalised patch-centre coordinates, x = width (column), y = height (row)
    const gx = ((c + 0.5) / gw) * 2 - 1;
    const gy = ((r + 0.5) / gh) * 2 - 1;
    const ix = unnormalize(gx, G);
    const iy = unnormalize(gy, G);
    const ixNw = Math.floor(ix);
    const iyNw = Math.floor(iy);
    const wx = cubicCoefficients(ix - ixNw);
    const wy = cubicCoefficients(iy - iyNw);
    const value = (y: number, x: number, ch: number) =>
      table[(clipCoordinate(y, G) * G + clipCoordinate(x, G)) * C + ch];
    for (let ch = 0; ch < C; ch++) {
      let e = 0;
      for (let i = 0; i < 4; i++) {
        let line = 0;
        for (let j = 0; j < 4; j++) line += wx[j] * value(iyNw - 1 + i, ixNw - 1 + j, ch);
        e += wy[i] * line;
      }
      out[s * C + ch] = e;
    }
  }
  return out;
}

/** The patches of one image grid in the processor's merge-window order (raster when a side is odd). */
function imagePatches(gh: number, gw: number): number[] {
  const out: number[] = [];
  if (gh % 2 === 0 && gw % 2 === 0) {
    for (let bh = 0; bh < gh / 2; bh++)
      for (let bw = 0; bw < gw / 2; bw++)
        for (let mh = 0; mh < 2; mh++) for (let mw = 0; mw < 2; mw++) out.push(2 * bh + mh, 2 * bw + mw, gh, gw);
  } else {
    for (let r = 0; r < gh; r++) for (let c = 0; c < gw; c++) out.push(r, c, gh, gw);
  }
  return out;
}

async function run(
  wd: 'f32' | 'f16' | 'bf16',
  G: number,
  C: number,
  grids: [number, number][],
  seed: number,
  act: 'f32' | 'f16' = 'f32',
) {
  const table = asStored(wd, normal(G * G * C, seed));
  const list = Int32Array.from(grids.flatMap(([gh, gw]) => imagePatches(gh, gw)));
  const S = list.length / 4;
  const t = await Tensor.fromArray(device, wd, [G * G, C], table, 'position_embedding.weight');
  const patches = await Tensor.fromArray(device, 'i32', [S, 4], list, 'patch_coords');
  const out = await poisoned(device, act, [S, C]);
  const g = new Graph(device);
  posEmbedBicubic(g, t, patches, { gridSize: G, out });
  await g.run();
  const got = await out.read();
  g.dispose();
  for (const x of [t, patches, out]) x.dispose();
  return { table, list, got };
}

describe('posEmbedBicubic', () => {
  it('reproduces the table exactly when the image grid equals the table grid (24 and 7)', async () => {
    for (const [G, C] of [
      [24, 40],
      [7, 17],
    ]) {
      const { table, got } = await run('bf16', G, C, [[G, G]], G);
      // raster order (G odd) or merge-window order: map each output row back to its table row
      const order = imagePatches(G, G);
      for (let s = 0; s < G * G; s++) {
        const row = order[4 * s] * G + order[4 * s + 1];
        for (let ch = 0; ch < C; ch++) {
          if (got[s * C + ch] !== table[row * C + ch])
            throw new Error(`G ${G}: patch ${s} channel ${ch} is ${got[s * C + ch]}, table has ${table[row * C + ch]}`);
        }
      }
    }
  });

  const CASES: { name: string; G: number; C: number; grids: [number, number][] }[] = [
    {
      name: 'G 24: smaller, larger and non-square grids in one batch',
      G: 24,
      C: 40,
      grids: [
        [8, 8],
        [48, 60],
        [6, 38],
        [24, 24],
        [2, 2],
      ],
    },
    {
      name: 'G 24: 1×1 and odd grids, C 1',
      G: 24,
      C: 1,
      grids: [
        [1, 1],
        [3, 7],
        [17, 5],
      ],
    },
    {
      name: 'G 7 (tiny): smaller, larger, non-square',
      G: 7,
      C: 17,
      grids: [
        [4, 6],
        [10, 14],
        [2, 2],
        [7, 7],
        [16, 4],
      ],
    },
    { name: 'G 24: real width 1536, a 20×28 image', G: 24, C: 1536, grids: [[20, 28]] },
  ];
  for (const wd of ['f32', 'bf16', 'f16'] as const) {
    for (const c of CASES) {
      if (c.C === 1536 && wd !== 'bf16') continue;
      it(`${wd} table, ${c.name}`, async (ctx) => {
        if (wd === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
        const { table, list, got } = await run(wd, c.G, c.C, c.grids, c.C + c.G);
        expectClose(got, posEmbedRef(table, c.G, c.C, list), TOLERANCE.f32, `posEmbed ${wd} ${c.name}`);
      });
    }
  }

  it('f16 output', async (ctx) => {
    if (!device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
    const { table, list, got } = await run(
      'bf16',
      7,
      17,
      [
        [4, 6],
        [10, 14],
      ],
      3,
      'f16',
    );
    expectClose(got, posEmbedRef(table, 7, 17, list), TOLERANCE.f16, 'posEmbed f16 out');
  });

  it('accumulates into the embeddings (X₂ = X₁ + E)', async () => {
    const [G, C] = [7, 33];
    const table = asStored('bf16', normal(G * G * C, 1));
    const list = Int32Array.from(imagePatches(10, 4));
    const S = list.length / 4;
    const xs = asStored('f32', normal(S * C, 2));
    const t = await Tensor.fromArray(device, 'bf16', [G * G, C], table, 'pos');
    const patches = await Tensor.fromArray(device, 'i32', [S, 4], list, 'patch_coords');
    const x = await Tensor.fromArray(device, 'f32', [S, C], xs, 'embeddings');
    const g = new Graph(device);
    posEmbedBicubic(g, t, patches, { gridSize: G, out: x, accumulate: true });
    await g.run();
    const ref = posEmbedRef(table, G, C, list).map((v, i) => v + xs[i]);
    expectClose(await x.read(), ref, TOLERANCE.f32, 'posEmbed accumulate');
    g.dispose();
    for (const o of [t, patches, x]) o.dispose();
  });

  it('more than 65535 patches (a 2-D grid of workgroups)', async () => {
    const { table, list, got } = await run('bf16', 7, 2, [[250, 280]], 5);
    expectClose(got, posEmbedRef(table, 7, 2, list), TOLERANCE.f32, 'posEmbed 70000 patches');
  });

  it('rejects a table that does not match gridSize, and bad patch coordinates', async () => {
    const t = await Tensor.empty(device, 'bf16', [576, 8], 'position_embedding.weight');
    const p = await Tensor.empty(device, 'i32', [5, 3], 'patch_coords');
    const p4 = await Tensor.empty(device, 'i32', [5, 4], 'patch_coords');
    expect(() => posEmbedBicubic(new Graph(device), t, p4, { gridSize: 7 })).toThrow(
      /position_embedding\.weight.*\[576, 8\].*\[49, \?\]/,
    );
    expect(() => posEmbedBicubic(new Graph(device), t, p, { gridSize: 24 })).toThrow(
      /patch_coords.*\[5, 3\].*\[\?, 4\]/,
    );
    expect(() => posEmbedBicubic(new Graph(device), t, p4, { gridSize: 24, accumulate: true })).toThrow(InputError);
    for (const o of [t, p, p4]) o.dispose();
  });
});
