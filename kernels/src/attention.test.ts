import { type TestContext, afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Device, Graph, InputError, OutOfMemoryError, Tensor } from '@glm4v/core';
import { TOLERANCE, asStored, expectClose, normal, poisoned } from '@glm4v/core/testing';
import {
  ATTENTION_PRESETS,
  type AttentionPresetName,
  type KvCache,
  type KvDType,
  attentionPrefill,
  attentionSegments,
  createKvCache,
  selectAttentionPreset,
  selectPrefillAttentionPreset,
} from './attention.js';
import { attentionDecode, decodeLanes } from './attention_decode.js';
import { ropeFrequencies } from './rope.js';
import { canBroadcast, hasSubgroupsOf } from './adapter.js';
import { type RowValues, rowsTable } from './rows.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

/**
 * The kernel this device does not pick by default, run on small head dims so both stay tested everywhere: the
 * workgroup-memory kernel on CPU adapters, the broadcast kernel (where subgroups allow it) on GPUs.
 */
function other(): AttentionPresetName | undefined {
  if (selectAttentionPreset(device, 16) !== 'tiled64x16') return 'tiled64x16';
  return canBroadcast(device) ? 'bcast8x4' : undefined;
}

/** Why the GPU prefill kernel (lanes over the head dim, subgroup shuffles) cannot run here, or undefined. */
function noFlash(): string | undefined {
  const T = ATTENTION_PRESETS.flash8x2.T;
  return hasSubgroupsOf(device, T) ? undefined : `the adapter lacks subgroups of ${T} or more`;
}

interface Cfg {
  hq: number;
  hkv: number;
  d: number;
}

// ---- float64 references -------------------------------------------------------------------------------------

/**
 * Straightforward softmax attention. q [rows, hq·d]; keys, vals [n, hkv·d]. Query i of head h attends to key
 * rows [lo, hi) = range(i), with kv head kvHead(h) (contiguous grouping unless told otherwise).
 */
function attentionRef(
  q: Float64Array,
  keys: Float64Array,
  vals: Float64Array,
  rows: number,
  c: Cfg,
  scale: number,
  range: (i: number) => [number, number],
  kvHead = (h: number) => Math.floor(h / (c.hq / c.hkv)),
): Float64Array {
  const { hq, hkv, d } = c;
  const out = new Float64Array(rows * hq * d);
  for (let i = 0; i < rows; i++) {
    const [lo, hi] = range(i);
    for (let h = 0; h < hq; h++) {
      const qo = (i * hq + h) * d;
      const kh = kvHead(h);
      const s = new Float64Array(hi - lo);
      for (let j = lo; j < hi; j++) {
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q[qo + e] * keys[(j * hkv + kh) * d + e];
        s[j - lo] = dot * scale;
      }
      const mx = Math.max(...s);
      let sum = 0;
      for (let j = 0; j < s.length; j++) sum += s[j] = Math.exp(s[j] - mx);
      for (let j = lo; j < hi; j++) {
        const w = s[j - lo] / sum;
        for (let e = 0; e < d; e++) out[qo + e] += w * vals[(j * hkv + kh) * d + e];
      }
    }
  }
  return out;
}

const causal =
  (start: number) =>
  (i: number): [number, number] => [0, start + i + 1];

// ---- helpers ------------------------------------------------------------------------------------------------

/** Random activations as the GPU holds them (16-bit rounding applied), float64. */
function act(dtype: 'f32' | 'f16', n: number, seed: number, scale = 1): Float64Array {
  return asStored(dtype, normal(n, seed, scale));
}

/**
 * [n, hkv·d] rows → the cache layout [slots, hkv, capacity, d] at positions [at, at+n) of `slot` (into `into`, or
 * a new single-slot cache whose other positions are NaN).
 */
function toCacheLayout(
  rows: Float64Array,
  n: number,
  hkv: number,
  d: number,
  capacity: number,
  at = 0,
  into?: Float64Array,
  slot = 0,
): Float64Array {
  const out = into ?? new Float64Array(hkv * capacity * d).fill(NaN);
  for (let j = 0; j < n; j++)
    for (let h = 0; h < hkv; h++)
      for (let e = 0; e < d; e++) out[((slot * hkv + h) * capacity + at + j) * d + e] = rows[(j * hkv + h) * d + e];
  return out;
}

/** Rows [0, n) of a slot of the cache, back in the activation layout [n, hkv·d]. */
function fromCacheLayout(
  cache: ArrayLike<number>,
  n: number,
  hkv: number,
  d: number,
  capacity: number,
  slot = 0,
): Float64Array {
  const out = new Float64Array(n * hkv * d);
  for (let j = 0; j < n; j++)
    for (let h = 0; h < hkv; h++)
      for (let e = 0; e < d; e++) out[(j * hkv + h) * d + e] = cache[((slot * hkv + h) * capacity + j) * d + e];
  return out;
}

/** A cache of `slots` slots whose slot `slot` holds `prior` random rows at its start; every other position is NaN. */
async function cacheWith(c: Cfg, capacity: number, kvd: KvDType, prior: number, seed: number, slot = 0, slots = 1) {
  const pk = act(kvd, prior * c.hkv * c.d, seed);
  const pv = act(kvd, prior * c.hkv * c.d, seed + 1);
  const cache = await createKvCache(device, c.hkv, capacity, c.d, kvd, 'test_cache', slots);
  const empty = () => new Float64Array(slots * c.hkv * capacity * c.d).fill(NaN);
  cache.k.write(toCacheLayout(pk, prior, c.hkv, c.d, capacity, 0, empty(), slot));
  cache.v.write(toCacheLayout(pv, prior, c.hkv, c.d, capacity, 0, empty(), slot));
  return { cache, pk, pv };
}

