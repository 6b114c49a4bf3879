// Element types and exact conversions between f32 and the 16-bit formats.
// bf16 and f16 tensors are stored as packed pairs in u32 words (element 2i in the low half), so a 16-bit
// tensor's byte size is rounded up to a multiple of 4.

import { InputError } from './errors.js';

export type DType = 'f32' | 'f16' | 'bf16' | 'i32' | 'u32';
export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'i32', 'u32'];

/** Bytes per element. */
export function itemSize(dtype: DType): number {
  return dtype === 'f16' || dtype === 'bf16' ? 2 : 4;
}

/** Bytes a tensor of `numel` elements occupies on the GPU (16-bit types padded to whole u32 words). */
export function storageBytes(dtype: DType, numel: number): number {
  return Math.ceil((numel * itemSize(dtype)) / 4) * 4;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new InputError(`invalid shape [${shape.join(', ')}]: dimensions must be non-negative integers`);
    n *= d;
  }
  return n;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** f32 → bf16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBf16(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0];
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

export function bf16ToF32(bits: number): number {
  u32Scratch[0] = (bits & 0xffff) << 16;
  return f32Scratch[0];
}

/** f32 → f16 bits, round to nearest even, with subnormals, overflow to infinity, NaN kept. */
export function f32ToF16(v: number): number {
  f32Scratch[0] = v;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e > 0) {
    let h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is the correct result
    return sign | h;
  }
  // Subnormal half: value = m · 2^(exp − 150), half unit = 2^−24, so h = m / 2^(126 − exp).
  const shift = 126 - exp;
  if (shift >= 25) return sign;
  const m = mant | 0x800000;
  let h = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && h & 1)) h++;
  return sign | h;
}

export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export type HostArray = Float32Array | Int32Array | Uint32Array | Uint16Array | Float64Array | readonly number[];

/**
 * Encodes host values as the bytes a tensor of `dtype` holds on the GPU.
 * For f16/bf16 a Uint16Array is taken as raw bits; any other array is rounded to nearest even.
 */
export function encode(dtype: DType, data: HostArray): Uint8Array {
  const n = data.length;
  const out = new Uint8Array(storageBytes(dtype, n));
  if (dtype === 'f16' || dtype === 'bf16') {
    const bits = new Uint16Array(out.buffer, 0, out.byteLength / 2);
    if (data instanceof Uint16Array) bits.set(data);
    else {
      const conv = dtype === 'f16' ? f32ToF16 : f32ToBf16;
      for (let i = 0; i < n; i++) bits[i] = conv(data[i]);
    }
    return out;
  }
  const view =
    dtype === 'f32'
      ? new Float32Array(out.buffer)
      : dtype === 'i32'
        ? new Int32Array(out.buffer)
        : new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) view[i] = data[i];
  return out;
}

/** Decodes GPU bytes to host values: 16-bit floats widen exactly to f32. */
export function decode(dtype: DType, bytes: Uint8Array, numel: number): Float32Array | Int32Array | Uint32Array {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  if (dtype === 'f32') return new Float32Array(aligned.buffer, aligned.byteOffset, numel).slice();
  if (dtype === 'i32') return new Int32Array(aligned.buffer, aligned.byteOffset, numel).slice();
  if (dtype === 'u32') return new Uint32Array(aligned.buffer, aligned.byteOffset, numel).slice();
  const bits = new Uint16Array(aligned.buffer, aligned.byteOffset, numel);
  const out = new Float32Array(numel);
  const conv = dtype === 'f16' ? f16ToF32 : bf16ToF32;
  for (let i = 0; i < numel; i++) out[i] = conv(bits[i]);
  return out;
}
