import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, Graph, InputError, Tensor, f16ToF32 } from '@glm4v/core';
import { TOLERANCE, asStored, compare, expectClose, normal, rng } from '@glm4v/core/testing';
import { ropeFrequencies, ropeText, ropeVision } from './rope.js';
import { ROW_FIELDS, rowsTable } from './rows.js';
import { randomF16Bits } from './test-util/random-bits.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

type Sections = readonly [number, number, number];
interface TextCase {
  heads: number;
  headDim: number;
  rotaryDim: number;
  sections: Sections;
}
const GLM: TextCase = { heads: 4, headDim: 128, rotaryDim: 64, sections: [8, 12, 12] };
const TINY: TextCase = { heads: 2, headDim: 16, rotaryDim: 8, sections: [1, 2, 1] };

// ---- float64 references. The angle is the reference's: f32(position) · ω in f32 (ω from ropeFrequencies, which
// rounds as PyTorch does); everything after it is float64.
const f = Math.fround;

/** Text M-RoPE, interleaved pairs, sections over frequency pairs. pos: [3][S] (t, h, w). */
function ropeTextRef(
  x: Float64Array,
  rows: number,
  c: TextCase,
  omega: ArrayLike<number>,
  pos: ArrayLike<number>,
  mode: 'right' | 'sections-on-dims' | 'half-split' = 'right',
): Float64Array {
  const y = Float64Array.from(x);
  const pairs = c.rotaryDim / 2;
  const [s0, s1] = c.sections;
  const streamOf = (k: number) => (k < s0 ? 0 : k < s0 + s1 ? 1 : 2);
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < c.heads; h++) {
      const base = (r * c.heads + h) * c.headDim;
      for (let j = 0; j < pairs; j++) {
        // the two deliberate mistakes docs/model.md#pitfalls (1, 2) warns about, used to show that the test tells them apart
        const stream = mode === 'sections-on-dims' ? streamOf(2 * j) : streamOf(j);
        const angle = f(f(pos[stream * rows + r]) * omega[j]);
        const [a, b] = mode === 'half-split' ? [base + j, base + j + pairs] : [base + 2 * j, base + 2 * j + 1];
        const cs = Math.cos(angle);
        const sn = Math.sin(angle);
        y[a] = x[a] * cs - x[b] * sn;
        y[b] = x[b] * cs + x[a] * sn;
      }
    }
  }
  return y;
}

/** Vision 2-D RoPE, rotate-half over the whole head. coords: [S][2] (row, col). */
function ropeVisionRef(
  x: Float64Array,
  rows: number,
  heads: number,
  headDim: number,
  omega: ArrayLike<number>,
  coords: ArrayLike<number>,
): Float64Array {
  const y = Float64Array.from(x);
  const half = headDim / 2;
  const quarter = headDim / 4;
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * headDim;
      for (let d = 0; d < half; d++) {
        const angle = d < quarter ? f(f(coords[2 * r]) * omega[d]) : f(f(coords[2 * r + 1]) * omega[d - quarter]);
        const a = base + d;
        const b = base + d + half;
        y[a] = x[a] * Math.cos(angle) - x[b] * Math.sin(angle);
        y[b] = x[b] * Math.cos(angle) + x[a] * Math.sin(angle);
      }
    }
  }
  return y;
}

/** Positions [3, S]: three different streams (so a mix-up of streams, pairs or halves shows), up to `max`. */
function streams(rows: number, seed: number, max = 65535): Int32Array {
  const r = rng(seed);
  const p = new Int32Array(3 * rows);
  for (let i = 0; i < p.length; i++) p[i] = Math.floor(r() * (max + 1));
  if (rows > 0) p.set([max, max - 1, max >> 1], 0); // the largest positions always appear: t, h, w of row 0 differ
  return p;
}

async function runText(act: 'f32' | 'f16', rows: number, c: TextCase, pos: Int32Array, seed: number) {
  const xs = asStored(act, normal(rows * c.heads * c.headDim, seed));
  const x = await Tensor.fromArray(device, act, [rows, c.heads * c.headDim], xs, 'q');
  const positions = await Tensor.fromArray(device, 'i32', [3, rows], pos, 'position_ids');
  const g = new Graph(device);
  ropeText(g, x, {
    numHeads: c.heads,
    headDim: c.headDim,
    rotaryDim: c.rotaryDim,
    sections: c.sections,
    theta: 10000,
    positions,
  });
  await g.run();
  const got = await x.read();
  g.dispose();
  x.dispose();
  positions.dispose();
  return { xs, got };
}

