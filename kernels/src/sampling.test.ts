import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, Graph, InputError, LimitError, Tensor } from '@glm4v/core';
import { normal, poisoned, rng } from '@glm4v/core/testing';
import {
  SAMPLING_LIMITS,
  type SamplerState,
  type SamplingOptions,
  argmax,
  createSamplerState,
  markPresent,
  philox2x32,
  sample,
  samplerUniform,
  setSamplerOptions,
} from './sampling.js';
import { ROW_FIELDS, rowsTable } from './rows.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

// ---- float64 reference of the processing chain ----

const f32 = Math.fround;

/** Scores as the GPU stores them (penalty then temperature, each rounded to f32); later steps are float64. */
function scoresRef(
  logits: ArrayLike<number>,
  present: ReadonlySet<number>,
  o: SamplingOptions,
  greedy: boolean,
): Float64Array {
  const s = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) {
    let v = logits[i];
    if (o.repetitionPenalty !== 1 && present.has(i))
      v = v > 0 ? f32(v / o.repetitionPenalty) : f32(v * o.repetitionPenalty);
    if (!greedy) v = f32(v / o.temperature);
    s[i] = v;
  }
  return s;
}

/** First index of the largest value; NaNs are skipped (index 0 when the whole row is NaN). */
function argmaxRef(x: ArrayLike<number>, from = 0, n = x.length): number {
  let best = -1;
  for (let i = from; i < from + n; i++) if (!Number.isNaN(x[i]) && (best < 0 || x[i] > x[best])) best = i;
  return best < 0 ? 0 : best - from;
}

/** The tokens that can be drawn, in the order the draw walks them, with their exact probabilities. */
function distributionRef(
  logits: ArrayLike<number>,
  present: ReadonlySet<number>,
  o: SamplingOptions,
): { order: number[]; prob: Float64Array } {
  const V = logits.length;
  const s = scoresRef(logits, present, o, false);
  const topK = o.topK >= V ? 0 : o.topK;
  let order = [...Array(V).keys()];
  if (topK > 0 || o.topP < 1) {
    order.sort((a, b) => s[b] - s[a] || a - b);
    order = order.slice(0, topK > 0 ? topK : Math.min(SAMPLING_LIMITS.topPCandidates, V));
  }
  const m = order.reduce((a, i) => Math.max(a, s[i]), -Infinity);
  let e = order.map((i) => Math.exp(s[i] - m));
  if (o.topP < 1) {
    const z =
      topK > 0 ? e.reduce((a, b) => a + b, 0) : Array.from(s, (v) => Math.exp(v - m)).reduce((a, b) => a + b, 0);
    let cum = 0;
    let keep = e.length;
    for (let r = 0; r < e.length; r++) {
      if (r > 0 && cum >= o.topP * z) {
        keep = r;
        break;
      }
      cum += e[r];
    }
    order = order.slice(0, keep);
    e = e.slice(0, keep);
  }
  const sum = e.reduce((a, b) => a + b, 0);
  return { order, prob: Float64Array.from(e, (v) => v / sum) };
}

const EPS = 2e-5; // f32 cumulative sums on the GPU against float64: a draw this close to an interval's edge may go either way

/** Checks that the GPU's token is the one whose reference cumulative-probability interval holds the draw. */
function expectDrawn(token: number, u: number, ref: { order: number[]; prob: Float64Array }, what: string): void {
  let lo = 0;
  let expected = -1;
  let hit: [number, number] | undefined;
  for (let r = 0; r < ref.order.length; r++) {
    const hi = lo + ref.prob[r];
    if (expected < 0 && u < hi) expected = ref.order[r];
    if (ref.order[r] === token) hit = [lo, hi];
    lo = hi;
  }
  if (!hit || ref.prob[ref.order.indexOf(token)] === 0)
    throw new Error(`${what}: drew ${token}, which the reference cannot draw (u ${u}, expected ${expected})`);
  if (u < hit[0] - EPS || u >= hit[1] + EPS)
    throw new Error(`${what}: drew ${token} with interval [${hit[0]}, ${hit[1]}), but u = ${u} (expected ${expected})`);
}