function concatRows(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/** The fused q|k|v rows [n, (hq + 2·hkv)·d] of q [n, hq·d], k and v [n, hkv·d]. */
function fusedRows(q: Float64Array, k: Float64Array, v: Float64Array, n: number, c: Cfg): Float64Array {
  const [qw, kw] = [c.hq * c.d, c.hkv * c.d];
  const out = new Float64Array(n * (qw + 2 * kw));
  for (let i = 0; i < n; i++) {
    const at = i * (qw + 2 * kw);
    out.set(q.subarray(i * qw, (i + 1) * qw), at);
    out.set(k.subarray(i * kw, (i + 1) * kw), at + qw);
    out.set(v.subarray(i * kw, (i + 1) * kw), at + qw + kw);
  }
  return out;
}

async function fusedTensor(
  ad: 'f32' | 'f16',
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  n: number,
  c: Cfg,
): Promise<Tensor> {
  return Tensor.fromArray(device, ad, [n, (c.hq + 2 * c.hkv) * c.d], fusedRows(q, k, v, n, c), 'qkv');
}

function disposeAll(...xs: { dispose(): void }[]): void {
  for (const x of xs) x.dispose();
}

function disposeCache(c: KvCache): void {
  c.k.dispose();
  c.v.dispose();
}

// The output is a convex combination of value rows, so its rounding error scales with |v|, not with the output
// (averaging shrinks the output towards 0 while the error does not): tolerances use max|v| as the scale.

// ---- prefill ------------------------------------------------------------------------------------------------

interface PrefillCase {
  c: Cfg;
  s: number;
  start: number;
  act: 'f32' | 'f16';
  kvd: KvDType;
  preset?: AttentionPresetName;
  /** The slot written and read, of slot + 2 (default 0 of 1). */
  slot?: number;
}

async function checkPrefill(
  ctx: TestContext,
  { c, s, start, act: ad, kvd, preset, slot = 0 }: PrefillCase,
): Promise<void> {
  if ((ad === 'f16' || kvd === 'f16') && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
  const seed = s * 131 + start * 7 + c.hq * 3 + c.d;
  const capacity = start + s + 3;
  const qs = act(ad, s * c.hq * c.d, seed, 2);
  const ks = act(ad, s * c.hkv * c.d, seed + 1);
  const vs = act(ad, s * c.hkv * c.d, seed + 2);
  const slots = slot === 0 ? 1 : slot + 2;
  const { cache, pk, pv } = await cacheWith(c, capacity, kvd, start, seed + 3, slot, slots);
  const qkv = await fusedTensor(ad, qs, ks, vs, s, c);
  const out = await poisoned(device, ad, [s, c.hq * c.d]);
  const g = new Graph(device);
  attentionPrefill(g, qkv, cache, { numHeads: c.hq, numKvHeads: c.hkv, headDim: c.d, start, slot, out, preset });
  await g.run();
  const keys = concatRows(pk, asStored(kvd, ks));
  const vals = concatRows(pv, asStored(kvd, vs));
  const ref = attentionRef(qs, keys, vals, s, c, 1 / Math.sqrt(c.d), causal(start));
  const tol = ad === 'f16' || kvd === 'f16' ? TOLERANCE.f16 : TOLERANCE.f32;
  const what = `prefill ${ad}a/${kvd}kv (${c.hq},${c.hkv},${c.d}) S=${s} start=${start}${slot ? ` slot ${slot} of ${slots}` : ''}${preset ? ` ${preset}` : ''}`;
  expectClose(await out.read(), ref, tol, what, maxAbs(vals));
  // The new rows are in the cache, exactly as stored; the earlier rows are untouched; other slots are not written.
  const kc = await cache.k.read();
  expectClose(
    fromCacheLayout(kc, start + s, c.hkv, c.d, capacity, slot),
    keys,
    { atol: 0, rtol: 0 },
    `${what}: cache.k`,
  );
  expectClose(
    fromCacheLayout(await cache.v.read(), start + s, c.hkv, c.d, capacity, slot),
    vals,
    { atol: 0, rtol: 0 },
    `${what}: cache.v`,
  );
  const slotSize = c.hkv * capacity * c.d;
  const others = [...kc.slice(0, slot * slotSize), ...kc.slice((slot + 1) * slotSize)];
  expect(others.every(Number.isNaN), `${what}: other slots untouched`).toBe(true);
  g.dispose();
  disposeAll(qkv, out);
  disposeCache(cache);
}

const SMALL: Cfg[] = [
  { hq: 4, hkv: 2, d: 16 },
  { hq: 2, hkv: 1, d: 8 },
  { hq: 3, hkv: 3, d: 12 },
];
const REAL: Cfg = { hq: 32, hkv: 2, d: 128 };

describe('attentionPrefill', () => {
  for (const c of SMALL) {
    for (const s of [1, 3, 17, 64, 130]) {
      for (const start of [0, 37]) {
        it(`f32 (${c.hq},${c.hkv},${c.d}) S=${s} start=${start}`, (ctx) =>
          checkPrefill(ctx, { c, s, start, act: 'f32', kvd: 'f32' }));
      }
    }
  }
  for (const [s, start] of [
    [1, 0],
    [17, 5],
    [3, 4094],
  ] as const) {
    it(`f32 real heads (32,2,128) S=${s} start=${start}`, (ctx) =>
      checkPrefill(ctx, { c: REAL, s, start, act: 'f32', kvd: 'f32' }));
  }
  for (const [ad, kvd] of [
    ['f16', 'f16'],
    ['f32', 'f16'],
    ['f16', 'f32'],
  ] as const) {
    for (const [s, start] of [
      [17, 0],
      [130, 37],
    ] as const) {
      it(`${ad} activations, ${kvd} cache (4,2,16) S=${s} start=${start}`, (ctx) =>
        checkPrefill(ctx, { c: SMALL[0], s, start, act: ad, kvd }));
    }
  }
  for (const [c, s, start] of [
    [SMALL[0], 3, 0],
    [SMALL[0], 130, 37],
    [SMALL[2], 17, 5],
  ] as const) {
    it(`the other kernel: f32 (${c.hq},${c.hkv},${c.d}) S=${s} start=${start}`, (ctx) =>
      other()
        ? checkPrefill(ctx, { c, s, start, act: 'f32', kvd: 'f32', preset: other() })
        : ctx.skip('no second attention kernel on this adapter'));
  }
  for (const [c, s, start] of [
    [SMALL[0], 17, 5],
    [REAL, 3, 40],
  ] as const) {
    it(`into slot 1 of 3: f32 (${c.hq},${c.hkv},${c.d}) S=${s} start=${start}`, (ctx) =>
      checkPrefill(ctx, { c, s, start, act: 'f32', kvd: 'f32', slot: 1 }));
  }
  it('the other kernel: into slot 2 of 4 (4,2,16) S=17 start=5', (ctx) =>
    other()
      ? checkPrefill(ctx, { c: SMALL[0], s: 17, start: 5, act: 'f32', kvd: 'f32', preset: other(), slot: 2 })
      : ctx.skip('no second attention kernel on this adapter'));
  // The GPU prefill kernel, forced where the default is another: row teams and tails (S·group not a multiple of
  // its 64 rows), a head dim that leaves lanes idle (12: 3 vec4s for 8 lanes), the real heads, f16.
  for (const [c, s, start] of [
    [SMALL[0], 1, 0],
    [SMALL[0], 130, 37],
    [SMALL[2], 67, 0],
    [REAL, 17, 5],
  ] as const) {
    it(`flash8x2: f32 (${c.hq},${c.hkv},${c.d}) S=${s} start=${start}`, (ctx) =>
      noFlash()
        ? ctx.skip(noFlash()!)
        : checkPrefill(ctx, { c, s, start, act: 'f32', kvd: 'f32', preset: 'flash8x2' }));
  }
  it('flash8x2: f16 activations, f16 cache (4,2,16) S=130 start=37', (ctx) =>
    noFlash()
      ? ctx.skip(noFlash()!)
      : checkPrefill(ctx, { c: SMALL[0], s: 130, start: 37, act: 'f16', kvd: 'f16', preset: 'flash8x2' }));
  it('flash8x2: into slot 2 of 4 (4,2,16) S=17 start=5', (ctx) =>
    noFlash()
      ? ctx.skip(noFlash()!)
      : checkPrefill(ctx, { c: SMALL[0], s: 17, start: 5, act: 'f32', kvd: 'f32', preset: 'flash8x2', slot: 2 }));
  it('the other kernel: f16 activations, f16 cache (4,2,16) S=130 start=37', (ctx) =>
    other()
      ? checkPrefill(ctx, { c: SMALL[0], s: 130, start: 37, act: 'f16', kvd: 'f16', preset: other() })
      : ctx.skip('no second attention kernel on this adapter'));

  it('two chunks give the one-shot result', async () => {
    const c = SMALL[0];
    const [s, split, capacity] = [130, 50, 140];
    const qs = act('f32', s * c.hq * c.d, 11, 2);
    const ks = act('f32', s * c.hkv * c.d, 12);
    const vs = act('f32', s * c.hkv * c.d, 13);
    const heads = { numHeads: c.hq, numKvHeads: c.hkv, headDim: c.d };
    const rows = (x: Float64Array, w: number, a: number, b: number) => x.subarray(a * w, b * w);
    const oneShot = await createKvCache(device, c.hkv, capacity, c.d);
    const chunked = await createKvCache(device, c.hkv, capacity, c.d);
    const ts = [await fusedTensor('f32', qs, ks, vs, s, c)];
    const chunks = [];
    for (const [a, b] of [
      [0, split],
      [split, s],
    ])
      chunks.push(
        await fusedTensor(
          'f32',
          rows(qs, c.hq * c.d, a, b),
          rows(ks, c.hkv * c.d, a, b),
          rows(vs, c.hkv * c.d, a, b),
          b - a,
          c,
        ),
      );
    const g = new Graph(device);
    const whole = g.keep(attentionPrefill(g, ts[0], oneShot, { ...heads, start: 0 }));
    const first = g.keep(attentionPrefill(g, chunks[0], chunked, { ...heads, start: 0 }));
    const second = g.keep(attentionPrefill(g, chunks[1], chunked, { ...heads, start: split }));
    await g.run();
    const w = await whole.read();
    const got = concatRows(Float64Array.from(await first.read()), Float64Array.from(await second.read()));
    const scale = maxAbs(vs);
    expectClose(
      got,
      attentionRef(qs, ks, vs, s, c, 1 / Math.sqrt(c.d), causal(0)),
      TOLERANCE.f32,
      'chunked prefill vs reference',
      scale,
    );
    expectClose(got, w, TOLERANCE.f32, 'chunked prefill vs one-shot', scale);
    const rowsOf = async (t: Tensor) => fromCacheLayout(await t.read(), s, c.hkv, c.d, capacity);
    expectClose(await rowsOf(chunked.k), await rowsOf(oneShot.k), { atol: 0, rtol: 0 }, 'chunked cache.k vs one-shot');
    expectClose(await rowsOf(chunked.v), await rowsOf(oneShot.v), { atol: 0, rtol: 0 }, 'chunked cache.v vs one-shot');
    g.dispose();
    disposeAll(...ts, ...chunks);
    disposeCache(oneShot);
    disposeCache(chunked);
  });

  it('maps query head h to kv head floor(h / group), not h mod numKvHeads', async () => {
    const c: Cfg = { hq: 4, hkv: 2, d: 16 };
    const s = 9;
    const qs = act('f32', s * c.hq * c.d, 21);
    const ks = act('f32', s * c.hkv * c.d, 22);
    const vs = act('f32', s * c.hkv * c.d, 23);
    const cache = await createKvCache(device, c.hkv, s, c.d);
    const qkv = await fusedTensor('f32', qs, ks, vs, s, c);
    const g = new Graph(device);
    const out = g.keep(attentionPrefill(g, qkv, cache, { numHeads: c.hq, numKvHeads: c.hkv, headDim: c.d, start: 0 }));
    await g.run();
    const got = await out.read();
    const contiguous = attentionRef(qs, ks, vs, s, c, 0.25, causal(0));
    const modulo = attentionRef(qs, ks, vs, s, c, 0.25, causal(0), (h) => h % c.hkv);
    expectClose(got, contiguous, TOLERANCE.f32, 'GQA contiguous grouping', maxAbs(vs));
    expect(() => expectClose(got, modulo, TOLERANCE.f32, 'GQA modulo grouping', maxAbs(vs))).toThrow();
    g.dispose();
    disposeAll(qkv);
    disposeCache(cache);
  });

  for (const scale of [1.7, 40]) {
    it(`takes an explicit scale (${scale})`, async () => {
      const c: Cfg = { hq: 2, hkv: 1, d: 8 };
      const s = 37;
      const qs = act('f32', s * c.hq * c.d, 31);
      const ks = act('f32', s * c.hkv * c.d, 32);
      const vs = act('f32', s * c.hkv * c.d, 33);
      const cache = await createKvCache(device, c.hkv, s, c.d);
      const ts = [await fusedTensor('f32', qs, ks, vs, s, c)];
      const g = new Graph(device);
      const out = g.keep(
        attentionPrefill(g, ts[0], cache, { numHeads: 2, numKvHeads: 1, headDim: 8, start: 0, scale }),
      );
      await g.run();
      // At scale 40 the logits reach hundreds (exp of them overflows anything without the running max); their f32
      // rounding then moves the weights by ~ε·|logit|, so the error scale is max|v|·max|logit|.
      let maxLogit = 1;
      for (let i = 0; i < s; i++)
        for (let h = 0; h < 2; h++)
          for (let j = 0; j <= i; j++) {
            let dot = 0;
            for (let e = 0; e < 8; e++) dot += qs[(i * 2 + h) * 8 + e] * ks[j * 8 + e];
            maxLogit = Math.max(maxLogit, Math.abs(dot * scale));
          }
      expectClose(
        await out.read(),
        attentionRef(qs, ks, vs, s, c, scale, causal(0)),
        TOLERANCE.f32,
        `prefill scale ${scale}`,
        maxAbs(vs) * maxLogit,
      );
      g.dispose();
      disposeAll(...ts);
      disposeCache(cache);
    });
  }
});

// ---- decode -------------------------------------------------------------------------------------------------

/** One sequence of a decode batch: its cache slot and the position its new token takes (= keys already there). */
interface DecodeRow {
  slot: number;
  pos: number;
}

const table = (rows: readonly DecodeRow[]): Int32Array =>
  rowsTable(rows.map((r): RowValues => ({ ...r, ropePos: r.pos, step: 0 })));

/** A decode row's inputs, seeded by the row alone (so a row gets the same inputs in any batch). */
function rowInputs(c: Cfg, r: DecodeRow, ad: 'f32' | 'f16', kvd: KvDType) {
  const seed = r.pos * 7 + r.slot * 131 + c.hq * 5 + c.d;
  const [qw, kw] = [c.hq * c.d, c.hkv * c.d];
  return {
    q: act(ad, qw, seed, 2),
    k: act(ad, kw, seed + 1),
    v: act(ad, kw, seed + 2),
    // the keys and values already in the row's slot: positions [0, pos)
    pk: act(kvd, r.pos * kw, seed + 3),
    pv: act(kvd, r.pos * kw, seed + 4),
  };
}

function concatAll(xs: Float64Array[]): Float64Array {
  return xs.reduce((a, b) => concatRows(a, b), new Float64Array(0));
}

/** The text RoPE in float64 on the first `heads` heads of one row: interleaved pairs j < rotaryDim/2 by pos·ω_j. */
function ropeRef(x: Float64Array, heads: number, d: number, rotaryDim: number, pos: number): Float64Array {
  const y = Float64Array.from(x);
  const omega = ropeFrequencies(rotaryDim, ROPE.theta);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < rotaryDim / 2; j++) {
      const a = Math.fround(pos * omega[j]);
      const [i0, i1] = [h * d + 2 * j, h * d + 2 * j + 1];
      y[i0] = x[i0] * Math.cos(a) - x[i1] * Math.sin(a);
      y[i1] = x[i1] * Math.cos(a) + x[i0] * Math.sin(a);
    }
  }
  return y;
}