describe('ropeText', () => {
  for (const act of ['f32', 'f16'] as const) {
    for (const [name, c] of [
      ['GLM (128, rotary 64, [8,12,12])', GLM],
      ['tiny (16, rotary 8, [1,2,1])', TINY],
    ] as const) {
      for (const rows of [1, 3, 17, 127]) {
        it(`${act}, ${name}, ${rows} rows, positions up to 65535`, async (ctx) => {
          if (act === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
          const pos = streams(rows, rows + c.headDim);
          const { xs, got } = await runText(act, rows, c, pos, rows * 31 + c.headDim);
          const ref = ropeTextRef(xs, rows, c, ropeFrequencies(c.rotaryDim, 10000), pos);
          expectClose(got, ref, TOLERANCE[act], `ropeText ${act} ${name} [${rows}]`);
        });
      }
    }
  }

  it('tells apart sections applied to dims, half-split pairs and f64 frequencies (different t/h/w streams)', async () => {
    for (const c of [GLM, TINY]) {
      const rows = 5;
      const pos = streams(rows, 7);
      const { xs, got } = await runText('f32', rows, c, pos, 99);
      const omega = ropeFrequencies(c.rotaryDim, 10000);
      expectClose(got, ropeTextRef(xs, rows, c, omega, pos), TOLERANCE.f32, 'ropeText');
      for (const mode of ['sections-on-dims', 'half-split'] as const) {
        expect(compare(got, ropeTextRef(xs, rows, c, omega, pos, mode), TOLERANCE.f32, mode).ok, mode).toBe(false);
      }
      // frequencies not rounded to f32 the way the reference rounds them: at positions near 65535 the angles drift
      const omega64 = Array.from({ length: c.rotaryDim / 2 }, (_, j) => 1 / Math.pow(10000, (2 * j) / c.rotaryDim));
      const drift = ropeTextRef(xs, rows, c, omega64, pos);
      expect(compare(got, drift, TOLERANCE.f32, 'ω one ulp off').ok).toBe(false);
    }
  });

  it('leaves dims past rotaryDim untouched, bit for bit', async () => {
    const rows = 3;
    const pos = streams(rows, 3);
    const { xs, got } = await runText('f32', rows, GLM, pos, 5);
    for (let r = 0; r < rows * GLM.heads; r++) {
      for (let d = GLM.rotaryDim; d < GLM.headDim; d++) expect(got[r * GLM.headDim + d]).toBe(xs[r * GLM.headDim + d]);
    }
  });

  it('decode form: the rows table of a batch, replayed with new positions', async () => {
    const c = GLM;
    const m = 3;
    const xs = asStored('f32', normal(m * c.heads * c.headDim, 11));
    const x = await Tensor.empty(device, 'f32', [m, c.heads * c.headDim], 'q');
    const rows = await Tensor.empty(device, 'i32', [m, ROW_FIELDS], 'rows');
    const g = new Graph(device, 'decode-rope');
    ropeText(g, x, {
      numHeads: c.heads,
      headDim: c.headDim,
      rotaryDim: c.rotaryDim,
      sections: c.sections,
      theta: 10000,
      positions: { rows },
    });
    const omega = ropeFrequencies(c.rotaryDim, 10000);
    for (const ropePos of [
      [17, 0, 65535],
      [1, 65534, 7],
    ]) {
      x.write(Float32Array.from(xs));
      // the other fields differ from ropePos, so reading the wrong one shows
      rows.write(rowsTable(ropePos.map((p, i) => ({ slot: i + 5, pos: p + 3, ropePos: p, step: 9 }))));
      await g.run();
      const ref = ropeTextRef(xs, m, c, omega, [...ropePos, ...ropePos, ...ropePos]);
      expectClose(await x.read(), ref, TOLERANCE.f32, `ropeText decode rows at ${ropePos.join(', ')}`);
    }
    g.dispose();
    x.dispose();
    rows.dispose();
  });

  it('more than 65535 workgroups (a 2-D grid)', async (ctx) => {
    if (!device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
    // 524300 rows × 32 pairs = 65538 workgroups of 256 (one invocation per row and pair); f16 keeps x under the
    // 128 MiB binding limit. The data is made as raw f16 bits and only the first and last rows are checked.
    const c: TextCase = { heads: 1, headDim: 64, rotaryDim: 64, sections: [8, 12, 12] };
    const rows = 524_300;
    const width = c.heads * c.headDim;
    const bits = randomF16Bits(rows * width, 5);
    const pos = streams(rows, 1);
    const x = await Tensor.fromArray(device, 'f16', [rows, width], bits, 'q');
    const positions = await Tensor.fromArray(device, 'i32', [3, rows], pos, 'position_ids');
    const g = new Graph(device);
    ropeText(g, x, {
      numHeads: c.heads,
      headDim: c.headDim,
      rotaryDim: c.rotaryDim,
      sections: c.sections,
      theta: 10000,
      positions,
    });
    await g.run();
    const omega = ropeFrequencies(c.rotaryDim, 10000);
    for (const [lo, hi] of [
      [0, 64],
      [rows - 20_000, rows],
    ]) {
      const n = hi - lo;
      const got = await x.view([n, width], lo * width).read(); // only these rows come back
      const xs = Float64Array.from(bits.subarray(lo * width, hi * width), f16ToF32);
      const subPos = Int32Array.from({ length: 3 * n }, (_, i) => pos[Math.floor(i / n) * rows + lo + (i % n)]);
      expectClose(got, ropeTextRef(xs, n, c, omega, subPos), TOLERANCE.f16, `ropeText 2-D grid rows [${lo}, ${hi})`);
    }
    g.dispose();
    x.dispose();
    positions.dispose();
  });

  it('rejects bad shapes, sections and positions with InputError naming the tensor', async () => {
    const x = await Tensor.empty(device, 'f32', [3, 256], 'q_states');
    const pos = await Tensor.empty(device, 'i32', [3, 2], 'position_ids');
    const opts = { numHeads: 2, headDim: 128, rotaryDim: 64, sections: [8, 12, 12] as const, theta: 10000 };
    expect(() => ropeText(new Graph(device), x, { ...opts, positions: pos })).toThrow(
      /position_ids.*\[3, 2\].*\[3, 3\]/,
    );
    expect(() => ropeText(new Graph(device), x, { ...opts, numHeads: 4, positions: pos })).toThrow(
      /q_states.*\[3, 256\].*\[\?, 512\]/,
    );
    expect(() => ropeText(new Graph(device), x, { ...opts, sections: [8, 12, 11], positions: pos })).toThrow(
      InputError,
    );
    expect(() => ropeText(new Graph(device), x, { ...opts, positions: { rows: pos } })).toThrow(
      /rows 'position_ids'.*\[3, 2\].*\[3, 4\]/,
    );
    x.dispose();
    pos.dispose();
  });
});

describe('ropeVision', () => {
  for (const act of ['f32', 'f16'] as const) {
    for (const [heads, headDim] of [
      [3, 128],
      [2, 8],
    ] as const) {
      for (const rows of [1, 7, 127]) {
        it(`${act}, headDim ${headDim}, ${heads} heads, ${rows} patches`, async (ctx) => {
          if (act === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
          const seed = rows * 13 + headDim;
          const xs = asStored(act, normal(rows * heads * headDim, seed));
          const r = rng(seed);
          // (row, col) of each patch in its image's grid; rows and cols differ so a swapped half shows
          const coords = Int32Array.from({ length: 2 * rows }, (_, i) => Math.floor(r() * (i % 2 ? 700 : 150)));
          const x = await Tensor.fromArray(device, act, [rows, heads * headDim], xs, 'q');
          const ct = await Tensor.fromArray(device, 'i32', [rows, 2], coords, 'rotary_coords');
          const g = new Graph(device);
          ropeVision(g, x, ct, { numHeads: heads, headDim, theta: 10000 });
          await g.run();
          const ref = ropeVisionRef(xs, rows, heads, headDim, ropeFrequencies(headDim / 2, 10000), coords);
          expectClose(await x.read(), ref, TOLERANCE[act], `ropeVision ${act} ${headDim} [${rows}]`);
          g.dispose();
          x.dispose();
          ct.dispose();
        });
      }
    }
  }

  it('rejects coords of the wrong shape', async () => {
    const x = await Tensor.empty(device, 'f32', [4, 128], 'q');
    const ct = await Tensor.empty(device, 'i32', [4, 3], 'rotary_coords');
    expect(() => ropeVision(new Graph(device), x, ct, { numHeads: 1, headDim: 128, theta: 10000 })).toThrow(
      /rotary_coords.*\[4, 3\].*\[4, 2\]/,
    );
    x.dispose();
    ct.dispose();
  });
});