// ---- helpers ----

const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

async function readU32(t: Tensor): Promise<number[]> {
  return Array.from(await t.read());
}

/** A rows table of one row per (slot, step). */
async function rowsOf(rows: { slot: number; step: number }[], label = 'rows'): Promise<Tensor> {
  return Tensor.fromArray(
    device,
    'i32',
    [rows.length, ROW_FIELDS],
    rowsTable(rows.map((r) => ({ ...r, pos: 0, ropePos: 0 }))),
    label,
  );
}

/** Marks `ids` as seen by `slot`. */
async function markIds(state: SamplerState, ids: number[], slot = 0): Promise<void> {
  if (!ids.length) return;
  const t = await Tensor.fromArray(device, 'i32', [ids.length], Int32Array.from(ids), 'prompt_ids');
  const g = new Graph(device);
  markPresent(g, state, t, slot);
  await g.run();
  g.dispose();
  t.dispose();
}

/**
 * Records `count` samples in one graph (step k: base + k, one rows table each, written before each run) into one
 * results tensor; replays it for each base.
 */
async function drawSeries(
  logits: Float32Array,
  opts: SamplingOptions,
  count: number,
  bases: number[],
  present: number[] = [],
): Promise<number[][]> {
  const V = logits.length;
  const x = await Tensor.fromArray(device, 'f32', [1, V], logits, 'logits');
  const state = await createSamplerState(device, V);
  setSamplerOptions(state, 0, opts);
  const results = await poisoned(device, 'u32', [count], 'results');
  const token = await poisoned(device, 'u32', [1], 'token');
  await markIds(state, present);
  const g = new Graph(device, 'sample-series');
  const tables: Tensor[] = [];
  for (let k = 0; k < count; k++) {
    tables.push(await rowsOf([{ slot: 0, step: 0 }]));
    sample(g, x, state, tables[k], token);
    g.copy(token, results, 4, 0, 4 * k);
  }
  const out: number[][] = [];
  for (const base of bases) {
    tables.forEach((t, k) => t.write(rowsTable([{ slot: 0, pos: 0, ropePos: 0, step: base + k }])));
    await g.run();
    out.push(await readU32(results));
  }
  g.dispose();
  for (const t of [x, results, token, ...tables]) t.dispose();
  state.dispose();
  return out;
}

/** Checks a series drawn from `bases[0]` step by step, the presence set following the drawn tokens. */
function expectSeries(
  tokens: number[],
  logits: Float32Array,
  opts: SamplingOptions,
  base: number,
  present: number[],
  what: string,
): void {
  const seen = new Set(present);
  tokens.forEach((t, k) => {
    expectDrawn(
      t,
      samplerUniform(opts.seed, base + k),
      distributionRef(logits, seen, opts),
      `${what} step ${base + k}`,
    );
    seen.add(t);
  });
}

// ---- tests ----

describe('philox2x32-10 and the uniform draw', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(philox2x32(0, 0, 0)).toEqual([0xff1dae59, 0x6cd10df2]);
    expect(philox2x32(0xffffffff, 0xffffffff, 0xffffffff)).toEqual([0x2c3f628b, 0xab4fd7ad]);
    expect(philox2x32(0x243f6a88, 0x85a308d3, 0x13198a2e)).toEqual([0xdd7ce038, 0xf62a4c12]);
  });

  it('the GPU draws the same numbers as the host (flat logits over 2^16 tokens: token = floor(u · 2^16))', async () => {
    // every weight is exactly 1, so all the GPU's sums are exact and the token reveals 16 bits of the draw
    const V = 65536;
    const opts: SamplingOptions = { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0x13198a2e };
    const [tokens] = await drawSeries(new Float32Array(V), opts, 32, [0xffffffe0]);
    expect(tokens).toEqual(tokens.map((_, k) => Math.floor(samplerUniform(opts.seed, 0xffffffe0 + k) * V)));
  });
});

