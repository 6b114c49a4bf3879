// The host quantiser against a float64 reference of itself: the nearest f16 found by search, each code the one
// whose dequantised value is nearest (ties to the even code), the bit layout read back as quant.ts documents it.

import { describe, expect, it } from 'vitest';
import { InputError, bf16ToF32, f16ToF32 } from '@glm4v/core';
import { normal, rng } from '@glm4v/core/testing';
import {
  QUANT_FORMATS,
  type QuantLayout,
  type QuantizedRows,
  blocksPerRow,
  scaleWordsPerRow,
  wordsPerBlock,
} from './quant.js';
import { dequantizeRows, f16Bits, quantizeRows, widenToF32 } from './quantize.js';

const LAYOUTS = Object.values(QUANT_FORMATS);

/** Finite non-negative f16 values by bits 0..0x7bff (increasing). */
const F16 = Float64Array.from({ length: 0x7c00 }, (_, i) => f16ToF32(i));

/** Reference: the nearest finite f16 by binary search, ties to the even bit pattern; beyond 65504 + ulp/2, infinity. */
function nearestF16(v: number): number {
  const a = Math.abs(v);
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  if (a >= 65504 + 16) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (F16[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0x7bff || a - F16[lo] < F16[lo + 1] - a) return sign | lo;
  if (a - F16[lo] > F16[lo + 1] - a) return sign | (lo + 1);
  return sign | (lo % 2 === 0 ? lo : lo + 1);
}

/** Reference codes and scales: per block, d (and m) by the documented rule, each code by search over all codes. */
function quantizeRef(
  l: QuantLayout,
  w: ArrayLike<number>,
  rows: number,
  K: number,
): { codes: Int32Array; d: number[]; m: number[] } {
  const codes = new Int32Array(rows * K);
  const d: number[] = [];
  const m: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let k0 = 0; k0 < K; k0 += l.block) {
      const v = Array.from({ length: Math.min(l.block, K - k0) }, (_, i) => w[r * K + k0 + i]);
      const dBits =
        l.bits === 8
          ? nearestF16(Math.max(...v.map(Math.abs)) / 127)
          : nearestF16((Math.max(...v) - Math.min(...v)) / 15);
      const mBits = l.bits === 8 ? 0 : nearestF16(Math.min(...v));
      d.push(dBits);
      m.push(mBits);
      const [qmin, qmax] = l.bits === 8 ? [-127, 127] : [0, 15];
      v.forEach((x, i) => {
        let best = 0;
        if (f16ToF32(dBits) !== 0) {
          let err = Infinity;
          for (let q = qmin; q <= qmax; q++) {
            const e = Math.abs(x - (f16ToF32(dBits) * q + f16ToF32(mBits)));
            if (e < err || (e === err && q % 2 === 0)) [best, err] = [q, e];
          }
        }
        codes[r * K + k0 + i] = best;
      });
    }
  }
  return { codes, d, m };
}

/** Codes and scales read back from the packed arrays as quant.ts documents the layout. */
function unpack(
  l: QuantLayout,
  q: QuantizedRows,
  rows: number,
  K: number,
): { codes: Int32Array; d: number[]; m: number[] } {
  const codes = new Int32Array(rows * K);
  const d: number[] = [];
  const m: number[] = [];
  const blocks = blocksPerRow(l, K);
  const bytes = new Uint8Array(q.data.buffer, q.data.byteOffset, q.data.byteLength);
  const halves = 2 * scaleWordsPerRow(l, K);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      d.push(q.scales[r * halves + (l.bits === 8 ? b : 2 * b)]);
      m.push(l.bits === 8 ? 0 : q.scales[r * halves + 2 * b + 1]);
      const at = (r * blocks + b) * wordsPerBlock(l) * 4; // byte of the block's first word
      for (let i = 0; i < l.block && b * l.block + i < K; i++) {
        const k = r * K + b * l.block + i;
        if (l.bits === 8) codes[k] = (bytes[at + i] << 24) >> 24;
        else {
          const word = at + 4 * Math.floor(i / 8); // 8 weights per word: low nibbles first, then high
          codes[k] = i % 8 < 4 ? bytes[word + (i % 8)] & 15 : bytes[word + (i % 8) - 4] >> 4;
        }
      }
    }
  }
  return { codes, d, m };
}