const ROPE = { theta: 10000 };

interface DecodeCase {
  lanes?: number;
  /** Rotary dims turned by the fused RoPE (none: q and k as given). */
  rotaryDim?: number;
  slots?: number;
}

/**
 * A batch of decode rows in one dispatch against the float64 reference: slot s holds the keys of the row that uses
 * it (other slots stay NaN and must not be read). Returns the output, for comparisons between batches.
 */
async function checkDecode(
  ctx: TestContext,
  c: Cfg,
  rows: readonly DecodeRow[],
  capacity: number,
  ad: 'f32' | 'f16',
  kvd: KvDType,
  o: DecodeCase = {},
): Promise<Float32Array | undefined> {
  if ((ad === 'f16' || kvd === 'f16') && !device.has('shader-f16')) {
    ctx.skip('the adapter lacks shader-f16');
    return undefined;
  }
  const slots = o.slots ?? 1 + Math.max(...rows.map((r) => r.slot));
  const m = rows.length;
  const inputs = rows.map((r) => rowInputs(c, r, ad, kvd));
  const hk = new Float64Array(slots * c.hkv * capacity * c.d).fill(NaN);
  const hv = hk.slice();
  rows.forEach((r, i) => {
    toCacheLayout(inputs[i].pk, r.pos, c.hkv, c.d, capacity, 0, hk, r.slot);
    toCacheLayout(inputs[i].pv, r.pos, c.hkv, c.d, capacity, 0, hv, r.slot);
  });
  const cache = await createKvCache(device, c.hkv, capacity, c.d, kvd, 'test_cache', slots);
  cache.k.write(hk);
  cache.v.write(hv);
  const qkv = await Tensor.fromArray(
    device,
    ad,
    [m, (c.hq + 2 * c.hkv) * c.d],
    concatAll(inputs.map((x) => fusedRows(x.q, x.k, x.v, 1, c))),
    'qkv',
  );
  const rowsT = await Tensor.fromArray(device, 'i32', [m, 4], table(rows), 'rows');
  const out = await poisoned(device, ad, [m, c.hq * c.d]);
  const g = new Graph(device);
  const rope = o.rotaryDim ? { rotaryDim: o.rotaryDim, theta: ROPE.theta } : undefined;
  attentionDecode(g, qkv, cache, {
    numHeads: c.hq,
    numKvHeads: c.hkv,
    headDim: c.d,
    rows: rowsT,
    maxKeys: (p) => p.maxKeys,
    out,
    lanes: o.lanes,
    rope,
  });
  await g.run({ maxKeys: Math.max(...rows.map((r) => r.pos)) + 1 });
  const got = (await out.read()) as Float32Array;
  const kc = await cache.k.read();
  const vc = await cache.v.read();
  const tol = ad === 'f16' || kvd === 'f16' ? TOLERANCE.f16 : TOLERANCE.f32;
  const qw = c.hq * c.d;
  rows.forEach(({ slot, pos }, r) => {
    const x = inputs[r];
    // RoPE turns q and the new k (at the row's rotary position, = pos here); the cache holds the turned k
    const turn = (y: Float64Array, heads: number) => (o.rotaryDim ? ropeRef(y, heads, c.d, o.rotaryDim, pos) : y);
    const keys = concatRows(x.pk, asStored(kvd, turn(x.k, c.hkv)));
    const vals = concatRows(x.pv, asStored(kvd, x.v));
    const ref = attentionRef(turn(x.q, c.hq), keys, vals, 1, c, 1 / Math.sqrt(c.d), () => [0, pos + 1]);
    const what = `decode ${ad}a/${kvd}kv (${c.hq},${c.hkv},${c.d}) row ${r} of ${m}: slot ${slot} pos ${pos}${o.lanes ? ` ${o.lanes} lanes` : ''}${rope ? ' rope' : ''}`;
    expectClose(got.subarray(r * qw, (r + 1) * qw), ref, tol, what, maxAbs(vals));
    const exact = { atol: 0, rtol: 0 };
    expectClose(
      fromCacheLayout(kc, pos + 1, c.hkv, c.d, capacity, slot),
      keys,
      rope ? tol : exact,
      `${what}: cache.k`,
      maxAbs(keys),
    );
    expectClose(fromCacheLayout(vc, pos + 1, c.hkv, c.d, capacity, slot), vals, exact, `${what}: cache.v`);
    // Nothing past the new row was written (those positions still hold the NaN they started with).
    const slotStart = slot * c.hkv * capacity * c.d;
    expect(
      kc.slice(slotStart + (pos + 1) * c.d, slotStart + capacity * c.d).every(Number.isNaN),
      `${what}: past the row`,
    ).toBe(true);
  });
  g.dispose();
  disposeAll(qkv, rowsT, out);
  disposeCache(cache);
  return got;
}

