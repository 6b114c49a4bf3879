// Helpers shared by the kernel, model and conformance tests (exported as '@glm4v/core/testing'):
// a seeded generator, poisoned outputs, and one tolerance table with a comparison that explains failures.

import type { Device } from './device.js';
import { type DType, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './dtype.js';
import { Tensor } from './tensor.js';
import { ChunkedTensor } from './chunked.js';

/** mulberry32: small, fast, reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` values uniform in [lo, hi). */
export function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

/** `n` standard normal values times `scale` (Box–Muller). */
export function normal(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12);
    const v = r();
    const m = Math.sqrt(-2 * Math.log(u)) * scale;
    out[i] = m * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = m * Math.sin(2 * Math.PI * v);
  }
  return out;
}

/** The values a tensor of `dtype` really holds after upload (16-bit rounding applied), as float64. */
export function asStored(dtype: DType, data: ArrayLike<number>): Float64Array {
  const out = Float64Array.from(data);
  if (dtype === 'f16') for (let i = 0; i < out.length; i++) out[i] = f16ToF32(f32ToF16(out[i]));
  if (dtype === 'bf16') for (let i = 0; i < out.length; i++) out[i] = bf16ToF32(f32ToBf16(out[i]));
  return out;
}

/** Every bit set: NaN for f32/f16/bf16, 0xffffffff for u32, -1 for i32. A kernel must overwrite all of it. */
export async function poisoned(device: Device, dtype: DType, shape: readonly number[], label = 'out'): Promise<Tensor> {
  const t = await Tensor.empty(device, dtype, shape, label);
  t.writeBytes(new Uint8Array(t.byteSize).fill(0xff));
  return t;
}

export async function poisonedChunked(
  device: Device,
  dtype: DType,
  shape: readonly number[],
  label = 'out',
  maxChunkBytes = Infinity,
): Promise<ChunkedTensor> {
  const m = await ChunkedTensor.empty(device, dtype, shape, label, maxChunkBytes);
  for (const c of m.chunks) c.tensor.writeBytes(new Uint8Array(c.tensor.byteSize).fill(0xff));
  return m;
}

export interface Tolerance {
  /** Absolute budget, as a fraction of `scale` (by default the largest |reference|). */
  atol: number;
  /** Relative budget, a fraction of |reference| at that element. */
  rtol: number;
}

/** One table for every test: the arithmetic/activation type decides the budget. */
export const TOLERANCE: Readonly<Record<'f32' | 'f16' | 'bf16', Tolerance>> = {
  f32: { atol: 2e-6, rtol: 2e-5 },
  f16: { atol: 2e-3, rtol: 4e-3 },
  bf16: { atol: 1e-2, rtol: 2e-2 },
};

export interface CloseReport {
  ok: boolean;
  worst: number;
  got: number;
  expected: number;
  /** The worst error as a fraction of its budget (≤ 1 passes). */
  ratio: number;
  maxAbs: number;
  message: string;
}

/**
 * Compares element by element: |got − ref| ≤ atol·scale + rtol·|ref|. NaN (an unwritten, poisoned element)
 * always fails. The report names the worst element, both values and the error as a fraction of its budget.
 */
export function compare(
  got: ArrayLike<number>,
  ref: ArrayLike<number>,
  tol: Tolerance,
  what: string,
  scale?: number,
): CloseReport {
  if (got.length !== ref.length) {
    return {
      ok: false,
      worst: -1,
      got: NaN,
      expected: NaN,
      ratio: Infinity,
      maxAbs: Infinity,
      message: `${what}: length ${got.length}, expected ${ref.length}`,
    };
  }
  let s = scale ?? 0;
  if (scale === undefined) for (let i = 0; i < ref.length; i++) s = Math.max(s, Math.abs(ref[i]));
  let worst = 0;
  let ratio = 0;
  let maxAbs = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    const budget = tol.atol * s + tol.rtol * Math.abs(ref[i]) || Number.MIN_VALUE;
    const r = Number.isNaN(d) ? Infinity : d / budget;
    if (!Number.isNaN(d)) maxAbs = Math.max(maxAbs, d);
    if (r > ratio) {
      ratio = r;
      worst = i;
    }
  }
  const ok = ratio <= 1;
  const message = `${what}: worst at [${worst}] got ${got[worst]}, expected ${ref[worst]}, |Δ| ${Math.abs(got[worst] - ref[worst]).toExponential(3)} = ${ratio.toFixed(3)}× budget (max |Δ| ${maxAbs.toExponential(3)}, scale ${s.toExponential(3)})`;
  return { ok, worst, got: got[worst], expected: ref[worst], ratio, maxAbs, message };
}

/** Throws with compare()'s explanation when any element is outside its budget. */
export function expectClose(
  got: ArrayLike<number>,
  ref: ArrayLike<number>,
  tol: Tolerance,
  what: string,
  scale?: number,
): CloseReport {
  const r = compare(got, ref, tol, what, scale);
  if (!r.ok) throw new Error(r.message);
  return r;
}

/** The error a promise rejects with; fails when it resolves (for assertions on the error's fields). */
export async function rejectionOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}