function expectSameAsReference(l: QuantLayout, w: Float32Array, rows: number, K: number): QuantizedRows {
  const q = quantizeRows(l, w, rows, K, 'w');
  const got = unpack(l, q, rows, K);
  const ref = quantizeRef(l, w, rows, K);
  expect(got.d, `${l.name} scales`).toEqual(ref.d);
  expect(got.m, `${l.name} mins`).toEqual(ref.m);
  const bad = got.codes.findIndex((c, i) => c !== ref.codes[i]);
  if (bad >= 0)
    expect.fail(
      `${l.name} K=${K}: code of weight ${bad} (${w[bad]}) is ${got.codes[bad]}, reference ${ref.codes[bad]}`,
    );
  return q;
}

describe('f16Bits (a double to the nearest f16)', () => {
  it('matches the search reference on random doubles over the whole range and at the edges', () => {
    const r = rng(7);
    const values = [
      0,
      -0,
      1,
      65504,
      65519.99,
      65520,
      1e6,
      2 ** -24,
      2 ** -25,
      2 ** -25 * 1.0001,
      3 * 2 ** -25,
      2 ** -14,
      2 ** -14 - 2 ** -25,
    ];
    for (let i = 0; i < 20000; i++) values.push((r() - 0.5) * 2 ** (r() * 44 - 28));
    for (let i = 1; i < 0x7bff; i += 97) values.push((F16[i] + F16[i + 1]) / 2, -(F16[i] + F16[i + 1]) / 2); // exact ties
    for (const v of values) expect(f16Bits(v), `${v}`).toBe(nearestF16(v));
  });
});

