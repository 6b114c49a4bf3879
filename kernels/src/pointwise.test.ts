import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, Graph, InputError, Tensor, f16ToF32 } from '@glm4v/core';
import { TOLERANCE, asStored, expectClose, normal, poisoned } from '@glm4v/core/testing';
import { add, addInPlace, gelu, siluMul } from './pointwise.js';
import { randomF16Bits } from './test-util/random-bits.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

// ---- float64 references
const silu = (x: number) => x / (1 + Math.exp(-x));

/** erfc(z) for z ≥ 0 in float64 (~1e-15 relative): a series of positive terms below 3, a continued fraction above. */
function erfc64(z: number): number {
  if (z < 3) {
    // erf z = 2/√π · e^(−z²) · Σ 2ⁿ z^(2n+1) / (1·3·…·(2n+1))
    let term = z;
    let sum = z;
    for (let n = 1; n < 200 && term > 1e-17 * sum; n++) {
      term *= (2 * z * z) / (2 * n + 1);
      sum += term;
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * sum;
  }
  // erfc z = e^(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), evaluated from the tail
  let f = z;
  for (let k = 120; k >= 1; k--) f = z + k / 2 / f;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

function gelu64(x: number): number {
  const tail = 0.5 * erfc64(Math.abs(x) / Math.SQRT2); // Φ(−|x|)
  return x >= 0 ? x * (1 - tail) : x * tail;
}

const SIZES = [1, 3, 7, 17, 127, 4097, 4096 * 3];

describe('float64 references', () => {
  it('erfc64 matches known values', () => {
    // erfc(0.5), erfc(1), erfc(3), erfc(5), erfc(9) to 16 digits (from tables of the error function)
    const known: [number, number][] = [
      [0.5, 0.4795001221869535],
      [1, 0.15729920705028513],
      [3, 2.209049699858544e-5],
      [5, 1.5374597944280349e-12],
      [9, 4.13703174651381e-37],
    ];
    for (const [z, v] of known) expect(Math.abs(erfc64(z) - v) / v).toBeLessThan(1e-13);
  });
});

describe('gelu', () => {
  for (const act of ['f32', 'f16'] as const) {
    for (const n of SIZES) {
      it(`${act}, ${n} elements`, async (ctx) => {
        if (act === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
        const xs = asStored(act, normal(n, n, 3));
        const x = await Tensor.fromArray(device, act, [n], xs, 'x');
        const out = await poisoned(device, act, [n]);
        const g = new Graph(device);
        gelu(g, x, out);
        await g.run();
        expectClose(await out.read(), xs.map(gelu64), TOLERANCE[act], `gelu ${act} [${n}]`);
        g.dispose();
        x.dispose();
        out.dispose();
      });
    }
  }

  it('has an erf accurate to a few 1e-7, relative, from −13 to 13', async () => {
    // Every element on its own relative budget (atol 0): the tails (gelu(−13) ≈ −8e-38) must be as good as the middle.
    const n = 26 * 4096;
    const xs = Float64Array.from({ length: n }, (_, i) => Math.fround(-13 + (26 * i) / n));
    const x = await Tensor.fromArray(device, 'f32', [n], xs, 'x');
    const g = new Graph(device);
    const y = g.keep(gelu(g, x));
    await g.run();
    const r = expectClose(await y.read(), xs.map(gelu64), { atol: 0, rtol: 5e-7 }, 'gelu dense sweep');
    expect(r.ratio).toBeGreaterThan(0); // it compared something
    g.dispose();
    x.dispose();
  });
});

describe('siluMul', () => {
  const SHAPES: [number, number][] = [
    [1, 1],
    [1, 3],
    [3, 8],
    [7, 17],
    [17, 127],
    [2, 4097],
    [3, 4096],
  ];
  for (const act of ['f32', 'f16'] as const) {
    for (const [m, i] of SHAPES) {
      it(`${act}, fused gate_up [${m}, ${2 * i}] → [${m}, ${i}]`, async (ctx) => {
        if (act === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
        const gu = asStored(act, normal(m * 2 * i, m * 100 + i, 4));
        const x = await Tensor.fromArray(device, act, [m, 2 * i], gu, 'gate_up');
        const out = await poisoned(device, act, [m, i]);
        const g = new Graph(device);
        siluMul(g, x, undefined, out);
        await g.run();
        const ref = new Float64Array(m * i);
        for (let r = 0; r < m; r++)
          for (let c = 0; c < i; c++) ref[r * i + c] = silu(gu[r * 2 * i + c]) * gu[r * 2 * i + i + c];
        expectClose(await out.read(), ref, TOLERANCE[act], `siluMul fused ${act} [${m}, ${i}]`);
        g.dispose();
        x.dispose();
        out.dispose();
      });
    }
    for (const [m, i] of [
      [1, 3],
      [17, 127],
      [3, 4096],
    ] as const) {
      it(`${act}, separate gate and up [${m}, ${i}]`, async (ctx) => {
        if (act === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
        const gs = asStored(act, normal(m * i, i, 4));
        const us = asStored(act, normal(m * i, i + 1));
        const gate = await Tensor.fromArray(device, act, [m, i], gs, 'gate');
        const up = await Tensor.fromArray(device, act, [m, i], us, 'up');
        const out = await poisoned(device, act, [m, i]);
        const g = new Graph(device);
        siluMul(g, gate, up, out);
        await g.run();
        expectClose(
          await out.read(),
          gs.map((v, k) => silu(v) * us[k]),
          TOLERANCE[act],
          `siluMul ${act} [${m}, ${i}]`,
        );
        g.dispose();
        for (const t of [gate, up, out]) t.dispose();
      });
    }
  }

  it('silu saturates cleanly at large |x|', async () => {
    const gs = Float64Array.from([-200, -90, -30, 30, 90, 200, 0, -0.5]);
    const gate = await Tensor.fromArray(device, 'f32', [8], gs, 'gate');
    const up = await Tensor.fromArray(device, 'f32', [8], new Float64Array(8).fill(1), 'up');
    const g = new Graph(device);
    const y = g.keep(siluMul(g, gate, up));
    await g.run();
    expectClose(await y.read(), gs.map(silu), TOLERANCE.f32, 'silu extremes');
    g.dispose();
    gate.dispose();
    up.dispose();
  });

  it('rejects an odd gate_up width and mismatched halves', async () => {
    const gu = await Tensor.empty(device, 'f32', [2, 7], 'mlp.gate_up');
    expect(() => siluMul(new Graph(device), gu)).toThrow(/mlp\.gate_up.*\[2, 7\]/);
    const up = await Tensor.empty(device, 'f32', [2, 6], 'mlp.up');
    expect(() => siluMul(new Graph(device), gu, up)).toThrow(/mlp\.up.*\[2, 6\].*\[2, 7\]/);
    gu.dispose();
    up.dispose();
  });
});

describe('add, addInPlace', () => {
  for (const act of ['f32', 'f16'] as const) {
    for (const n of SIZES) {
      it(`${act}, ${n} elements`, async (ctx) => {
        if (act === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
        const as = asStored(act, normal(n, n + 1));
        const bs = asStored(act, normal(n, n + 2));
        const a = await Tensor.fromArray(device, act, [n], as, 'a');
        const b = await Tensor.fromArray(device, act, [n], bs, 'b');
        const out = await poisoned(device, act, [n]);
        const g = new Graph(device);
        add(g, a, b, out);
        addInPlace(g, a, b); // a ← a + b, after `out` has read it
        await g.run();
        const ref = as.map((v, i) => v + bs[i]);
        expectClose(await out.read(), ref, TOLERANCE[act], `add ${act} [${n}]`);
        expectClose(await a.read(), ref, TOLERANCE[act], `addInPlace ${act} [${n}]`);
        g.dispose();
        for (const t of [a, b, out]) t.dispose();
      });
    }
  }

  it('more than 65535 workgroups (a 2-D grid)', async (ctx) => {
    if (!device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
    const n = 65535 * 256 + 5; // odd: one element per invocation, 65536 workgroups
    const as = randomF16Bits(n, 1);
    const bs = randomF16Bits(n, 2);
    const a = await Tensor.fromArray(device, 'f16', [n], as, 'a');
    const b = await Tensor.fromArray(device, 'f16', [n], bs, 'b');
    const g = new Graph(device);
    addInPlace(g, a, b);
    await g.run();
    for (const [lo, hi] of [
      [0, 4096],
      [n - 300_001, n],
    ]) {
      const ref = Float64Array.from({ length: hi - lo }, (_, i) => f16ToF32(as[lo + i]) + f16ToF32(bs[lo + i]));
      expectClose(await a.view([hi - lo], lo).read(), ref, TOLERANCE.f16, `addInPlace 2-D grid [${lo}, ${hi})`); // only these come back
    }
    g.dispose();
    a.dispose();
    b.dispose();
  });

  it('rejects mismatched shapes and dtypes, naming the tensor', async () => {
    const a = await Tensor.empty(device, 'f32', [4, 8], 'residual');
    const b = await Tensor.empty(device, 'f32', [4, 9], 'mlp_out');
    const c = await Tensor.empty(device, 'i32', [4, 8], 'ids');
    expect(() => add(new Graph(device), a, b)).toThrow(/mlp_out.*\[4, 9\].*\[4, 8\]/);
    expect(() => addInPlace(new Graph(device), a, b)).toThrow(InputError);
    expect(() => addInPlace(new Graph(device), c, c)).toThrow(/ids.*i32/);
    for (const t of [a, b, c]) t.dispose();
  });
});