/** argmax of data [rows, V] on the GPU, into a poisoned output. */
async function gpuArgmax(data: Float32Array, rows: number, V: number): Promise<number[]> {
  const x = await Tensor.fromArray(device, 'f32', [rows, V], data);
  const out = await poisoned(device, 'u32', [rows]);
  const g = new Graph(device);
  argmax(g, x, out);
  await g.run();
  const got = await readU32(out);
  g.dispose();
  x.dispose();
  out.dispose();
  return got;
}

describe('argmax', () => {
  const SIZES: [number, number][] = [
    [1, 1],
    [3, 3],
    [2, 7],
    [5, 127],
    [3, 4097],
    [2, 151552],
  ];
  for (const [rows, V] of SIZES) {
    it(`[${rows}, ${V}]: random, tied and negative rows`, async () => {
      const data = normal(rows * V, rows * 31 + V, 4);
      // row 0 as drawn; row 1 quantised (many ties, first occurrence wins) and negative; others shifted negative
      for (let r = 1; r < rows; r++)
        for (let c = 0; c < V; c++) data[r * V + c] = r === 1 ? Math.round(data[r * V + c]) - 20 : data[r * V + c] - 50;
      if (rows > 2) data.fill(-Infinity, 2 * V, 3 * V); // a row of -inf: index 0
      const ref = Array.from({ length: rows }, (_, r) => argmaxRef(data, r * V, V));
      expect(await gpuArgmax(data, rows, V)).toEqual(ref);
    });
  }

  it('ties across blocks go to the smallest index', async () => {
    const V = 151552;
    const data = normal(V, 3);
    for (const i of [150000, 70000, 4096, 4095]) data[i] = 100;
    const x = await Tensor.fromArray(device, 'f32', [V], data);
    const g = new Graph(device);
    const out = argmax(g, x);
    g.keep(out);
    await g.run();
    expect(await readU32(out)).toEqual([4095]);
    g.dispose();
    x.dispose();
  });

  // NaN first (where it used to win), at block edges, beside -inf, and whole rows of NaN (index 0).
  for (const V of [4, 4097, 151552]) {
    it(`skips NaNs, V = ${V}`, async () => {
      const rows = 5;
      const data = normal(rows * V, V + 5, 4);
      const row = (r: number) => data.subarray(r * V, (r + 1) * V);
      for (const i of [0, 1, 4095, 4096, 8191, 70000]) if (i < V) row(0)[i] = NaN;
      row(1).fill(NaN);
      row(2).fill(NaN);
      row(2)[V - 1] = -Infinity; // the only number wins
      row(3).fill(NaN, 0, V - 1); // the last element wins
      row(4).fill(NaN).fill(-Infinity, 0, 1); // index 0 by value, not by default
      const ref = Array.from({ length: rows }, (_, r) => argmaxRef(data, r * V, V));
      expect(ref.slice(1, 4)).toEqual([0, V - 1, V - 1]);
      expect(await gpuArgmax(data, rows, V)).toEqual(ref);
    });
  }

  it('the greedy sampler skips NaNs too', async () => {
    const V = 4097;
    const logits = normal(V, 11, 3);
    for (const i of [0, 17, 4096]) logits[i] = NaN;
    const [tokens] = await drawSeries(logits, GREEDY, 1, [0]);
    expect(tokens).toEqual([argmaxRef(logits)]);
  });

  it('rejects non-f32 logits and a wrong output shape', async () => {
    const x = await Tensor.fromArray(device, 'f32', [2, 8], new Float32Array(16), 'lm_logits');
    const bad = await Tensor.empty(device, 'u32', [3], 'token_out');
    expect(() => argmax(new Graph(device), x, bad)).toThrow(/token_out.*\[3\].*\[2\]/);
    const h = await Tensor.fromArray(device, 'f16', [8], new Float32Array(8), 'half_logits');
    expect(() => argmax(new Graph(device), h)).toThrow(InputError);
  });
});