describe('quantizeRows against the float64 reference', () => {
  for (const l of LAYOUTS) {
    it(`${l.name}: random rows, K a multiple of the block and not (1, 7, 31, 33, 100, 4097)`, () => {
      for (const K of [1, 7, 31, 32, 33, 64, 100, 4097]) expectSameAsReference(l, normal(3 * K, K, 0.02), 3, K);
    });

    it(`${l.name}: ties go to the even code`, () => {
      const d = 2 ** -7;
      const w = new Float32Array(32);
      if (l.bits === 8) {
        // max |w| = 127·d makes the scale exactly d; then k + 0.5 steps are ties
        w.set([127 * d, 2.5 * d, 3.5 * d, -2.5 * d, -3.5 * d, 0.5 * d, -0.5 * d, 1.5 * d, 126.5 * d]);
        const q = expectSameAsReference(l, w, 1, 32);
        expect(unpack(l, q, 1, 32).codes.slice(0, 9)).toEqual(Int32Array.from([127, 2, 4, -2, -4, 0, 0, 2, 126]));
      } else {
        // min −1 and max −1 + 15·d make (d, m) exact; then m + (k + 0.5)·d are ties
        w.fill(-1 + 7 * d);
        w.set([-1, -1 + 15 * d, -1 + 2.5 * d, -1 + 3.5 * d, -1 + 0.5 * d, -1 + 14.5 * d]);
        const q = expectSameAsReference(l, w, 1, 32);
        expect(unpack(l, q, 1, 32).codes.slice(0, 6)).toEqual(Int32Array.from([0, 15, 2, 4, 0, 14]));
      }
    });

    it(`${l.name}: an all-zero block has d = 0 and codes 0; a constant block is exact`, () => {
      const w = new Float32Array(3 * l.block);
      w.fill(0.375, l.block, 2 * l.block); // zero, constant (exact in f16), zero
      const q = expectSameAsReference(l, w, 1, w.length);
      const { codes, d } = unpack(l, q, 1, w.length);
      expect([d[0], d[2]]).toEqual([0, 0]);
      expect(codes.subarray(0, l.block).every((c) => c === 0)).toBe(true);
      // q4: d = 0 and m = 0.375, codes 0; q8: d = f16(0.375 / 127), codes 127
      expect(new Set(codes.subarray(l.block, 2 * l.block))).toEqual(new Set([l.bits === 8 ? 127 : 0]));
      if (l.bits === 4) expect(Array.from(dequantizeRows(l, q, 1, w.length))).toEqual(Array.from(w));
    });

    it(`${l.name}: an outlier takes its block's range and leaves the next block alone`, () => {
      const K = 3 * l.block + 5;
      const w = normal(2 * K, 3, 0.01);
      w[l.block + 3] = 40;
      w[K + 2] = -25;
      const q = expectSameAsReference(l, w, 2, K);
      const back = dequantizeRows(l, q, 2, K);
      const err = (a: number, b: number) =>
        Math.max(...Array.from({ length: b - a }, (_, i) => Math.abs(back[a + i] - w[a + i])));
      expect(err(0, l.block)).toBeLessThan(l.bits === 8 ? 5e-4 : 3e-3); // the block before the outlier keeps its precision
      expect(err(l.block, 2 * l.block)).toBeLessThan(l.bits === 8 ? 0.16 : 1.4); // half a step of a range of 40
    });

    it(`${l.name}: tiny weights (subnormal f16 scales) still match the reference`, () => {
      expectSameAsReference(l, normal(2 * 96, 5, 1e-6), 2, 96);
    });

    it(`${l.name}: dequantised weights are within half a step (plus f16 rounding) of the originals`, () => {
      const K = 4097;
      const w = normal(4 * K, 11, 0.05);
      const back = dequantizeRows(l, quantizeRows(l, w, 4, K, 'w'), 4, K);
      for (let r = 0; r < 4; r++) {
        for (let b = 0; b < blocksPerRow(l, K); b++) {
          const v = Array.from(w.subarray(r * K + b * l.block, r * K + Math.min(K, (b + 1) * l.block)));
          const step = l.bits === 8 ? Math.max(...v.map(Math.abs)) / 127 : (Math.max(...v) - Math.min(...v)) / 15;
          const mRounding = l.bits === 8 ? 0 : 2 ** -11 * Math.abs(Math.min(...v)); // m is min(w) rounded to f16
          v.forEach((x, i) =>
            expect(Math.abs(back[r * K + b * l.block + i] - x)).toBeLessThanOrEqual(step * 0.502 + mRounding),
          );
        }
      }
    });

    it(`${l.name}: refuses non-finite weights and scales beyond f16, naming the matrix, row and column`, () => {
      const w = normal(2 * 40, 1, 0.1);
      w[40 + 35] = NaN;
      expect(() => quantizeRows(l, w, 2, 40, 'layers.3.q_proj.weight', 8)).toThrow(InputError);
      expect(() => quantizeRows(l, w, 2, 40, 'layers.3.q_proj.weight', 8)).toThrow(
        /'layers\.3\.q_proj\.weight' to q\d: row 9 has a non-finite weight \(NaN\) at column 35/,
      );
      w[40 + 35] = Infinity;
      expect(() => quantizeRows(l, w, 2, 40, 'w')).toThrow(/non-finite weight \(Infinity\)/);
      const big = new Float32Array(32).fill(1e7);
      big[0] = -1e7;
      expect(() => quantizeRows(l, big, 1, 32, 'w')).toThrow(/too large for an f16 scale/);
    });
  }

  it('writes into given arrays, and a q8 row with an odd block count ends in a zero half', () => {
    const l = QUANT_FORMATS.q8;
    const out = { data: new Uint32Array(2 * 3 * 8), scales: new Uint16Array(2 * 4).fill(0xffff) };
    const q = quantizeRows(l, normal(2 * 70, 2), 2, 70, 'w', 0, out);
    expect(q).toBe(out);
    expect([out.scales[3], out.scales[7]]).toEqual([0, 0]);
  });
});

describe('widenToF32', () => {
  it('reads bf16, f16 and f32 checkpoint bytes exactly', () => {
    const bits = Uint16Array.from([0x3f80, 0xbf80, 0x0001, 0x7bff, 0x3c00, 0x8000]);
    const bytes = new Uint8Array(bits.buffer);
    expect(Array.from(widenToF32('bf16', bytes, new Float32Array(6)))).toEqual(Array.from(bits, bf16ToF32));
    expect(Array.from(widenToF32('f16', bytes, new Float32Array(6)))).toEqual(Array.from(bits, f16ToF32));
    const f = Float32Array.from([1.5, -2, 3e-30]);
    expect(Array.from(widenToF32('f32', new Uint8Array(f.buffer), new Float32Array(3)))).toEqual(Array.from(f));
  });
});