const one = (pos: number): DecodeRow[] => [{ slot: 0, pos }];
// ragged lengths (1, 7 and long ones) in slots out of order, one slot left unused
const RAGGED: DecodeRow[] = [
  { slot: 3, pos: 6 },
  { slot: 0, pos: 0 },
  { slot: 4, pos: 4097 },
  { slot: 1, pos: 600 },
];

/** Lanes per head other than this adapter's default, so both the shuffle and the one-lane kernels stay tested. */
function otherLanes(): number[] {
  const all = [1, 2, 4, 8].filter((t) => t === 1 || hasSubgroupsOf(device, t));
  return all.filter((t) => t !== decodeLanes(device));
}

describe('attentionDecode', () => {
  for (const c of [...SMALL, REAL]) {
    for (const pos of [0, 1, 7, 4097]) {
      it(`f32 (${c.hq},${c.hkv},${c.d}) pos=${pos}`, (ctx) => checkDecode(ctx, c, one(pos), 4101, 'f32', 'f32'));
    }
  }
  for (const [ad, kvd] of [
    ['f16', 'f16'],
    ['f32', 'f16'],
    ['f16', 'f32'],
  ] as const) {
    for (const pos of [0, 300]) {
      it(`${ad} activations, ${kvd} cache (4,2,16) pos=${pos}`, (ctx) =>
        checkDecode(ctx, SMALL[0], one(pos), 301, ad, kvd));
    }
  }
  it('f16 activations, f16 cache (32,2,128) pos=300', (ctx) => checkDecode(ctx, REAL, one(300), 301, 'f16', 'f16'));
  for (const [c, pos] of [
    [SMALL[0], 0],
    [SMALL[2], 4097],
    [SMALL[1], 600],
  ] as const) {
    it(`every other lane count: f32 (${c.hq},${c.hkv},${c.d}) pos=${pos}`, async (ctx) => {
      for (const lanes of otherLanes()) await checkDecode(ctx, c, one(pos), 4101, 'f32', 'f32', { lanes });
    });
  }

  // RoPE fused in: q and the new k turned at the row's rotary position (partial rotary dims, as GLM's 64 of 128).
  for (const [c, rot, pos] of [
    [SMALL[0], 8, 5],
    [SMALL[2], 4, 600],
    [REAL, 64, 4097],
    [REAL, 128, 70000],
  ] as const) {
    it(`RoPE fused: f32 (${c.hq},${c.hkv},${c.d}) rotary ${rot} pos=${pos}`, (ctx) =>
      checkDecode(ctx, c, one(pos), pos + 3, 'f32', 'f32', { rotaryDim: rot }));
  }
  it('RoPE fused: f16 activations and cache (32,2,128) rotary 64, ragged batch', (ctx) =>
    checkDecode(ctx, REAL, RAGGED, 4101, 'f16', 'f16', { rotaryDim: 64 }));
  it('RoPE fused, one lane per head (32,2,128) rotary 64', (ctx) =>
    checkDecode(ctx, REAL, one(300), 301, 'f32', 'f32', { rotaryDim: 64, lanes: 1 }));

  // Batches: ragged lengths (1, 7 and long ones) in slots out of order, one slot left unused.
  for (const c of [SMALL[0], SMALL[2], REAL]) {
    it(`a batch of ragged rows, f32 (${c.hq},${c.hkv},${c.d})`, (ctx) =>
      checkDecode(ctx, c, RAGGED, 4101, 'f32', 'f32'));
  }
  it('a batch of ragged rows, f16 activations and cache (4,2,16)', (ctx) =>
    checkDecode(ctx, SMALL[0], RAGGED, 4101, 'f16', 'f16'));
  it('a batch of ragged rows, one lane per head (4,2,16)', (ctx) =>
    checkDecode(ctx, SMALL[0], RAGGED, 4101, 'f32', 'f32', { lanes: 1 }));
  it('a group of 20 query heads per kv head (two head chunks per workgroup at one lane)', (ctx) =>
    checkDecode(ctx, { hq: 40, hkv: 2, d: 16 }, RAGGED, 4101, 'f32', 'f32', { lanes: 1 }));

  it("each row's result is the same, to the bit, in a batch as alone", async (ctx) => {
    const c = SMALL[0];
    const batch = (await checkDecode(ctx, c, RAGGED, 4101, 'f32', 'f32', { rotaryDim: 8 }))!;
    const w = c.hq * c.d;
    for (let r = 0; r < RAGGED.length; r++) {
      const alone = (await checkDecode(ctx, c, [RAGGED[r]], 4101, 'f32', 'f32', { rotaryDim: 8, slots: 5 }))!;
      expect(Array.from(alone), `row ${r}`).toEqual(Array.from(batch.subarray(r * w, (r + 1) * w)));
    }
  });

  it('replays one recorded step per token, as a prefill of the same tokens would compute', async () => {
    const c: Cfg = { hq: 4, hkv: 2, d: 16 };
    // 140 steps one by one (past the GPU split boundaries at 64 and 128 keys), then jumps to positions 600 and 1100
    // over rows written from the host (past the CPU boundaries at 512 and 1024). The sequence lives in slot 1 of 2.
    const [steps, jumps, capacity, slot] = [140, [600, 1100], 1101, 1];
    const qs = act('f32', capacity * c.hq * c.d, 41, 2);
    const ks = act('f32', capacity * c.hkv * c.d, 42);
    const vs = act('f32', capacity * c.hkv * c.d, 43);
    const cache = await createKvCache(device, c.hkv, capacity, c.d, 'f32', 'kv', 2);
    const qkv = await Tensor.empty(device, 'f32', [1, (c.hq + 2 * c.hkv) * c.d], 'qkv');
    const rows = await Tensor.empty(device, 'i32', [1, 4], 'rows');
    const out = await poisoned(device, 'f32', [1, c.hq * c.d]);
    const g = new Graph(device);
    attentionDecode(g, qkv, cache, {
      numHeads: c.hq,
      numKvHeads: c.hkv,
      headDim: c.d,
      rows,
      maxKeys: (p) => p.maxKeys,
      out,
    });
    const step = async (t: number) => {
      qkv.write(
        fusedRows(qs.subarray(t * c.hq * c.d), ks.subarray(t * c.hkv * c.d), vs.subarray(t * c.hkv * c.d), 1, c),
      );
      rows.write(table([{ slot, pos: t }]));
      await g.run({ maxKeys: t + 1 });
      return Float64Array.from(await out.read());
    };
    const got = new Float64Array(steps * c.hq * c.d);
    for (let t = 0; t < steps; t++) got.set(await step(t), t * c.hq * c.d);
    expectClose(got, attentionRef(qs, ks, vs, steps, c, 0.25, causal(0)), TOLERANCE.f32, 'decode replay', maxAbs(vs));
    const full = new Float64Array(2 * c.hkv * capacity * c.d).fill(NaN);
    cache.k.write(toCacheLayout(ks, capacity, c.hkv, c.d, capacity, 0, full, slot));
    cache.v.write(toCacheLayout(vs, capacity, c.hkv, c.d, capacity, 0, full.slice(), slot));
    for (const t of jumps) {
      const ref = attentionRef(qs.subarray(t * c.hq * c.d), ks, vs, 1, c, 0.25, () => [0, t + 1]);
      expectClose(await step(t), ref, TOLERANCE.f32, `decode replay at ${t}`, maxAbs(vs));
    }
    g.dispose();
    disposeAll(qkv, rows, out);
    disposeCache(cache);
  });

  it('decodes at the 64k context limit (the most splits)', (ctx) =>
    checkDecode(ctx, SMALL[0], one(65535), 65536, 'f32', 'f32'));

  // The split count is not monotone in the length: with 64-key chunks, 16384 keys take 256 splits but a capacity of
  // 16385 only 253 (on GPUs; CPU adapters' 512-key chunks reach the cap only at 64k, tested above).
  it('decodes where a shorter context needs more splits than the full one', (ctx) =>
    checkDecode(ctx, SMALL[1], one(16383), 16385, 'f32', 'f32'));

  it('rejects maxKeys outside the cache when the graph runs; a row past its capacity writes into no other slot', async () => {
    const cache = await createKvCache(device, 1, 8, 8, 'f32', 'kv', 2);
    cache.k.writeBytes(new Uint8Array(cache.k.byteSize).fill(0xff));
    const qkv = await Tensor.empty(device, 'f32', [1, 32]);
    const rows = await Tensor.fromArray(device, 'i32', [1, 4], table([{ slot: 0, pos: 8 }]), 'rows');
    const g = new Graph(device);
    attentionDecode(g, qkv, cache, { numHeads: 2, numKvHeads: 1, headDim: 8, rows, maxKeys: (p) => p.maxKeys });
    await expect(g.run({ maxKeys: 9 })).rejects.toThrow(/maxKeys is 9; expected an integer in \[1, 8\]/);
    await expect(g.run({ maxKeys: 0 })).rejects.toThrow(InputError);
    await g.run({ maxKeys: 8 });
    const kc = await cache.k.read();
    expect(kc.every(Number.isNaN), 'no position of either slot written').toBe(true);
    g.dispose();
    disposeAll(qkv, rows);
    disposeCache(cache);
  });
});

