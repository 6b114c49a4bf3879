import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, Graph } from '@glm4v/core';
import { poisoned, poisonedChunked } from '@glm4v/core/testing';
import { fillRandom } from './random.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

function moments(v: ArrayLike<number>): { mean: number; variance: number; min: number; max: number } {
  let s = 0;
  let q = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < v.length; i++) {
    s += v[i];
    q += v[i] * v[i];
    min = Math.min(min, v[i]);
    max = Math.max(max, v[i]);
  }
  const mean = s / v.length;
  return { mean, variance: q / v.length - mean * mean, min, max };
}

describe('fillRandom', () => {
  for (const dtype of ['f32', 'bf16', 'f16'] as const) {
    for (const n of [1, 7, 4097, 100_003]) {
      it(`${dtype} × ${n}: every element written, uniform in [-s, s), reproducible`, async (ctx) => {
        if (dtype === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
        const scale = 0.05;
        const a = await poisoned(device, dtype, [n]);
        const b = await poisoned(device, dtype, [n]);
        const c = await poisoned(device, dtype, [n]);
        const g = new Graph(device);
        fillRandom(g, a, 1234, scale);
        fillRandom(g, b, 1234, scale);
        fillRandom(g, c, 99, scale);
        await g.run();
        const [va, vb, vc] = await Promise.all([a.read(), b.read(), c.read()]);
        for (let i = 0; i < n; i++) {
          if (!(Math.abs(va[i]) <= scale)) expect.fail(`element ${i} = ${va[i]}`);
        }
        expect(Array.from(va)).toEqual(Array.from(vb));
        if (n > 1) expect(Array.from(va)).not.toEqual(Array.from(vc));
        if (n >= 4097) {
          const m = moments(va);
          expect(Math.abs(m.mean)).toBeLessThan((4 * scale) / Math.sqrt(3 * n));
          expect(m.variance / ((scale * scale) / 3)).toBeGreaterThan(0.9);
          expect(m.variance / ((scale * scale) / 3)).toBeLessThan(1.1);
        }
        g.dispose();
        for (const t of [a, b, c]) t.dispose();
      });
    }
  }

  it('gives a chunked matrix the same values as one tensor', async () => {
    const shape = [37, 9];
    const whole = await poisoned(device, 'bf16', shape);
    const chunked = await poisonedChunked(device, 'bf16', shape, 'm', 10 * 9 * 2);
    expect(chunked.chunks.length).toBe(4);
    const g = new Graph(device);
    fillRandom(g, whole, 7, 1);
    fillRandom(g, chunked, 7, 1);
    await g.run();
    expect(Array.from(await chunked.read())).toEqual(Array.from(await whole.read()));
    g.dispose();
    whole.dispose();
    chunked.dispose();
  });

  it('u32: random bits in every word, each bit set about half the time, reproducible', async () => {
    const n = 4097;
    const a = await poisoned(device, 'u32', [n]);
    const b = await poisoned(device, 'u32', [n]);
    const g = new Graph(device);
    fillRandom(g, a, 5, 0);
    fillRandom(g, b, 5, 0);
    await g.run();
    const [va, vb] = (await Promise.all([a.read(), b.read()])) as Uint32Array[];
    expect(Array.from(va)).toEqual(Array.from(vb));
    expect(va.filter((v) => v === 0xffffffff).length).toBeLessThan(2); // the poison is overwritten
    for (let bit = 0; bit < 32; bit++) {
      const ones = va.filter((v) => (v >>> bit) & 1).length;
      expect(Math.abs(ones / n - 0.5), `bit ${bit}`).toBeLessThan(0.05);
    }
    g.dispose();
    a.dispose();
    b.dispose();
  });
});