interface Case {
  name: string;
  V: number;
  scale: number;
  opts: Omit<SamplingOptions, 'seed'>;
  present?: number;
  /** 'quantise': rounded to integers (ties); 'one-bin': all in [1, 1.2), one first-digit radix bin; 'flat': all 0. */
  shape?: 'quantise' | 'one-bin' | 'flat';
}

const CASES: Case[] = [
  { name: 'plain temperature', V: 1, scale: 1, opts: { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 } },
  { name: 'plain temperature', V: 7, scale: 1, opts: { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 } },
  {
    name: 'temperature 0.7, penalty 1.3',
    V: 4097,
    scale: 3,
    opts: { temperature: 0.7, topK: 0, topP: 1, repetitionPenalty: 1.3 },
    present: 300,
  },
  {
    name: 'top-k 3 ≥ V (disabled), top-p 0.5',
    V: 3,
    scale: 1,
    opts: { temperature: 1, topK: 3, topP: 0.5, repetitionPenalty: 1 },
  },
  { name: 'top-k 50', V: 4097, scale: 2, opts: { temperature: 0.6, topK: 50, topP: 1, repetitionPenalty: 1 } },
  {
    name: 'top-k 5 on tied scores',
    V: 127,
    scale: 2,
    opts: { temperature: 1, topK: 5, topP: 1, repetitionPenalty: 1 },
    shape: 'quantise',
  },
  {
    name: 'top-k 50 inside one radix bin (the select refines)',
    V: 4097,
    scale: 0.1,
    opts: { temperature: 1, topK: 50, topP: 1, repetitionPenalty: 1 },
    shape: 'one-bin',
  },
  {
    name: 'top-k 100 over equal scores (smallest indices)',
    V: 4097,
    scale: 1,
    opts: { temperature: 1, topK: 100, topP: 1, repetitionPenalty: 1 },
    shape: 'flat',
  },
  {
    name: 'top-p 0.5 over equal scores (1024 smallest indices)',
    V: 5000,
    scale: 1,
    opts: { temperature: 1, topK: 0, topP: 0.5, repetitionPenalty: 1 },
    shape: 'flat',
  },
  { name: 'top-p 0.9', V: 1, scale: 1, opts: { temperature: 1, topK: 0, topP: 0.9, repetitionPenalty: 1 } },
  {
    name: 'top-p 0.9',
    V: 4097,
    scale: 3,
    opts: { temperature: 1, topK: 0, topP: 0.9, repetitionPenalty: 1.2 },
    present: 50,
  },
  {
    name: 'top-p 0.9 over a flat distribution (cut at 1024 candidates)',
    V: 4097,
    scale: 0.05,
    opts: { temperature: 1, topK: 0, topP: 0.9, repetitionPenalty: 1 },
  },
  {
    name: 'top-k 1000, top-p 0.9, temperature 1.3',
    V: 4097,
    scale: 2,
    opts: { temperature: 1.3, topK: 1000, topP: 0.9, repetitionPenalty: 1 },
  },
  {
    name: 'the model default (T 0.6, top-k 50, top-p 0.95, penalty 1.1)',
    V: 151552,
    scale: 3,
    opts: { temperature: 0.6, topK: 50, topP: 0.95, repetitionPenalty: 1.1 },
    present: 2000,
  },
];