// ---- segments -----------------------------------------------------------------------------------------------

function segmentRange(segments: readonly number[]) {
  return (i: number): [number, number] => {
    let j = 0;
    while (segments[j + 1] <= i) j++;
    return [segments[j], segments[j + 1]];
  };
}

async function checkSegments(
  ctx: TestContext,
  h: number,
  d: number,
  segments: readonly number[],
  ad: 'f32' | 'f16',
  preset?: AttentionPresetName,
): Promise<void> {
  if (ad === 'f16' && !device.has('shader-f16')) return ctx.skip('the adapter lacks shader-f16');
  const s = segments[segments.length - 1];
  const seed = s * 3 + h * 11 + d + segments.length;
  const qs = act(ad, s * h * d, seed, 2);
  const ks = act(ad, s * h * d, seed + 1);
  const vs = act(ad, s * h * d, seed + 2);
  const q = await Tensor.fromArray(device, ad, [s, h * d], qs, 'q');
  const k = await Tensor.fromArray(device, ad, [s, h * d], ks, 'k');
  const v = await Tensor.fromArray(device, ad, [s, h * d], vs, 'v');
  const out = await poisoned(device, ad, [s, h * d]);
  const g = new Graph(device);
  attentionSegments(g, q, k, v, segments, { numHeads: h, headDim: d, out, preset });
  await g.run();
  const ref = attentionRef(qs, ks, vs, s, { hq: h, hkv: h, d }, 1 / Math.sqrt(d), segmentRange(segments));
  expectClose(
    await out.read(),
    ref,
    TOLERANCE[ad],
    `segments ${ad} H=${h} D=${d} [${segments.join(', ')}]${preset ? ` ${preset}` : ''}`,
    maxAbs(vs),
  );
  g.dispose();
  disposeAll(q, k, v, out);
}

