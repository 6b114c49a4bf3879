import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, Graph, InputError, Tensor } from '@glm4v/core';
import { asStored, normal, poisoned } from '@glm4v/core/testing';
import { toF16 } from './convert.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

const F16_MAX = 65504;
const SMALLEST_NORMAL = 2 ** -14;

/** Random values at several magnitudes, then the edges: f16's largest, the first values past it, tiny ones, ±inf, NaN. */
function values(n: number, seed: number): Float32Array {
  const v = normal(n, seed);
  for (let i = 0; i < n; i++) v[i] *= 10 ** ((i % 7) - 3);
  const edges = [
    F16_MAX,
    -F16_MAX,
    65536,
    -1e6,
    3e38,
    Infinity,
    -Infinity,
    NaN,
    SMALLEST_NORMAL,
    2 ** -20,
    3e-8,
    -0.5,
    0,
  ];
  v.set(edges.slice(0, Math.min(edges.length, n)));
  return v;
}

async function check(src: 'bf16' | 'f32', n: number, seed: number): Promise<void> {
  const data = values(n, seed);
  const stored = asStored(src, data); // what the source tensor holds
  const x = await Tensor.fromArray(device, src, [n], data, 'x');
  const out = await poisoned(device, 'f16', [n]);
  const bad = await Tensor.fromArray(device, 'u32', [1], new Uint32Array([0]), 'bad');
  const g = new Graph(device);
  toF16(g, x, out, bad);
  await g.run();
  const got = await out.read();
  let expectedBad = 0;
  for (let i = 0; i < n; i++) {
    const v = stored[i];
    const what = `${src} → f16, element ${i} = ${v}`;
    if (!(Math.abs(v) <= F16_MAX)) {
      expectedBad++;
      expect(got[i], what).toBe(0);
    } else if (Math.abs(v) >= SMALLEST_NORMAL) {
      expect(got[i], what).toBe(asStored('f16', [v])[0]); // exact from bf16; round to nearest from f32
    } else {
      expect(Math.abs(got[i] - v), what).toBeLessThanOrEqual(SMALLEST_NORMAL); // subnormal, or flushed to 0
    }
  }
  expect((await bad.read())[0]).toBe(expectedBad);
  g.dispose();
  for (const t of [x, out, bad]) t.dispose();
}

describe('toF16', () => {
  for (const src of ['bf16', 'f32'] as const) {
    for (const n of [1, 7, 4097]) {
      it(`${src} → f16, ${n} values`, () => check(src, n, n * 3 + (src === 'f32' ? 1 : 0)));
    }
  }

  it('rejects other dtypes and mismatched shapes', async () => {
    const x = await Tensor.empty(device, 'bf16', [4], 'w');
    const bad = await Tensor.empty(device, 'u32', [1], 'bad');
    const g = new Graph(device);
    const f32Out = await Tensor.empty(device, 'f32', [4], 'y32');
    const short = await Tensor.empty(device, 'f16', [3], 'y3');
    expect(() => toF16(g, x, f32Out, bad)).toThrow(/output 'y32' has dtype f32; expected f16/);
    expect(() => toF16(g, x, short, bad)).toThrow(InputError);
    expect(() => toF16(g, short, short, bad)).toThrow(/input 'y3' has dtype f16; expected bf16 or f32/);
    g.dispose();
    for (const t of [x, bad, f32Out, short]) t.dispose();
  });
});
