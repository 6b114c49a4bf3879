// The host quantiser for the formats of quant.ts: rows of weights → codes and f16 scales, and back.
//
// Per block of the row (the last one may be short; its padding gets code 0):
//   q8: d = f16(max |w| / 127),            q = round(w / d) in −127..127,      w' = d·q
//   q4: d = f16((max w − min w) / 15), m = f16(min w),  q = round((w − m) / d) in 0..15,  w' = d·q + m
// f16(·) rounds a double to the nearest f16 (ties to even); round(·) is to nearest, ties to even, computed with
// the stored (rounded) d and m, so each code is the nearest one for the values the kernels really read. A block
// whose d is 0 (all zero, or all equal) gets code 0 everywhere (w' = m). Non-finite weights, and blocks whose
// scale or min do not fit f16, are refused (InputError naming the matrix and row): a kernel would read inf or NaN.
// Runs on the host as weights stream from disk, one piece of rows at a time, so no GPU and no whole-model copy is
// needed; loading quantises with exactly this code, and `glm4v-run quantize` writes its output.

import { InputError, f16ToF32, type DType } from '@glm4v/core';
import {
  type QuantLayout,
  type QuantizedRows,
  blocksPerRow,
  rowBytes,
  scaleWordsPerRow,
  wordsPerBlock,
} from './quant.js';