describe('attentionSegments', () => {
  const SEGMENTS: number[][] = [
    [0, 1],
    [0, 17],
    [0, 130],
    [0, 16, 40],
    [0, 8, 16, 24, 40, 41, 42],
    [0, 3, 70, 137],
  ];
  for (const [h, d] of [
    [4, 16],
    [3, 12],
    [2, 8],
  ]) {
    for (const segments of SEGMENTS) {
      it(`f32 H=${h} D=${d} [${segments.join(', ')}]`, (ctx) => checkSegments(ctx, h, d, segments, 'f32'));
    }
  }
  it('f32 real heads H=12 D=128 [0, 16, 40]', (ctx) => checkSegments(ctx, 12, 128, [0, 16, 40], 'f32'));
  it('f16 H=4 D=16 [0, 16, 40]', (ctx) => checkSegments(ctx, 4, 16, [0, 16, 40], 'f16'));
  it('f16 H=4 D=16 [0, 3, 70, 137]', (ctx) => checkSegments(ctx, 4, 16, [0, 3, 70, 137], 'f16'));
  for (const [h, d, segments] of [
    [4, 16, [0, 8, 16, 24, 40, 41, 42]],
    [3, 12, [0, 3, 70, 137]],
    [12, 128, [0, 16, 40]],
  ] as const) {
    it(`flash8x2: f32 H=${h} D=${d} [${segments.join(', ')}]`, (ctx) =>
      noFlash() ? ctx.skip(noFlash()!) : checkSegments(ctx, h, d, segments, 'f32', 'flash8x2'));
  }
  for (const [h, d, segments] of [
    [4, 16, [0, 16, 40]],
    [4, 16, [0, 8, 16, 24, 40, 41, 42]],
    [3, 12, [0, 3, 70, 137]],
  ] as const) {
    it(`the other kernel: f32 H=${h} D=${d} [${segments.join(', ')}]`, (ctx) =>
      other()
        ? checkSegments(ctx, h, d, segments, 'f32', other())
        : ctx.skip('no second attention kernel on this adapter'));
  }
});

