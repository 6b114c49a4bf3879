// Fast random 16-bit float data for tests over tens of millions of elements, where asStored()/encode() of an f32
// array would take seconds: raw bits, two per xorshift32 draw.

/** Raw f16 bits of random values ±[0.125, 2): random sign and mantissa, exponent 12..15. */
export function randomF16Bits(n: number, seed: number): Uint16Array {
  const words = new Uint32Array(Math.ceil(n / 2));
  let s = seed | 1;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = (s & 0x83ff83ff) | 0x30003000 | (s & 0x0c000c00);
  }
  return new Uint16Array(words.buffer, 0, n);
}