describe('sample: the draw lands in the reference interval', () => {
  for (const c of CASES) {
    it(`${c.name}, V = ${c.V}`, async () => {
      const seed = c.V * 7 + c.opts.topK;
      const logits = normal(c.V, seed, c.scale);
      if (c.shape === 'quantise') for (let i = 0; i < c.V; i++) logits[i] = Math.round(logits[i]);
      if (c.shape === 'one-bin')
        for (let i = 0; i < c.V; i++) logits[i] = 1.1 + Math.max(-0.1, Math.min(0.09, logits[i]));
      if (c.shape === 'flat') logits.fill(0);
      const r = rng(seed);
      const present = Array.from({ length: c.present ?? 0 }, () => Math.floor(r() * c.V));
      const opts = { ...c.opts, seed };
      const steps = 8;
      const [tokens] = await drawSeries(logits, opts, steps, [100], present);
      expectSeries(tokens, logits, opts, 100, present, c.name);
    });
  }
});

/** Upper χ² quantile at p ≈ 1e-6 (Wilson–Hilferty). */
function chiSquareBound(dof: number): number {
  const z = 4.75;
  const a = 2 / (9 * dof);
  return dof * (1 - a + z * Math.sqrt(a)) ** 3;
}

describe('sample: statistics', () => {
  const logits = Float32Array.from([1.2, 0.3, -0.5, 2.0, 0.9, -1.5, 1.6]);
  const CONFIGS: SamplingOptions[] = [
    { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 11 },
    { temperature: 0.8, topK: 5, topP: 0.9, repetitionPenalty: 1, seed: 12 },
  ];
  for (const opts of CONFIGS) {
    it(`frequencies over 2000 draws match the distribution (T ${opts.temperature}, top-k ${opts.topK}, top-p ${opts.topP})`, async () => {
      const series = await drawSeries(
        logits,
        opts,
        100,
        Array.from({ length: 20 }, (_, i) => 1000 + 100 * i),
      );
      const counts = new Map<number, number>();
      for (const t of series.flat()) counts.set(t, (counts.get(t) ?? 0) + 1);
      const ref = distributionRef(logits, new Set(), opts);
      for (const t of counts.keys()) expect(ref.order, `token ${t} is outside the kept set`).toContain(t);
      let chi2 = 0;
      ref.order.forEach((t, r) => {
        const expected = 2000 * ref.prob[r];
        chi2 += ((counts.get(t) ?? 0) - expected) ** 2 / expected;
      });
      expect(chi2).toBeLessThan(chiSquareBound(ref.order.length - 1));
    });
  }

  it('top-p cuts exactly: tokens outside the nucleus are never drawn', async () => {
    // probabilities 0.5, 0.3, 0.15, 0.05: the nucleus of top-p 0.75 is {0, 1} (0.5 < 0.75, then 0.8 ≥ 0.75)
    const probs = Float32Array.from([0.3, 0.05, 0.5, 0.15].map(Math.log));
    const opts: SamplingOptions = { temperature: 1, topK: 0, topP: 0.75, repetitionPenalty: 1, seed: 5 };
    const draws = (await drawSeries(probs, opts, 100, [0, 100, 200])).flat();
    const zeroes = draws.filter((t) => t === 2).length;
    expect(new Set(draws)).toEqual(new Set([0, 2])); // token 2 (p 0.5) and token 0 (p 0.3)
    expect(Math.abs(zeroes / 300 - 0.625)).toBeLessThan(0.1);
  });
});