// ---- validation ---------------------------------------------------------------------------------------------

describe('attention input checks', () => {
  it('gives prefill and vision the flash kernel on GPUs with subgroups of 8 or more; decode keeps its preset', () => {
    const fake = (cpu: boolean, sg: number) =>
      ({
        has: (f: string) => f === 'subgroups',
        adapter: { isFallbackAdapter: cpu, architecture: cpu ? 'software' : 'gpu', subgroupMinSize: sg },
      }) as unknown as Device;
    expect(selectPrefillAttentionPreset(fake(false, 32), 128)).toBe('flash8x2');
    expect(selectAttentionPreset(fake(false, 32), 128)).toBe('tiled64x16');
    expect(selectPrefillAttentionPreset(fake(false, 4), 128)).toBe('tiled64x16');
    expect(selectPrefillAttentionPreset(fake(true, 8), 128)).toBe('bcast8x2');
    expect(selectPrefillAttentionPreset(fake(true, 8), 64)).toBe('bcast8x4');
  });

  it('names the argument at fault', async () => {
    const g = new Graph(device);
    const cache = await createKvCache(device, 2, 16, 16);
    const q = await Tensor.empty(device, 'f32', [5, 64], 'q_proj');
    const qkv = await Tensor.empty(device, 'f32', [5, 128], 'qkv_proj');
    const qkvBad = await Tensor.empty(device, 'f32', [5, 144], 'qkv_bad');
    const heads = { numHeads: 4, numKvHeads: 2, headDim: 16 };
    expect(() => attentionPrefill(g, qkv, cache, { ...heads, start: 12 })).toThrow(
      /start 12 \+ 5 rows exceed the cache capacity of 16/,
    );
    expect(() => attentionPrefill(g, qkvBad, cache, { ...heads, start: 0 })).toThrow(
      /qkv 'qkv_bad' has shape \[5, 144\]; expected \[5, 128\]/,
    );
    expect(() => attentionPrefill(g, qkv, cache, { numHeads: 4, numKvHeads: 3, headDim: 16, start: 0 })).toThrow(
      /numHeads \(4\) is not a multiple of numKvHeads \(3\)/,
    );
    expect(() => attentionPrefill(g, qkv, cache, { ...heads, start: -1 })).toThrow(/start is -1/);
    expect(() => attentionPrefill(g, qkv, cache, { numHeads: 4, numKvHeads: 2, headDim: 130, start: 0 })).toThrow(
      /headDim is 130/,
    );
    const rows = await Tensor.empty(device, 'i32', [4, 4], 'rows4');
    expect(() => attentionDecode(g, qkv, cache, { ...heads, rows, maxKeys: () => 1 })).toThrow(
      /rows 'rows4' has shape \[4, 4\]; expected \[5, 4\]/,
    );
    const rows5 = await Tensor.empty(device, 'i32', [5, 4], 'rows5');
    expect(() =>
      attentionDecode(g, qkv, cache, { ...heads, rows: rows5, maxKeys: () => 1, rope: { rotaryDim: 6, theta: 1e4 } }),
    ).toThrow(/rotaryDim 6 must be a multiple of 4/);
    expect(() => attentionDecode(g, qkv, cache, { ...heads, rows: rows5, maxKeys: () => 1, lanes: 3 })).toThrow(
      /lanes is 3/,
    );
    expect(() => attentionPrefill(g, qkv, cache, { ...heads, start: 0, slot: 1 })).toThrow(
      /slot 1 is outside the cache's 1 slots/,
    );
    expect(() => attentionSegments(g, q, q, q, [0, 3, 3, 5], { numHeads: 4, headDim: 16 })).toThrow(
      /segments \[0, 3, 3, 5\]/,
    );
    expect(() => attentionSegments(g, q, q, q, [0, 4], { numHeads: 4, headDim: 16 })).toThrow(InputError);
    const other = await createKvCache(device, 2, 16, 8);
    expect(() => attentionPrefill(g, qkv, other, { ...heads, start: 0 })).toThrow(
      /cache\.k 'kv_cache\.k' has shape \[1, 2, 16, 8\]; expected \[\?, 2, \?, 16\]/,
    );
    await expect(createKvCache(device, 2, 0, 16)).rejects.toThrow(/capacity is 0/);
    const tooMany = Math.floor(device.limits.maxStorageBufferBindingSize / (2 * 128 * 4)) + 1;
    await expect(createKvCache(device, 2, tooMany, 128)).rejects.toThrow(/storage binding limit/);
    await expect(createKvCache(device, 2, 16, 16, 'f32', 'kv', 0)).rejects.toThrow(/slots is 0/);
    disposeAll(q, qkv, qkvBad, rows, rows5);
    disposeCache(cache);
    disposeCache(other);
  });

  it('createKvCache frees k when allocating v fails', async () => {
    const before = device.pool.stats.bytesInUse;
    const acquire = device.pool.acquire.bind(device.pool);
    let calls = 0;
    const spy = vi.spyOn(device.pool, 'acquire').mockImplementation(async (bytes, label) => {
      if (++calls === 2) throw new OutOfMemoryError(`'${label}': no memory (simulated)`);
      return acquire(bytes, label);
    });
    try {
      await expect(createKvCache(device, 2, 16, 16, 'f32', 'leaky')).rejects.toThrow(/leaky\.v.*simulated/);
    } finally {
      spy.mockRestore();
    }
    expect(calls).toBe(2);
    expect(device.pool.stats.bytesInUse).toBe(before);
  });
});
