import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, Graph, InputError, Tensor } from '@glm4v/core';
import { TOLERANCE, asStored, expectClose, normal, poisoned, rng } from '@glm4v/core/testing';
import { downsample, patchEmbed, permuteDownsampleWeight } from './patch_embed.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

/** Reference on raw element bits: W'[o][(2i + j)·C + ch] = W[o][ch][i][j]. */
function permuteRef<T extends Uint16Array | Uint32Array>(w: T, o: number, c: number): T {
  const out = new (w.constructor as new (n: number) => T)(w.length);
  for (let oo = 0; oo < o; oo++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < 2; i++)
        for (let j = 0; j < 2; j++) out[oo * 4 * c + (2 * i + j) * c + ch] = w[((oo * c + ch) * 2 + i) * 2 + j];
    }
  }
  return out;
}

function randomBits(n: number, seed: number, wide: boolean): Uint16Array | Uint32Array {
  const r = rng(seed);
  return wide
    ? Uint32Array.from({ length: n }, () => Math.floor(r() * 2 ** 32))
    : Uint16Array.from({ length: n }, () => Math.floor(r() * 2 ** 16));
}

async function permuteOnGpu(
  dtype: 'f32' | 'f16' | 'bf16' | 'i32',
  o: number,
  c: number,
  bits: Uint16Array | Uint32Array,
) {
  const w = await Tensor.empty(device, dtype, [o, c, 2, 2], 'downsample.weight');
  w.writeBytes(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
  const g = new Graph(device);
  const out = g.keep(permuteDownsampleWeight(g, w));
  expect(out.shape).toEqual([o, 4 * c]);
  expect(out.dtype).toBe(dtype);
  await g.run();
  const bytes = await out.readBytes();
  g.dispose();
  w.dispose();
  return bytes;
}

describe('permuteDownsampleWeight', () => {
  for (const dtype of ['bf16', 'f16', 'f32'] as const) {
    for (const [o, c] of [
      [1, 1],
      [3, 3],
      [7, 17],
      [5, 127],
      [1, 2],
      [3, 8],
      [2, 1536],
    ] as const) {
      it(`${dtype} [${o}, ${c}, 2, 2] → [${o}, ${4 * c}], bit for bit`, async () => {
        const wide = dtype === 'f32';
        const bits = randomBits(o * c * 4, o * 1000 + c, wide);
        const bytes = await permuteOnGpu(dtype, o, c, bits);
        const got = wide
          ? new Uint32Array(bytes.buffer, 0, bits.length)
          : new Uint16Array(bytes.buffer, 0, bits.length);
        const ref = permuteRef(bits, o, c);
        for (let k = 0; k < ref.length; k++)
          if (got[k] !== ref[k])
            throw new Error(
              `${dtype} [${o}, ${c}]: element ${k} is 0x${got[k].toString(16)}, expected 0x${ref[k].toString(16)}`,
            );
      });
    }
  }

  it('more than 65535 workgroups (bf16 [5500, 1535, 2, 2], odd C: one word per invocation, a 2-D grid)', async () => {
    const [o, c] = [5500, 1535]; // 16.9 M output words; the last ~36 rows lie past workgroup 65535
    const bits = new Uint16Array(o * c * 4);
    for (let k = 0; k < bits.length; k++) bits[k] = Math.imul(k, 0x9e3779b1) >>> 16; // a misplaced element shows
    const w = await Tensor.empty(device, 'bf16', [o, c, 2, 2], 'downsample.weight');
    w.writeBytes(new Uint8Array(bits.buffer));
    const g = new Graph(device);
    const out = g.keep(permuteDownsampleWeight(g, w));
    await g.run();
    for (const [lo, hi] of [
      [0, 8],
      [o - 200, o],
    ]) {
      // rows lo..hi only, to stay fast
      const got = new Uint16Array(
        (await out.view([hi - lo, 4 * c], lo * 4 * c).readBytes()).buffer,
        0,
        (hi - lo) * 4 * c,
      );
      const ref = permuteRef(bits.subarray(lo * 4 * c, hi * 4 * c), hi - lo, c);
      for (let k = 0; k < ref.length; k++)
        if (got[k] !== ref[k])
          throw new Error(
            `row ${lo + Math.floor(k / (4 * c))}: element ${k % (4 * c)} is ${got[k]}, expected ${ref[k]}`,
          );
    }
    g.dispose();
    w.dispose();
  });

  it('moves i32 like f32', async () => {
    const bits = randomBits(3 * 5 * 4, 1, true);
    const got = new Uint32Array((await permuteOnGpu('i32', 3, 5, bits)).buffer, 0, bits.length);
    expect(Array.from(got)).toEqual(Array.from(permuteRef(bits, 3, 5)));
  });

  it('rejects a weight that is not [O, C, 2, 2]', async () => {
    const w = await Tensor.empty(device, 'bf16', [8, 3, 2, 3], 'model.visual.downsample.weight');
    expect(() => permuteDownsampleWeight(new Graph(device), w)).toThrow(InputError);
    expect(() => permuteDownsampleWeight(new Graph(device), w)).toThrow(
      /downsample\.weight.*\[8, 3, 2, 3\].*\[\?, \?, 2, 2\]/,
    );
    w.dispose();
  });
});

// ---- float64 references for the two convolutions, written as convolutions (not as the GEMMs they become)

/** Conv3d, kernel = stride = (T, P, P), over patches whose vector holds img[ch][t][y][x] at ch·T·P·P + t·P·P + y·P + x. */
/** Also returns the largest Σ|w·x| + |b| of an output: the natural scale of a dot product's rounding error. */
function patchConvRef(
  px: Float64Array,
  s: number,
  w: Float64Array,
  b: Float64Array,
  o: number,
  [C, T, P]: number[],
): [Float64Array, number] {
  const k = C * T * P * P;
  const out = new Float64Array(s * o);
  let mag = 0;
  for (let n = 0; n < s; n++) {
    for (let oo = 0; oo < o; oo++) {
      let acc = b[oo];
      let abs = Math.abs(b[oo]);
      for (let ch = 0; ch < C; ch++) {
        for (let t = 0; t < T; t++) {
          for (let y = 0; y < P; y++) {
            for (let x = 0; x < P; x++) {
              const term = w[(((oo * C + ch) * T + t) * P + y) * P + x] * px[n * k + ((ch * T + t) * P + y) * P + x];
              acc += term;
              abs += Math.abs(term);
            }
          }
        }
      }
      out[n * o + oo] = acc;
      mag = Math.max(mag, abs);
    }
  }
  return [out, mag];
}

/** The 2×2 stride-2 conv over each merge window, whose patch (i, j) is row 4n + 2i + j of x.  (docs/model.md#downsample) */
function downsampleConvRef(
  x: Float64Array,
  s: number,
  c: number,
  w: Float64Array,
  b: Float64Array,
  o: number,
): [Float64Array, number] {
  const out = new Float64Array((s / 4) * o);
  let mag = 0;
  for (let n = 0; n < s / 4; n++) {
    for (let oo = 0; oo < o; oo++) {
      let acc = b[oo];
      let abs = Math.abs(b[oo]);
      for (let ch = 0; ch < c; ch++) {
        for (let i = 0; i < 2; i++) {
          for (let j = 0; j < 2; j++) {
            const term = w[((oo * c + ch) * 2 + i) * 2 + j] * x[(4 * n + 2 * i + j) * c + ch];
            acc += term;
            abs += Math.abs(term);
          }
        }
      }
      out[n * o + oo] = acc;
      mag = Math.max(mag, abs);
    }
  }
  return [out, mag];
}

describe('patchEmbed', () => {
  for (const wd of ['bf16', 'f32'] as const) {
    for (const [s, hidden, dims] of [
      [1, 8, [3, 2, 14]],
      [17, 5, [3, 2, 14]],
    ] as const) {
      it(`${wd} weight [${hidden}, ${dims[0]}, ${dims[1]}, ${dims[2]}, ${dims[2]}], ${s} patches`, async () => {
        const k = dims[0] * dims[1] * dims[2] * dims[2];
        const px = asStored('f32', normal(s * k, s + k));
        const ws = asStored(wd, normal(hidden * k, hidden, 0.05));
        const bs = asStored(wd, normal(hidden, 3));
        const patches = await Tensor.fromArray(device, 'f32', [s, k], px, 'pixel_values');
        const w = await Tensor.fromArray(
          device,
          wd,
          [hidden, dims[0], dims[1], dims[2], dims[2]],
          ws,
          'patch_embed.proj.weight',
        );
        const b = await Tensor.fromArray(device, wd, [hidden], bs, 'patch_embed.proj.bias');
        const out = await poisoned(device, 'f32', [s, hidden]);
        const g = new Graph(device);
        g.copy(patchEmbed(g, patches, w, b), out);
        await g.run();
        const [ref, mag] = patchConvRef(px, s, ws, bs, hidden, [...dims]);
        // K-long f32 dot products: rounding scales with Σ|w·x|, not with the (much smaller, cancelling) sums
        expectClose(await out.read(), ref, TOLERANCE.f32, `patchEmbed ${wd} [${s}, ${k}]`, mag);
        g.dispose();
        for (const t of [patches, w, b, out]) t.dispose();
      });
    }
  }

  it('rejects patches of the wrong length', async () => {
    const patches = await Tensor.empty(device, 'f32', [4, 1175], 'pixel_values');
    const w = await Tensor.empty(device, 'bf16', [8, 3, 2, 14, 14], 'patch_embed.proj.weight');
    const b = await Tensor.empty(device, 'bf16', [8], 'patch_embed.proj.bias');
    expect(() => patchEmbed(new Graph(device), patches, w, b)).toThrow(/pixel_values.*\[4, 1175\].*\[\?, 1176\]/);
    for (const t of [patches, w, b]) t.dispose();
  });
});

describe('downsample', () => {
  for (const [s, c, o] of [
    [4, 3, 5],
    [12, 8, 7],
    [20, 17, 3],
    [8, 1536, 16],
  ] as const) {
    it(`bf16 weight [${o}, ${c}, 2, 2] permuted on the GPU, x [${s}, ${c}] → [${s / 4}, ${o}]`, async () => {
      const xs = asStored('f32', normal(s * c, s + c));
      const ws = asStored('bf16', normal(o * c * 4, o + c, 0.05));
      const bs = asStored('bf16', normal(o, 5));
      const x = await Tensor.fromArray(device, 'f32', [s, c], xs, 'post_layernorm_out');
      const w = await Tensor.fromArray(device, 'bf16', [o, c, 2, 2], ws, 'downsample.weight');
      const b = await Tensor.fromArray(device, 'bf16', [o], bs, 'downsample.bias');
      const out = await poisoned(device, 'f32', [s / 4, o]);
      const g = new Graph(device);
      g.copy(downsample(g, x, permuteDownsampleWeight(g, w), b), out);
      await g.run();
      const [ref, mag] = downsampleConvRef(xs, s, c, ws, bs, o);
      expectClose(await out.read(), ref, TOLERANCE.f32, `downsample [${s}, ${c}] → ${o}`, mag); // scale Σ|w·x|, as above
      g.dispose();
      for (const t of [x, w, b, out]) t.dispose();
    });
  }

  it('rejects a patch count that is not whole windows, and a weight that was not permuted', async () => {
    const x = await Tensor.empty(device, 'f32', [6, 8], 'hidden');
    const x8 = await Tensor.empty(device, 'f32', [8, 8], 'hidden');
    const w = await Tensor.empty(device, 'bf16', [4, 32], 'downsample.weight');
    const raw = await Tensor.empty(device, 'bf16', [4, 8, 2, 2], 'downsample.weight');
    const b = await Tensor.empty(device, 'bf16', [4], 'downsample.bias');
    expect(() => downsample(new Graph(device), x, w, b)).toThrow(/hidden.*\[6, 8\].*multiple of 4/);
    expect(() => downsample(new Graph(device), x8, raw, b)).toThrow(/downsample\.weight.*\[4, 8, 2, 2\].*\[\?, 32\]/);
    for (const t of [x, x8, w, raw, b]) t.dispose();
  });
});
