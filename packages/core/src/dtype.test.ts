import { describe, expect, it } from 'vitest';
import { bf16ToF32, decode, encode, f16ToF32, f32ToBf16, f32ToF16, storageBytes } from './dtype.js';

describe('f16', () => {
  it('round-trips every non-NaN bit pattern exactly', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = f16ToF32(h);
      if (Number.isNaN(v)) {
        expect(Number.isNaN(f16ToF32(f32ToF16(v)))).toBe(true);
        continue;
      }
      expect(f32ToF16(v)).toBe(h);
    }
  });

  it('rounds to nearest even between neighbours, subnormals included', () => {
    for (const h of [0x0000, 0x0001, 0x0002, 0x03ff, 0x0400, 0x3c00, 0x3c01, 0x7bfe, 0x8001, 0xbc00]) {
      const lo = f16ToF32(h);
      const hi = f16ToF32(h + 1);
      const mid = (lo + hi) / 2; // exactly representable in f32 for all these
      expect(f32ToF16(mid)).toBe(h % 2 === 0 ? h : h + 1);
      expect(f32ToF16(lo + (hi - lo) * 0.25)).toBe(h);
      expect(f32ToF16(lo + (hi - lo) * 0.75)).toBe(h + 1);
    }
  });

  it('overflows to infinity and underflows to signed zero', () => {
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // halfway to 2^16 rounds up to infinity
    expect(f32ToF16(-1e9)).toBe(0xfc00);
    expect(f32ToF16(2 ** -26)).toBe(0);
    expect(f32ToF16(-(2 ** -26))).toBe(0x8000);
    expect(f32ToF16(2 ** -25 * 1.0001)).toBe(1);
  });
});

describe('bf16', () => {
  it('widens exactly and rounds to nearest even', () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc000)).toBe(-2);
    expect(f32ToBf16(1)).toBe(0x3f80);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0)
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80);
    // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6)
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(f32ToBf16(Infinity)).toBe(0x7f80);
    expect(Number.isNaN(bf16ToF32(f32ToBf16(NaN)))).toBe(true);
    expect(f32ToBf16(3.4028234663852886e38)).toBe(0x7f80); // rounds up past the largest bf16
  });

  it('round-trips every non-NaN bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = bf16ToF32(h);
      if (!Number.isNaN(v)) expect(f32ToBf16(v)).toBe(h);
    }
  });
});

describe('encode/decode', () => {
  it('pads 16-bit tensors to whole words and decodes back', () => {
    expect(storageBytes('bf16', 3)).toBe(8);
    expect(storageBytes('f16', 4)).toBe(8);
    const bytes = encode('bf16', [1, -2, 0.5]);
    expect(bytes.byteLength).toBe(8);
    expect(Array.from(decode('bf16', bytes, 3))).toEqual([1, -2, 0.5]);
    const raw = encode('f16', new Uint16Array([0x3c00, 0xc000]));
    expect(Array.from(decode('f16', raw, 2))).toEqual([1, -2]);
  });
});
