import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device } from './device.js';
import { Tensor } from './tensor.js';
import { type DType, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './dtype.js';
import { InputError } from './errors.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

function randomValues(dtype: DType, n: number, seed: number): Float32Array | Int32Array | Uint32Array {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), s);
  if (dtype === 'i32') return Int32Array.from({ length: n }, () => next() | 0);
  if (dtype === 'u32') return Uint32Array.from({ length: n }, () => next());
  return Float32Array.from({ length: n }, () => ((next() / 2 ** 32) * 2 - 1) * 100);
}

describe('Tensor upload and download', () => {
  for (const dtype of ['f32', 'f16', 'bf16', 'i32', 'u32'] as const) {
    for (const n of [1, 3, 1023, 65537]) {
      it(`${dtype} × ${n} round-trips exactly`, async () => {
        const data = randomValues(dtype, n, n * 7 + dtype.length);
        const t = await Tensor.fromArray(device, dtype, [n], data, `rt_${dtype}_${n}`);
        const back = await t.read();
        t.dispose();
        expect(back.length).toBe(n);
        const expected =
          dtype === 'f16'
            ? data.map((v) => f16ToF32(f32ToF16(v)))
            : dtype === 'bf16'
              ? data.map((v) => bf16ToF32(f32ToBf16(v)))
              : data;
        for (let i = 0; i < n; i++)
          if (back[i] !== expected[i]) expect.fail(`${dtype}[${i}]: got ${back[i]}, expected ${expected[i]}`);
      });
    }
  }

  it('takes Uint16Array as raw bits for 16-bit types', async () => {
    const bits = new Uint16Array([0x3f80, 0x4000, 0xbf80]);
    const t = await Tensor.fromArray(device, 'bf16', [3], bits);
    expect(Array.from(await t.read())).toEqual([1, 2, -1]);
    const raw = await t.readBytes();
    expect(Array.from(new Uint16Array(raw.buffer, 0, 3))).toEqual([0x3f80, 0x4000, 0xbf80]);
    t.dispose();
  });

  it('rejects data of the wrong length, naming the tensor', async () => {
    await expect(Tensor.fromArray(device, 'f32', [2, 3], [1, 2, 3], 'weights')).rejects.toThrow(
      /'weights': 3 values given for shape \[2, 3\]/,
    );
    await expect(Tensor.fromArray(device, 'f32', [2, -1], [1], 'w')).rejects.toBeInstanceOf(InputError);
  });

  it('refuses a 16-bit write that would split a word it does not own', async () => {
    const t = await Tensor.fromArray(device, 'bf16', [6], [1, 2, 3, 4, 5, 6], 'w');
    expect(() => t.write([9, 9, 9], 0)).toThrow(/'w': a 16-bit write of 3 values at 0/);
    expect(() => t.write([9, 9], 1)).toThrow(InputError);
    t.write([0, 0], 0);
    expect(Array.from(await t.read())).toEqual([0, 0, 3, 4, 5, 6]);
    const odd = await Tensor.fromArray(device, 'f16', [5], [1, 2, 3, 4, 5]);
    odd.write([7, 8, 9], 2); // ends at the tensor's end: the padding half is its own
    expect(Array.from(await odd.read())).toEqual([1, 2, 7, 8, 9]);
    t.dispose();
    odd.dispose();
  });

  it('writes at an element offset', async () => {
    const t = await Tensor.fromArray(device, 'f32', [4], [0, 0, 0, 0]);
    t.write([5, 6], 2);
    expect(Array.from(await t.read())).toEqual([0, 0, 5, 6]);
    expect(() => t.write([1, 2, 3], 2)).toThrow(InputError);
    t.dispose();
  });
});