describe('sample: greedy and the repetition penalty', () => {
  for (const V of [1, 4097, 151552]) {
    it(`top-k 1 and temperature 0 equal argmax, V = ${V}`, async () => {
      const logits = normal(V, V, 3);
      const x = await Tensor.fromArray(device, 'f32', [2, V], Float32Array.from([...logits, ...logits]));
      const state = await createSamplerState(device, V, 2);
      setSamplerOptions(state, 1, { temperature: 0.8, topK: 1, topP: 0.5, repetitionPenalty: 1, seed: 3 });
      setSamplerOptions(state, 0, GREEDY);
      const rows = await rowsOf([
        { slot: 1, step: 0 },
        { slot: 0, step: 0 },
      ]);
      const tokens = await poisoned(device, 'u32', [2]);
      const g = new Graph(device);
      const a = g.keep(argmax(g, x));
      sample(g, x, state, rows, tokens);
      await g.run();
      const ref = argmaxRef(logits);
      expect([...(await readU32(a)), ...(await readU32(tokens))]).toEqual([ref, ref, ref, ref]);
      g.dispose();
      for (const t of [x, rows, tokens]) t.dispose();
      state.dispose();
    });
  }

  it('divides positive and multiplies negative logits of seen tokens only', async () => {
    // positive: 2.0 / 1.1 = 1.818 < 1.9; negative: -1.0 · 1.1 = -1.1 < -1.05; token 5 is seen but far below
    const cases: [number[], number[], number][] = [
      [[2.0, 1.9, 0.5, 0.1, 0.2, -3], [], 0],
      [[2.0, 1.9, 0.5, 0.1, 0.2, -3], [0], 1],
      [[2.0, 1.9, 0.5, 0.1, 0.2, -3], [5], 0],
      [[-1.0, -1.05, -2, -3, -4, -5], [0], 1],
      [[-1.0, -1.05, -2, -3, -4, -5], [1], 0],
      [[-1.0, -0.95, -2, -3, -4, -5], [1], 0], // -0.95 · 1.1 = -1.045 < -1.0
    ];
    for (const [row, seen, expected] of cases) {
      const [tokens] = await drawSeries(Float32Array.from(row), { ...GREEDY, repetitionPenalty: 1.1 }, 1, [0], seen);
      expect(tokens, `logits [${row}] seen [${seen}]`).toEqual([expected]);
    }
  });

  it('marks its own tokens: a strong penalty walks down the logits', async () => {
    const logits = Float32Array.from([5, 4, 3, 2, 1, 0.5, 0.25, 0.125]);
    const [tokens] = await drawSeries(logits, { ...GREEDY, repetitionPenalty: 100 }, 6, [0]);
    expect(tokens).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('marks its own tokens across blocks, V = 151552 (greedy and top-k)', async () => {
    const V = 151552;
    const logits = normal(V, 9);
    const peaks = [150001, 70000, 4096, 4095, 12];
    peaks.forEach((i, r) => (logits[i] = 20 - r));
    const [greedy] = await drawSeries(logits, { ...GREEDY, repetitionPenalty: 100 }, 5, [0]);
    expect(greedy).toEqual(peaks);
    // top-k 1 is greedy too; temperature 0.01 with top-k 3 leaves the best unseen peak nearly certain
    const [top] = await drawSeries(
      logits,
      { temperature: 0.01, topK: 3, topP: 1, repetitionPenalty: 100, seed: 1 },
      5,
      [0],
    );
    expect(top).toEqual(peaks);
  });

  it('markPresent ignores ids outside the vocabulary', async () => {
    const state = await createSamplerState(device, 70, 2);
    await markIds(state, [0, 69, -1, 70, 33, 1 << 30], 1);
    expect(await readU32(state.presence)).toEqual([0, 0, 0, 1, 2, 1 << 5]);
    state.dispose();
  });
});

describe('sample: determinism and replay', () => {
  const V = 4097;
  const logits = normal(V, 77, 1.5);
  const opts: SamplingOptions = { temperature: 1, topK: 200, topP: 0.95, repetitionPenalty: 1.1, seed: 42 };

  it('the same seed gives the same tokens, another seed others', async () => {
    const [a] = await drawSeries(logits, opts, 12, [0]);
    const [b] = await drawSeries(logits, opts, 12, [0]);
    const [c] = await drawSeries(logits, { ...opts, seed: 43 }, 12, [0]);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('replaying one recorded graph with a new rows table gives each step its own draw', async () => {
    const x = await Tensor.fromArray(device, 'f32', [1, V], logits);
    const state = await createSamplerState(device, V);
    setSamplerOptions(state, 0, opts);
    const rows = await rowsOf([{ slot: 0, step: 0 }]);
    const tok = await poisoned(device, 'u32', [1]);
    const g = new Graph(device, 'decode-step');
    sample(g, x, state, rows, tok);
    const tokens: number[] = [];
    for (let step = 0; step < 10; step++) {
      rows.write(rowsTable([{ slot: 0, pos: 0, ropePos: 0, step }]));
      await g.run();
      tokens.push((await readU32(tok))[0]);
    }
    expectSeries(tokens, logits, opts, 0, [], 'replay');
    expect(new Set(tokens).size).toBeGreaterThan(3);
    g.dispose();
    for (const t of [x, rows, tok]) t.dispose();
    state.dispose();
  });
});

/** The rows of the batch test: each its own options, logits and seen tokens (both seeded by key), slot (out of order). */
const BATCH: { key: number; slot: number; opts: SamplingOptions; present: number }[] = [
  { key: 0, slot: 3, opts: { ...GREEDY, repetitionPenalty: 1 }, present: 0 },
  { key: 1, slot: 0, opts: { temperature: 0.7, topK: 0, topP: 1, repetitionPenalty: 1.3, seed: 5 }, present: 40 },
  { key: 2, slot: 5, opts: { temperature: 1, topK: 40, topP: 0.9, repetitionPenalty: 1.1, seed: 6 }, present: 100 },
  { key: 3, slot: 1, opts: { ...GREEDY, repetitionPenalty: 50 }, present: 3 },
  { key: 4, slot: 2, opts: { temperature: 1.2, topK: 0, topP: 0.8, repetitionPenalty: 1, seed: 7 }, present: 0 },
];
const batchLogits = (key: number, V: number) => normal(V, 100 + key, 2);
const batchSeen = (key: number, n: number, V: number) => Array.from({ length: n }, (_, i) => (i * 7919 + key) % V);

/** Draws `steps` tokens for every row of `batch` (as one batch), rows replayed with steps 10.. (presence follows). */
async function drawBatch(batch: typeof BATCH, V: number, steps: number, slots: number): Promise<number[][]> {
  const m = batch.length;
  const logits = new Float32Array(m * V);
  batch.forEach((b, r) => logits.set(batchLogits(b.key, V), r * V));
  const x = await Tensor.fromArray(device, 'f32', [m, V], logits);
  const state = await createSamplerState(device, V, slots);
  for (const b of batch) {
    setSamplerOptions(state, b.slot, b.opts);
    await markIds(state, batchSeen(b.key, b.present, V), b.slot);
  }
  const rows = await rowsOf(batch.map((b) => ({ slot: b.slot, step: 0 })));
  const tokens = await poisoned(device, 'u32', [slots]);
  const g = new Graph(device);
  sample(g, x, state, rows, tokens);
  const out: number[][] = batch.map(() => []);
  for (let k = 0; k < steps; k++) {
    rows.write(rowsTable(batch.map((b) => ({ slot: b.slot, pos: 0, ropePos: 0, step: 10 + k }))));
    await g.run();
    const t = await readU32(tokens);
    batch.forEach((b, r) => out[r].push(t[b.slot]));
  }
  g.dispose();
  for (const t of [x, rows, tokens]) t.dispose();
  state.dispose();
  return out;
}

describe('sample: a batch of rows', () => {
  for (const V of [7, 4097, 151552]) {
    it(`rows with different options, slots and seen tokens each draw as alone, as the reference says (V = ${V})`, async () => {
      const steps = 4;
      const batch = await drawBatch(BATCH, V, steps, 6);
      for (let r = 0; r < BATCH.length; r++) {
        const b = BATCH[r];
        const [alone] = await drawBatch([{ ...b, slot: 0 }], V, steps, 1);
        expect(batch[r], `row ${r} (slot ${b.slot})`).toEqual(alone);
        // and against the reference, the presence set following the drawn tokens
        const logits = batchLogits(b.key, V);
        const seen = new Set(batchSeen(b.key, b.present, V));
        batch[r].forEach((t, k) => {
          if (b.opts.temperature === 0)
            expect(t, `row ${r} step ${k}`).toBe(argmaxRef(scoresRef(logits, seen, b.opts, true)));
          else
            expectDrawn(
              t,
              samplerUniform(b.opts.seed, 10 + k),
              distributionRef(logits, seen, b.opts),
              `row ${r} step ${k}`,
            );
          seen.add(t);
        });
      }
    });
  }

  it('modes no row has are skipped, and a mode a row has is not', async () => {
    const V = 300;
    const x = await Tensor.fromArray(device, 'f32', [2, V], normal(2 * V, 3));
    const state = await createSamplerState(device, V, 2);
    setSamplerOptions(state, 1, { temperature: 1, topK: 10, topP: 1, repetitionPenalty: 1, seed: 1 });
    const rows = await rowsOf([
      { slot: 0, step: 0 },
      { slot: 1, step: 0 },
    ]);
    const tokens = await poisoned(device, 'u32', [2]);
    const g = new Graph(device);
    sample(g, x, state, rows, tokens, (p) => ({ greedy: p.greedy === 1, full: false, top: p.top === 1 }));
    await g.run({ greedy: 1, top: 0 });
    const [greedy, skipped] = await readU32(tokens);
    expect(greedy).toBeLessThan(V);
    expect(skipped).toBe(0xffffffff);
    await g.run({ greedy: 1, top: 1 });
    expect((await readU32(tokens))[1]).toBeLessThan(V);
    g.dispose();
    for (const t of [x, rows, tokens]) t.dispose();
    state.dispose();
  });
});

describe('sample: bad input', () => {
  it('names the option, the slot, the logits or the output at fault', async () => {
    const state = await createSamplerState(device, 16);
    const ok: SamplingOptions = { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1 };
    expect(() => setSamplerOptions(state, 0, { ...ok, topP: 0 })).toThrow(/topP is 0/);
    expect(() => setSamplerOptions(state, 0, { ...ok, temperature: -1 })).toThrow(/temperature is -1/);
    expect(() => setSamplerOptions(state, 0, { ...ok, topK: 2.5 })).toThrow(/topK is 2.5/);
    expect(() => setSamplerOptions(state, 0, { ...ok, repetitionPenalty: 0 })).toThrow(InputError);
    expect(() => setSamplerOptions(state, 0, { ...ok, seed: -1 })).toThrow(/seed is -1/);
    expect(() => setSamplerOptions(state, 1, ok)).toThrow(/slot 1 is outside the sampler's 1 slots/);
    const big = await createSamplerState(device, 5000);
    expect(() => setSamplerOptions(big, 0, { ...ok, topK: 1025 })).toThrow(LimitError);
    const x = await Tensor.fromArray(device, 'f32', [1, 16], new Float32Array(16), 'lm_logits');
    const rows = await rowsOf([{ slot: 0, step: 0 }], 'rows1');
    const out = await Tensor.empty(device, 'u32', [1], 'next_token');
    const g = new Graph(device);
    const other = await createSamplerState(device, 17);
    expect(() => sample(g, x, other, rows, out)).toThrow(/lm_logits.*\[1, 16\].*\[M, 17\]/);
    const two = await Tensor.fromArray(device, 'f32', [2, 16], new Float32Array(32), 'two_rows');
    expect(() => sample(g, two, state, rows, out)).toThrow(/rows 'rows1' has shape \[1, 4\]; expected \[2, 4\]/);
    const bad = await Tensor.empty(device, 'i32', [1], 'next_token_i32');
    expect(() => sample(g, x, state, rows, bad)).toThrow(/next_token_i32/);
    for (const t of [x, two, rows, out, bad]) t.dispose();
    for (const st of [state, big, other]) st.dispose();
  });
});