/** Nearest to even, for |x| < 2^52. */
function rne(x: number): number {
  const r = Math.round(x); // ties up
  return r - x === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

const bits64 = new Float64Array(1);
const words64 = new Uint32Array(bits64.buffer);
/** 2^(e + 40) for e in [−40, 40]: exact powers of two without Math.pow in the loop. */
const POW2 = Float64Array.from({ length: 81 }, (_, i) => 2 ** (i - 40));

/** The f16 nearest to a double (ties to even), as bits; ±Infinity beyond the range, NaN as a quiet NaN. */
export function f16Bits(v: number): number {
  if (v !== v) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = v < 0 ? -v : v;
  if (a >= 65520) return sign | 0x7c00; // 65504 plus half its ulp rounds to infinity
  if (a < 2 ** -14) return sign | rne(a * 2 ** 24); // subnormal, in units of 2^-24 (1024 is the smallest normal)
  bits64[0] = a;
  const e = ((words64[1] >>> 20) & 0x7ff) - 1023; // a = 1.f · 2^e
  // mantissa in [1024, 2048]; 2048 carries into the exponent, which is the right encoding
  return sign | (((e + 15) << 10) + rne(a * POW2[50 - e]) - 1024);
}

let f16Table: Float32Array | undefined;
/** Every f16 bit pattern's value. */
function f16Values(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

/** Sizes of the host arrays for `rows` rows. */
export function quantizedSize(l: QuantLayout, rows: number, K: number): { words: number; halves: number } {
  const b = rowBytes(l, K);
  return { words: (rows * b.data) / 4, halves: (rows * b.scales) / 2 };
}

/**
 * Quantises `rows` rows of K weights (row-major in `src`) into `out` (allocated when not given). `label` and
 * `row0` (the first row's index in the whole matrix) name the place of a bad value in errors.
 */
export function quantizeRows(
  l: QuantLayout,
  src: Float32Array,
  rows: number,
  K: number,
  label: string,
  row0 = 0,
  out?: QuantizedRows,
): QuantizedRows {
  const size = quantizedSize(l, rows, K);
  if (src.length < rows * K)
    throw new InputError(`quantising '${label}': ${src.length} values given for ${rows} rows of ${K}`);
  const q = out ?? { data: new Uint32Array(size.words), scales: new Uint16Array(size.halves) };
  if (q.data.length < size.words || q.scales.length < size.halves)
    throw new InputError(`quantising '${label}': output arrays too small for ${rows} rows`);
  const blocks = blocksPerRow(l, K);
  const blockBytes = wordsPerBlock(l) * 4;
  const scaleHalves = 2 * scaleWordsPerRow(l, K);
  const bytes = new Uint8Array(q.data.buffer, q.data.byteOffset, size.words * 4);
  const table = f16Values();
  for (let r = 0; r < rows; r++) {
    q.scales[(r + 1) * scaleHalves - 1] = 0; // a q8 row with an odd block count ends in a padding half
    for (let b = 0; b < blocks; b++) {
      const k0 = r * K + b * l.block;
      const n = Math.min(K - b * l.block, l.block);
      const at = (r * blocks + b) * blockBytes;
      const ok =
        l.bits === 8
          ? q8Block(src, k0, n, l.block, bytes, at, q.scales, r * scaleHalves + b, table)
          : q4Block(src, k0, n, l.block, bytes, at, q.scales, r * scaleHalves + 2 * b, table);
      if (!ok) throw badBlock(src, k0, k0 + n, l, label, row0 + r, b);
    }
  }
  return q;
}

function badBlock(
  src: Float32Array,
  k0: number,
  k1: number,
  l: QuantLayout,
  label: string,
  row: number,
  b: number,
): InputError {
  for (let k = k0; k < k1; k++) {
    if (!Number.isFinite(src[k]))
      return new InputError(
        `quantising '${label}' to ${l.name}: row ${row} has a non-finite weight (${src[k]}) at column ${b * l.block + k - k0}`,
      );
  }
  return new InputError(
    `quantising '${label}' to ${l.name}: row ${row}, block ${b} holds weights too large for an f16 scale (|w| up to ${Math.max(...Array.from(src.subarray(k0, k1), Math.abs))})`,
  );
}

/**
 * The codes nearest to v / d (ties to even), as floor(v · (1/d) + 0.5 + bias) − bias with a bias that keeps the
 * argument positive (so `| 0` floors it). v · (1/d) is within a few ulps of the quotient, which decides every case
 * but a near-tie (the fraction within 1e-6 of 0); those take the exact (correctly rounded) quotient. This loop is
 * most of the time spent quantising on load.
 */
function code8(v: number, d: number, inv: number): number {
  const t = v * inv + 128.5;
  let c = t | 0;
  if (t - c < 1e-6) c = rne(v / d) + 128;
  c -= 128;
  return c > 127 ? 127 : c < -127 ? -127 : c;
}

function code4(v: number, d: number, inv: number): number {
  const t = v * inv + 0.5; // v = w − m ≥ 0 up to m's rounding
  let c = t | 0;
  if (t - c < 1e-6) c = rne(v / d);
  return c > 15 ? 15 : c < 0 ? 0 : c;
}

/** One q8 block: n weights from src[k0] into `block` code bytes at bytes[at] (two's complement); false when a weight is not finite or the scale overflows f16. */
function q8Block(
  src: Float32Array,
  k0: number,
  n: number,
  block: number,
  bytes: Uint8Array,
  at: number,
  scales: Uint16Array,
  si: number,
  table: Float32Array,
): boolean {
  let amax = 0;
  let bad = 0;
  for (let k = k0; k < k0 + n; k++) {
    const w = src[k];
    bad += w - w; // NaN for an infinite or NaN weight
    amax = Math.max(amax, Math.abs(w)); // branch-free: signs are random
  }
  const bits = f16Bits(amax / 127);
  const d = table[bits];
  if (bad !== 0 || d === Infinity) return false;
  scales[si] = bits;
  if (d === 0 || n < block) bytes.fill(0, at + (d === 0 ? 0 : n), at + block); // padding, or every code of an all-zero block
  if (d === 0) return true;
  const inv = 1 / d;
  for (let k = 0; k < n; k++) bytes[at + k] = code8(src[k0 + k], d, inv);
  return true;
}

/** One q4 block: n weights from src[k0] into `block` / 2 code bytes at bytes[at]; false when a weight is not finite or the scale or min overflows f16. */
function q4Block(
  src: Float32Array,
  k0: number,
  n: number,
  block: number,
  bytes: Uint8Array,
  at: number,
  scales: Uint16Array,
  si: number,
  table: Float32Array,
): boolean {
  let lo = Infinity;
  let hi = -Infinity;
  let bad = 0;
  for (let k = k0; k < k0 + n; k++) {
    const w = src[k];
    bad += w - w;
    lo = Math.min(lo, w);
    hi = Math.max(hi, w);
  }
  const dBits = f16Bits((hi - lo) / 15);
  const mBits = f16Bits(lo);
  const d = table[dBits];
  const m = table[mBits];
  if (bad !== 0 || d === Infinity || !(m - m === 0)) return false;
  scales[si] = dBits;
  scales[si + 1] = mBits;
  if (d === 0 || n < block) {
    // byte i of the word of weights 8j..8j+7: weight 8j + i in the low nibble, 8j + 4 + i in the high one
    const code = (k: number) => (k < n && d !== 0 ? code4(src[k0 + k] - m, d, 1 / d) : 0);
    for (let k = 0; k < block; k += 8)
      for (let i = 0; i < 4; i++) bytes[at + (k >> 1) + i] = code(k + i) | (code(k + 4 + i) << 4);
    return true;
  }
  const inv = 1 / d;
  for (let k = 0; k < block; k += 8) {
    const w = k0 + k;
    const o = at + (k >> 1);
    bytes[o] = code4(src[w] - m, d, inv) | (code4(src[w + 4] - m, d, inv) << 4);
    bytes[o + 1] = code4(src[w + 1] - m, d, inv) | (code4(src[w + 5] - m, d, inv) << 4);
    bytes[o + 2] = code4(src[w + 2] - m, d, inv) | (code4(src[w + 6] - m, d, inv) << 4);
    bytes[o + 3] = code4(src[w + 3] - m, d, inv) | (code4(src[w + 7] - m, d, inv) << 4);
  }
  return true;
}

/** The dequantised weights w' [rows, K] exactly (float64: d·q + m has no rounding), for references and error figures. */
export function dequantizeRows(l: QuantLayout, q: QuantizedRows, rows: number, K: number): Float64Array {
  const out = new Float64Array(rows * K);
  const blocks = blocksPerRow(l, K);
  const words = wordsPerBlock(l);
  const scaleHalves = 2 * scaleWordsPerRow(l, K);
  const table = f16Values();
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / l.block);
      const i = k - b * l.block; // index inside the block
      const base = (r * blocks + b) * words;
      let code: number;
      let d: number;
      let m = 0;
      if (l.bits === 8) {
        code = (q.data[base + (i >> 2)] << (24 - 8 * (i & 3))) >> 24;
        d = table[q.scales[r * scaleHalves + b]];
      } else {
        const word = q.data[base + (i >> 3)];
        const j = i & 7; // 0..3 low nibbles of bytes 0..3, 4..7 high nibbles
        code = (word >>> (j < 4 ? 8 * j : 8 * (j - 4) + 4)) & 15;
        d = table[q.scales[r * scaleHalves + 2 * b]];
        m = table[q.scales[r * scaleHalves + 2 * b + 1]];
      }
      out[r * K + k] = d * code + m;
    }
  }
  return out;
}

export type SourceDType = Extract<DType, 'bf16' | 'f16' | 'f32'>;

/** Checkpoint bytes (little-endian bf16, f16 or f32) as f32 values, into `out` (at least bytes / size values). */
export function widenToF32(dtype: SourceDType, bytes: Uint8Array, out: Float32Array): Float32Array {
  if (dtype === 'f32') {
    new Uint8Array(out.buffer, out.byteOffset, bytes.byteLength).set(bytes);
    return out.subarray(0, bytes.byteLength / 4);
  }
  const n = bytes.byteLength / 2;
  const src =
    bytes.byteOffset % 2 === 0
      ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
      : new Uint16Array(bytes.slice().buffer);
  if (dtype === 'bf16') {
    const bits = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
  } else {
    const table = f16Values();
    for (let i = 0; i < n; i++) out[i] = table[src[i]];
  }
  return out.subarray(0, n);
}
