import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, Graph, InputError, Tensor } from '@glm4v/core';
import { rng } from '@glm4v/core/testing';
import { permuteDownsampleWeight } from './patch_embed.js';

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
      for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) out[oo * 4 * c + (2 * i + j) * c + ch] = w[((oo * c + ch) * 2 + i) * 2 + j];
    }
  }
  return out;
}

function randomBits(n: number, seed: number, wide: boolean): Uint16Array | Uint32Array {
  const r = rng(seed);
  return wide ? Uint32Array.from({ length: n }, () => Math.floor(r() * 2 ** 32)) : Uint16Array.from({ length: n }, () => Math.floor(r() * 2 ** 16));
}

async function permuteOnGpu(dtype: 'f32' | 'f16' | 'bf16' | 'i32', o: number, c: number, bits: Uint16Array | Uint32Array) {
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
    for (const [o, c] of [[1, 1], [3, 3], [7, 17], [5, 127], [1, 2], [3, 8], [2, 1536]] as const) {
      it(`${dtype} [${o}, ${c}, 2, 2] → [${o}, ${4 * c}], bit for bit`, async () => {
        const wide = dtype === 'f32';
        const bits = randomBits(o * c * 4, o * 1000 + c, wide);
        const bytes = await permuteOnGpu(dtype, o, c, bits);
        const got = wide ? new Uint32Array(bytes.buffer, 0, bits.length) : new Uint16Array(bytes.buffer, 0, bits.length);
        const ref = permuteRef(bits, o, c);
        for (let k = 0; k < ref.length; k++) if (got[k] !== ref[k]) throw new Error(`${dtype} [${o}, ${c}]: element ${k} is 0x${got[k].toString(16)}, expected 0x${ref[k].toString(16)}`);
      });
    }
  }

  it('more than 65535 workgroups (bf16 [5500, 1535, 2, 2], odd C: one word per invocation, a 2-D grid)', async () => {
    const [o, c] = [5500, 1535]; // 16.9 M output words
    const bits = new Uint16Array(o * c * 4);
    for (let k = 0; k < bits.length; k++) bits[k] = Math.imul(k, 0x9e3779b1) >>> 16; // a misplaced element shows
    const got = new Uint16Array((await permuteOnGpu('bf16', o, c, bits)).buffer, 0, bits.length);
    const ref = permuteRef(bits, o, c);
    for (let k = 0; k < ref.length; k++) if (got[k] !== ref[k]) throw new Error(`element ${k} is ${got[k]}, expected ${ref[k]}`);
  });

  it('moves i32 like f32', async () => {
    const bits = randomBits(3 * 5 * 4, 1, true);
    const got = new Uint32Array((await permuteOnGpu('i32', 3, 5, bits)).buffer, 0, bits.length);
    expect(Array.from(got)).toEqual(Array.from(permuteRef(bits, 3, 5)));
  });

  it('rejects a weight that is not [O, C, 2, 2]', async () => {
    const w = await Tensor.empty(device, 'bf16', [8, 3, 2, 3], 'model.visual.downsample.weight');
    expect(() => permuteDownsampleWeight(new Graph(device), w)).toThrow(InputError);
    expect(() => permuteDownsampleWeight(new Graph(device), w)).toThrow(/downsample\.weight.*\[8, 3, 2, 3\].*\[\?, \?, 2, 2\]/);
    w.dispose();
  });
});
