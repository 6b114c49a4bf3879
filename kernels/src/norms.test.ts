import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, Graph, Tensor, InputError } from '@glm4v/core';
import { TOLERANCE, asStored, expectClose, normal, poisoned } from '@glm4v/core/testing';
import { layerNorm, rmsNorm, rmsNormResidual } from './norms.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

// float64 references
function rmsNormRef(x: Float64Array, w: Float64Array, rows: number, cols: number, eps: number): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[r * cols + c] ** 2;
    const inv = 1 / Math.sqrt(ss / cols + eps);
    for (let c = 0; c < cols; c++) y[r * cols + c] = x[r * cols + c] * inv * w[c];
  }
  return y;
}

function layerNormRef(
  x: Float64Array,
  w: Float64Array,
  b: Float64Array,
  rows: number,
  cols: number,
  eps: number,
): Float64Array {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let c = 0; c < cols; c++) mean += x[r * cols + c];
    mean /= cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / cols + eps);
    for (let c = 0; c < cols; c++) y[r * cols + c] = (x[r * cols + c] - mean) * inv * w[c] + b[c];
  }
  return y;
}

const SHAPES: [number, number][] = [
  [1, 1],
  [3, 7],
  [17, 64],
  [5, 4097],
  [2, 4096],
  [127, 1536],
];

describe('rmsNorm', () => {
  for (const act of ['f32', 'f16'] as const) {
    for (const wd of ['f32', 'bf16', 'f16'] as const) {
      for (const [rows, cols] of SHAPES) {
        it(`${act} activations, ${wd} weight, [${rows}, ${cols}]`, async (ctx) => {
          if ((act === 'f16' || wd === 'f16') && !device.has('shader-f16'))
            return ctx.skip('the adapter lacks shader-f16');
          const seed = rows * 1000 + cols;
          const xs = asStored(act, normal(rows * cols, seed, 3));
          const ws = asStored(wd, normal(cols, seed + 1));
          const x = await Tensor.fromArray(device, act, [rows, cols], xs);
          const w = await Tensor.fromArray(device, wd, [cols], ws);
          const out = await poisoned(device, act, [rows, cols]);
          const g = new Graph(device);
          rmsNorm(g, x, w, 1e-5, out);
          await g.run();
          expectClose(
            await out.read(),
            rmsNormRef(xs, ws, rows, cols, 1e-5),
            TOLERANCE[act],
            `rmsNorm ${act}/${wd} [${rows}, ${cols}]`,
          );
          g.dispose();
          for (const t of [x, w, out]) t.dispose();
        });
      }
    }
  }

  it('names the weight whose shape is wrong', async () => {
    const x = await Tensor.fromArray(device, 'f32', [2, 8], new Float32Array(16));
    const w = await Tensor.fromArray(device, 'f32', [7], new Float32Array(7), 'input_layernorm.weight');
    expect(() => rmsNorm(new Graph(device), x, w, 1e-5)).toThrow(InputError);
    expect(() => rmsNorm(new Graph(device), x, w, 1e-5)).toThrow(/input_layernorm\.weight.*\[7\].*\[8\]/);
  });
});

describe('rmsNormResidual', () => {
  // the decoder's pairs: rows up to a prefill chunk, widths around the real hidden size (4096) and awkward ones;
  // f16 activations with an f16 and a bf16 weight exercise two weight types in one kernel
  const WEIGHTS = { f32: ['bf16', 'bf16'], f16: ['f16', 'bf16'] } as const;
  for (const act of ['f32', 'f16'] as const) {
    for (const rows of [1, 7, 33]) {
      for (const cols of [1, 7, 4096, 4097]) {
        it(`${act} activations, [${rows}, ${cols}]: x += norm(y)·w1, out = norm(x)·w2`, async (ctx) => {
          if (act === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
          const [wd1, wd2] = WEIGHTS[act];
          const seed = 31 * rows + cols;
          const xs = asStored(act, normal(rows * cols, seed, 4));
          const ys = asStored(act, normal(rows * cols, seed + 1, 2));
          const w1s = asStored(wd1, normal(cols, seed + 2));
          const w2s = asStored(wd2, normal(cols, seed + 3));
          const x = await Tensor.fromArray(device, act, [rows, cols], xs, 'residual');
          const y = await Tensor.fromArray(device, act, [rows, cols], ys, 'branch');
          const w1 = await Tensor.fromArray(device, wd1, [cols], w1s);
          const w2 = await Tensor.fromArray(device, wd2, [cols], w2s);
          const out = await poisoned(device, act, [rows, cols]);
          const g = new Graph(device);
          expect(rmsNormResidual(g, x, y, w1, w2, 1e-5, out)).toBe(out);
          await g.run();
          const added = rmsNormRef(ys, w1s, rows, cols, 1e-5).map((v, i) => v + xs[i]);
          expectClose(await x.read(), added, TOLERANCE[act], `rmsNormResidual x ${act} [${rows}, ${cols}]`);
          expectClose(
            await out.read(),
            rmsNormRef(added, w2s, rows, cols, 1e-5),
            TOLERANCE[act],
            `rmsNormResidual out ${act} [${rows}, ${cols}]`,
          );
          g.dispose();
          for (const t of [x, y, w1, w2, out]) t.dispose();
        });
      }
    }
  }

  it('refuses a branch of another shape or aliased tensors, naming them', async () => {
    const x = await Tensor.fromArray(device, 'f32', [2, 8], new Float32Array(16), 'residual');
    const y = await Tensor.fromArray(device, 'f32', [2, 7], new Float32Array(14), 'o_proj_out');
    const w = await Tensor.fromArray(device, 'f32', [8], new Float32Array(8), 'post_self_attn_layernorm.weight');
    expect(() => rmsNormResidual(new Graph(device), x, y, w, w, 1e-5)).toThrow(
      /branch 'o_proj_out' has shape \[2, 7\]; expected \[2, 8\]/,
    );
    expect(() => rmsNormResidual(new Graph(device), x, x, w, w, 1e-5)).toThrow(InputError);
    for (const t of [x, y, w]) t.dispose();
  });
});

describe('layerNorm', () => {
  for (const wd of ['f32', 'bf16'] as const) {
    for (const [rows, cols] of SHAPES) {
      it(`${wd} weight and bias, [${rows}, ${cols}]`, async () => {
        const seed = rows * 7 + cols;
        const xs = asStored('f32', normal(rows * cols, seed, 2)).map((v) => v + 5); // offset mean: tests the two-pass variance
        const ws = asStored(wd, normal(cols, seed + 1));
        const bs = asStored(wd, normal(cols, seed + 2));
        const x = await Tensor.fromArray(device, 'f32', [rows, cols], xs);
        const w = await Tensor.fromArray(device, wd, [cols], ws);
        const b = await Tensor.fromArray(device, wd, [cols], bs);
        const out = await poisoned(device, 'f32', [rows, cols]);
        const g = new Graph(device);
        layerNorm(g, x, w, b, 1e-5, out);
        await g.run();
        // cols = 1: the variance is exactly 0, so y = b; f32 rounding of x − mean is the only error
        expectClose(
          await out.read(),
          layerNormRef(xs, ws, bs, rows, cols, 1e-5),
          TOLERANCE.f32,
          `layerNorm ${wd} [${rows}, ${cols}]`,
        );
        g.dispose();
        for (const t of [x, w, b, out]) t.dispose();
      });
    }
  }
});

describe('norm argument checks', () => {
  it('refuses an output of another dtype and parameters of the wrong type, naming them', async () => {
    const x = await Tensor.fromArray(device, 'f32', [2, 4], new Float32Array(8));
    const w = await Tensor.fromArray(device, 'f32', [4], new Float32Array(4), 'post_projection_norm.weight');
    const b = await Tensor.fromArray(device, 'i32', [4], new Int32Array(4), 'post_projection_norm.bias');
    const half = await Tensor.empty(device, 'f16', [2, 4], 'half_out');
    expect(() => layerNorm(new Graph(device), x, w, w, 1e-5, half)).toThrow(
      /layerNorm output 'half_out' has dtype f16/,
    );
    expect(() => layerNorm(new Graph(device), x, w, b, 1e-5)).toThrow(/post_projection_norm\.bias' has dtype i32/);
    expect(() => rmsNorm(new Graph(device), x, w, 1e-5, half)).toThrow(InputError);
    for (const t of [x, w, b, half]) t.dispose();
  });
});
