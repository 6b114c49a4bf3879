// Attention: causal grouped-query prefill and flash-decoding over a KV cache, and segment-restricted bidirectional
// attention for the vision tower. Kernels: attention.wgsl (GPUs: K/V tiles in workgroup memory),
// attention_flash.wgsl (GPUs with subgroups, prefill and vision: the same tiles, lanes over the head dim) or
// attention_broadcast.wgsl (CPU adapters: K/V rows shared by subgroup broadcasts), the same work and bindings;
// attention_store.wgsl (new k, v rows into the cache); attention_reduce.wgsl (flash-decoding's combine pass).
// All accumulate in f32; the online softmax runs in base 2 with log2(e) folded into the scale.

import { type Device, type Graph, InputError, LimitError, type Params, Tensor, UniformLayout } from '@glm4v/core';
import TILED_WGSL from './attention.wgsl.js';
import FLASH_WGSL from './attention_flash.wgsl.js';
import BROADCAST_WGSL from './attention_broadcast.wgsl.js';
import REDUCE_WGSL from './attention_reduce.wgsl.js';
import STORE_WGSL from './attention_store.wgsl.js';
import { type ActDType, assertDType, assertShape, checkActDType, prelude } from './prelude.js';
import { grid1d } from './grid.js';
import { canBroadcast, isCpuAdapter } from './matmul.js';

/** Per-layer KV cache: k and v each [numKvHeads, capacity, headDim], f32 (exact path) or f16 (needs shader-f16).
 *  Keys are stored post-RoPE. Owned by the caller (the session). */
export interface KvCache {
  k: Tensor;
  v: Tensor;
}

export type KvDType = 'f32' | 'f16';

export type AttentionPreset =
  | { kind: 'tiled'; WG: number; BK: number; minChunk: number }
  | { kind: 'flash'; WG: number; T: number; R: number; BK: number }
  | { kind: 'broadcast'; WG: number; R: number; minChunk: number };

/**
 * Presets, named in kernel labels. WG invocations per workgroup, each owning one row (tiled) or R rows (broadcast)
 * of queries; BK keys per workgroup-memory tile (2·BK·headDim·4 bytes: 16 KiB at headDim 128). minChunk: the
 * fewest keys per flash-decoding split. A CPU has few cores to fill and pays for every split's setup (q in, partial
 * results out): on lavapipe 512 beat 256 (more setup) and 1024 (too few workgroups at 1k context).
 */
export const ATTENTION_PRESETS = {
  /** GPUs: decode, and prefill or vision without subgroups of ≥ 8 lanes. */
  tiled64x16: { kind: 'tiled', WG: 64, BK: 16, minChunk: 64 },
  /** GPUs with subgroups of ≥ 8 lanes, prefill and vision: 64 rows per workgroup, teams of 8 lanes × 2 rows. */
  flash8x2: { kind: 'flash', WG: 256, T: 8, R: 2, BK: 16 },
  /** CPU adapters, head dim ≤ 64: 8 lanes × 4 rows. */
  bcast8x4: { kind: 'broadcast', WG: 8, R: 4, minChunk: 512 },
  /** CPU adapters, head dim > 64: 8 lanes × 2 rows (4 rows of 128 spill; see attention_broadcast.wgsl). */
  bcast8x2: { kind: 'broadcast', WG: 8, R: 2, minChunk: 512 },
} as const satisfies Record<string, AttentionPreset>;
export type AttentionPresetName = keyof typeof ATTENTION_PRESETS;

/**
 * The preset for a head dim: on CPU adapters with subgroups of ≥ 8 lanes, 'bcast8x4' up to head dim 64 and
 * 'bcast8x2' above; elsewhere 'tiled64x16'. It does not depend on the op or the sizes, so prefill, decode and
 * vision attention of one head dim share a pipeline (on lavapipe a head-dim-128 compile takes seconds).
 */
export function selectAttentionPreset(device: Device, headDim: number): AttentionPresetName {
  if (!isCpuAdapter(device) || !canBroadcast(device)) return 'tiled64x16';
  return headDim > 64 ? 'bcast8x2' : 'bcast8x4';
}

/**
 * The preset for prefill and vision attention: 'flash8x2' on GPUs whose subgroups have at least 8 lanes, else
 * selectAttentionPreset's (decode keeps that one everywhere).
 */
export function selectPrefillAttentionPreset(device: Device, headDim: number): AttentionPresetName {
  if (!isCpuAdapter(device) && device.has('subgroups') && (device.adapter.subgroupMinSize ?? 0) >= ATTENTION_PRESETS.flash8x2.T) return 'flash8x2';
  return selectAttentionPreset(device, headDim);
}

/** Flash-decoding's split of `keys` keys: at least minChunk keys per split, at most DECODE_MAX_SPLITS splits. */
export const DECODE_MAX_SPLITS = 256;
export function decodeSplits(keys: number, minChunk: number): { splits: number; chunk: number } {
  const target = Math.min(DECODE_MAX_SPLITS, Math.max(1, Math.ceil(keys / minChunk)));
  const chunk = Math.ceil(keys / target);
  return { splits: Math.ceil(keys / chunk), chunk };
}

const FLASH_FIELDS =
  'segs: u32, seg_len: u32, tiles: u32, kv_heads: u32, group: u32, splits: u32, chunk: u32, q_first: u32, k_first: u32, ' +
  'kv_len: u32, causal: u32, shift: u32, partial: u32, max_splits: u32, q_row: u32, k_head: u32, k_row: u32, hd4: u32, scale: f32';
const FLASH_PARAMS = new UniformLayout(FLASH_FIELDS);
/** The uniform block and bindings of attention_flash.wgsl (attention.wgsl and attention_broadcast.wgsl spell out the same). */
const FLASH_BINDINGS =
  `struct Params { ${FLASH_FIELDS} }\n` +
  '@group(0) @binding(0) var<uniform> p: Params;\n' +
  '@group(0) @binding(1) var<storage, read> q: array<vec4<A>>;\n' +
  '@group(0) @binding(2) var<storage, read> k: array<vec4<KV>>;\n' +
  '@group(0) @binding(3) var<storage, read> v: array<vec4<KV>>;\n' +
  '@group(0) @binding(4) var<storage, read_write> out: array<vec4<O>>;\n';
const REDUCE_PARAMS = new UniformLayout('splits: u32, max_splits: u32');
const STORE_PARAMS = new UniformLayout('rows: u32, kv_heads: u32, hd4: u32, start: u32, capacity: u32');
const STORE_WG = 256;

/** The attention prelude: A for q, KV for the keys and values read, O for the output, subgroups when needed. */
function attentionPrelude(act: ActDType, kv: KvDType, out: 'f32' | ActDType, subgroups: boolean): string {
  const f16 = act !== 'f16' && (kv === 'f16' || out === 'f16');
  return (f16 ? 'enable f16;\n' : '') + prelude({ act, subgroups }) + `alias KV = ${kv};\nalias O = ${out};\n`;
}

function checkInt(what: string, n: number, min: number): void {
  if (!Number.isInteger(n) || n < min) throw new InputError(`${what} is ${n}; expected an integer ≥ ${min}`);
}

function checkHeads(fn: string, numHeads: number, numKvHeads: number, headDim: number): void {
  checkInt(`${fn}: numHeads`, numHeads, 1);
  checkInt(`${fn}: numKvHeads`, numKvHeads, 1);
  checkInt(`${fn}: headDim`, headDim, 1);
  if (headDim % 4 !== 0 || headDim > 128) throw new InputError(`${fn}: headDim is ${headDim}; expected a multiple of 4 up to 128`);
  if (numHeads % numKvHeads !== 0) throw new InputError(`${fn}: numHeads (${numHeads}) is not a multiple of numKvHeads (${numKvHeads})`);
}

function checkScale(fn: string, scale: number): void {
  if (!Number.isFinite(scale)) throw new InputError(`${fn}: scale is ${scale}; expected a finite number`);
}

/** Allocates a KV cache of `capacity` positions. Its contents are undefined until prefill or decode write them. */
export async function createKvCache(
  device: Device,
  numKvHeads: number,
  capacity: number,
  headDim: number,
  dtype: KvDType = 'f32',
  label = 'kv_cache',
): Promise<KvCache> {
  checkHeads('createKvCache', numKvHeads, numKvHeads, headDim);
  checkInt('createKvCache: capacity', capacity, 1);
  assertDType('createKvCache dtype', dtype, ['f32', 'f16']);
  if (dtype === 'f16' && !device.has('shader-f16')) throw new InputError('createKvCache: an f16 KV cache needs the shader-f16 feature, which this adapter lacks');
  const bytes = numKvHeads * capacity * headDim * (dtype === 'f16' ? 2 : 4);
  const limit = device.limits.maxStorageBufferBindingSize;
  if (bytes > limit) {
    throw new LimitError(`createKvCache: k and v ${dtype}[${numKvHeads}, ${capacity}, ${headDim}] are ${bytes} bytes each, above this device's storage binding limit of ${limit}`);
  }
  const shape = [numKvHeads, capacity, headDim];
  const k = await Tensor.empty(device, dtype, shape, `${label}.k`);
  try {
    return { k, v: await Tensor.empty(device, dtype, shape, `${label}.v`) };
  } catch (e) {
    k.dispose();
    throw e;
  }
}

function checkCache(fn: string, cache: KvCache, numKvHeads: number, headDim: number): [number, KvDType] {
  assertDType(`${fn}: cache.k '${cache.k.label}'`, cache.k.dtype, ['f32', 'f16']);
  assertDType(`${fn}: cache.v '${cache.v.label}'`, cache.v.dtype, [cache.k.dtype]);
  assertShape(`${fn}: cache.k '${cache.k.label}'`, cache.k.shape, [numKvHeads, undefined, headDim]);
  assertShape(`${fn}: cache.v '${cache.v.label}'`, cache.v.shape, cache.k.shape);
  return [cache.k.shape[1], cache.k.dtype as KvDType];
}

/** Checks q [S, hq·d], k and v [S, hkv·d] (and out like q) of one activation dtype; returns S and that dtype. */
function checkQkv(fn: string, g: Graph, t: { q: Tensor; k: Tensor; v: Tensor; out?: Tensor }, hq: number, hkv: number, d: number): [number, ActDType] {
  const { q, k, v, out } = t;
  const s = q.shape.length === 2 ? q.shape[0] : -1;
  assertShape(`${fn}: q '${q.label}'`, q.shape, [s < 0 ? undefined : s, hq * d]);
  if (s < 1) throw new InputError(`${fn}: q '${q.label}' has shape [${q.shape.join(', ')}]; expected [S ≥ 1, ${hq * d}]`);
  assertShape(`${fn}: k '${k.label}'`, k.shape, [s, hkv * d]);
  assertShape(`${fn}: v '${v.label}'`, v.shape, [s, hkv * d]);
  assertDType(`${fn}: q '${q.label}'`, q.dtype, ['f32', 'f16']);
  assertDType(`${fn}: k '${k.label}'`, k.dtype, [q.dtype]);
  assertDType(`${fn}: v '${v.label}'`, v.dtype, [q.dtype]);
  checkActDType(g.device, q.dtype as ActDType, `${fn}: q '${q.label}'`);
  if (out) {
    assertShape(`${fn}: out '${out.label}'`, out.shape, q.shape);
    assertDType(`${fn}: out '${out.label}'`, out.dtype, [q.dtype]);
  }
  return [s, q.dtype as ActDType];
}

function checkPreset(device: Device, name: AttentionPresetName): AttentionPreset {
  const preset: AttentionPreset | undefined = ATTENTION_PRESETS[name];
  if (!preset) throw new InputError(`attention preset '${name}' is unknown; expected one of ${Object.keys(ATTENTION_PRESETS).join(', ')}`);
  if (preset.kind === 'broadcast' && !canBroadcast(device)) throw new InputError(`attention preset '${name}' needs subgroups of at least 8 invocations, which this adapter lacks`);
  if (preset.kind === 'flash' && !(device.has('subgroups') && (device.adapter.subgroupMinSize ?? 0) >= preset.T)) {
    throw new InputError(`attention preset '${name}' needs subgroups of at least ${preset.T} invocations, which this adapter lacks`);
  }
  return preset;
}

/** Records the store of `rows` k, v rows into the cache from position `start` (a number or a function of params). */
function storeKv(g: Graph, k: Tensor, v: Tensor, cache: KvCache, act: ActDType, kv: KvDType, rows: number, start: number | ((p: Params) => number)): void {
  const [hkv, capacity, d] = cache.k.shape;
  const values = (s: number) => ({ rows, kv_heads: hkv, hd4: d / 4, start: s, capacity });
  g.dispatch({
    kernel: { label: `attention_store_${act}a_${kv}kv`, code: attentionPrelude(act, kv, act, false) + STORE_WGSL, constants: { WG: STORE_WG } },
    uniforms: { layout: STORE_PARAMS, values: typeof start === 'number' ? values(start) : (p: Params) => values(start(p)) },
    inputs: [k, v],
    outputs: [cache.k, cache.v],
    workgroups: grid1d(g.device, Math.ceil((rows * hkv * d) / 4 / STORE_WG)),
  });
}

function presetConstants(p: AttentionPreset): Record<string, number> {
  if (p.kind === 'tiled') return { BK: p.BK };
  if (p.kind === 'flash') return { T: p.T, R: p.R, BK: p.BK };
  return { R: p.R };
}

/** One flash dispatch: `segs` segments of `segLen` positions (see attention.wgsl). */
interface FlashRun {
  op: 'prefill' | 'decode' | 'segments';
  preset: AttentionPresetName;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  out: Tensor;
  act: ActDType;
  kv: KvDType;
  kvHeads: number;
  group: number;
  headDim: number;
  causal: boolean;
  scale: number;
  segs: number;
  segLen: number;
  qFirst: number;
  kFirst: number;
  /** Keys per segment (with `split`, split.of gives them per run instead). */
  kvLen: number;
  shift: number;
  /** vec4 strides of k and v: between kv heads and between rows. */
  kHead: number;
  kRow: number;
  /** Flash-decoding: the split of the keys as a function of the params, and the split stride of `out`. */
  split?: { of: (p: Params) => { splits: number; chunk: number; keys: number }; maxSplits: number };
}

function dispatchFlash(g: Graph, r: FlashRun): void {
  const preset = checkPreset(g.device, r.preset);
  const rowsPerTile = preset.kind === 'tiled' ? preset.WG : preset.kind === 'flash' ? (preset.WG / preset.T) * preset.R : preset.WG * preset.R;
  const tiles = Math.ceil((r.segLen * r.group) / rowsPerTile);
  const subgroups = preset.kind !== 'tiled';
  const values = (splits: number, chunk: number, kvLen: number) => ({
    segs: r.segs, seg_len: r.segLen, tiles, kv_heads: r.kvHeads, group: r.group, splits, chunk, q_first: r.qFirst,
    k_first: r.kFirst, kv_len: kvLen, causal: r.causal ? 1 : 0, shift: r.shift, partial: r.split ? 1 : 0,
    max_splits: r.split?.maxSplits ?? 1, q_row: (r.kvHeads * r.group * r.headDim) / 4, k_head: r.kHead, k_row: r.kRow,
    hd4: r.headDim / 4, scale: r.scale * Math.LOG2E,
  });
  const split = r.split;
  const kvTag = r.op === 'segments' ? '' : `_${r.kv}kv`;
  g.dispatch({
    kernel: {
      label: `attention_${r.op}_${r.act}a${kvTag}_${r.preset}_d${r.headDim}`,
      code: attentionPrelude(r.act, r.kv, split ? 'f32' : r.act, subgroups) + { tiled: TILED_WGSL, flash: FLASH_BINDINGS + FLASH_WGSL, broadcast: BROADCAST_WGSL }[preset.kind],
      constants: { WG: preset.WG, HD: r.headDim, ...presetConstants(preset) },
    },
    uniforms: {
      layout: FLASH_PARAMS,
      values: split
        ? (p: Params) => {
            const s = split.of(p);
            return values(s.splits, s.chunk, s.keys);
          }
        : values(1, r.kvLen, r.kvLen),
    },
    inputs: [r.q, r.k, r.v],
    outputs: [r.out],
    workgroups: split ? (p: Params) => grid1d(g.device, split.of(p).splits * tiles * r.kvHeads) : grid1d(g.device, r.segs * tiles * r.kvHeads),
  });
}

export interface PrefillOptions {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Cache position of the first row (earlier chunks already in the cache). */
  start: number;
  /** Default 1/sqrt(headDim). */
  scale?: number;
  out?: Tensor;
  /** Kernel preset; default selectAttentionPreset(). */
  preset?: AttentionPresetName;
}

/**
 * Causal grouped-query prefill. q [S, Hq·D], k/v [S, Hkv·D] (f32, or f16 activations), post-RoPE. Writes the k, v
 * rows into the cache at positions [start, start+S), then out[i] = softmax(q_i·Kᵀ·scale + causal mask)·V over
 * cache positions [0, start+i]. Query head h uses kv head floor(h / (Hq/Hkv)). Returns [S, Hq·D].
 */
export function attentionPrefill(g: Graph, q: Tensor, k: Tensor, v: Tensor, cache: KvCache, opts: PrefillOptions): Tensor {
  const fn = 'attentionPrefill';
  const { numHeads: hq, numKvHeads: hkv, headDim: d, start } = opts;
  checkHeads(fn, hq, hkv, d);
  const [s, act] = checkQkv(fn, g, { q, k, v, out: opts.out }, hq, hkv, d);
  const [capacity, kv] = checkCache(fn, cache, hkv, d);
  checkInt(`${fn}: start`, start, 0);
  if (start + s > capacity) throw new InputError(`${fn}: start ${start} + ${s} rows exceed the cache capacity of ${capacity} positions`);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  checkScale(fn, scale);
  const group = hq / hkv;
  const out = opts.out ?? g.tensor(act, q.shape, 'attention_out');
  storeKv(g, k, v, cache, act, kv, s, start);
  dispatchFlash(g, {
    op: 'prefill', preset: opts.preset ?? selectPrefillAttentionPreset(g.device, d), q, k: cache.k, v: cache.v, out, act, kv,
    kvHeads: hkv, group, headDim: d, causal: true, scale,
    segs: 1, segLen: s, qFirst: 0, kFirst: 0, kvLen: start + s, shift: start, kHead: (capacity * d) / 4, kRow: d / 4,
  });
  return out;
}

export interface DecodeOptions {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Cache position of the new token, read from the run's params; must be below the cache capacity. */
  pos: (p: Params) => number;
  scale?: number;
  out?: Tensor;
  preset?: AttentionPresetName;
}

/**
 * Decode: one new token. q [1, Hq·D], k/v [1, Hkv·D]. Writes k, v at cache position pos(params), then attends over
 * [0, pos]: flash-decoding, the keys split across workgroups (partial max, sum and output per split) and a
 * reduction dispatch; the split count follows pos, so a recorded step is replayed per token. The caller keeps
 * pos below the capacity: Graph.run throws an InputError for a pos outside [0, capacity), and the shaders clamp
 * besides, so no position writes or reads outside the cache. Returns [1, Hq·D].
 */
export function attentionDecode(g: Graph, q: Tensor, k: Tensor, v: Tensor, cache: KvCache, opts: DecodeOptions): Tensor {
  const fn = 'attentionDecode';
  const { numHeads: hq, numKvHeads: hkv, headDim: d } = opts;
  checkHeads(fn, hq, hkv, d);
  const [s, act] = checkQkv(fn, g, { q, k, v, out: opts.out }, hq, hkv, d);
  if (s !== 1) throw new InputError(`${fn}: q '${q.label}' has ${s} rows; expected 1 (attentionPrefill takes more)`);
  const [capacity, kv] = checkCache(fn, cache, hkv, d);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  checkScale(fn, scale);
  const group = hq / hkv;
  const presetName = opts.preset ?? selectAttentionPreset(g.device, d);
  const decodePreset = checkPreset(g.device, presetName);
  if (decodePreset.kind === 'flash') throw new InputError(`${fn}: preset '${presetName}' serves prefill and vision attention only`);
  const { minChunk } = decodePreset;
  const pos = (p: Params): number => {
    const n = opts.pos(p);
    if (!Number.isInteger(n) || n < 0 || n >= capacity) throw new InputError(`${fn}: pos is ${n}; expected an integer in [0, ${capacity}) (the cache capacity)`);
    return n;
  };
  const split = (p: Params) => ({ ...decodeSplits(pos(p) + 1, minChunk), keys: pos(p) + 1 });
  // The split count is not monotone in the key count (16384 keys give 256 splits, 16385 give 253), so the scratch
  // is sized by the target count, which bounds it for every length up to the capacity.
  const maxSplits = Math.min(DECODE_MAX_SPLITS, Math.max(1, Math.ceil(capacity / minChunk)));
  const part = g.tensor('f32', [hq, maxSplits, d / 4 + 1, 4], 'attention_decode_partials');
  const out = opts.out ?? g.tensor(act, q.shape, 'attention_out');
  storeKv(g, k, v, cache, act, kv, 1, pos);
  dispatchFlash(g, {
    op: 'decode', preset: presetName, q, k: cache.k, v: cache.v, out: part, act, kv, kvHeads: hkv, group, headDim: d,
    causal: false, scale, segs: 1, segLen: 1, qFirst: 0, kFirst: 0, kvLen: capacity, shift: 0, kHead: (capacity * d) / 4, kRow: d / 4,
    split: { of: split, maxSplits },
  });
  g.dispatch({
    kernel: { label: `attention_reduce_${act}a_d${d}`, code: prelude({ act }) + REDUCE_WGSL, constants: { HD: d } },
    uniforms: { layout: REDUCE_PARAMS, values: (p) => ({ splits: split(p).splits, max_splits: maxSplits }) },
    inputs: [part],
    outputs: [out],
    workgroups: [hq],
  });
  return out;
}

export interface SegmentsOptions {
  numHeads: number;
  headDim: number;
  scale?: number;
  out?: Tensor;
  preset?: AttentionPresetName;
}

/** Consecutive segments of equal length, as [first offset, length, count]. */
function runsOf(segments: readonly number[]): [number, number, number][] {
  const runs: [number, number, number][] = [];
  for (let i = 0; i + 1 < segments.length; i++) {
    const len = segments[i + 1] - segments[i];
    const last = runs[runs.length - 1];
    if (last && last[1] === len) last[2]++;
    else runs.push([segments[i], len, 1]);
  }
  return runs;
}

/**
 * Vision attention: bidirectional, restricted to segments (each image, or each 2-frame chunk of a video; no
 * attention across segments). q, k, v [S, H·D]. segments: offsets [0, s1, ..., S], strictly ascending.
 * Consecutive segments of equal length share one dispatch (a video is one). Returns [S, H·D].
 */
export function attentionSegments(g: Graph, q: Tensor, k: Tensor, v: Tensor, segments: readonly number[], opts: SegmentsOptions): Tensor {
  const fn = 'attentionSegments';
  const { numHeads: h, headDim: d } = opts;
  checkHeads(fn, h, h, d);
  const [s, act] = checkQkv(fn, g, { q, k, v, out: opts.out }, h, h, d);
  const ok = segments.length >= 2 && segments[0] === 0 && segments[segments.length - 1] === s && segments.every((x, i) => Number.isInteger(x) && (i === 0 || x > segments[i - 1]));
  if (!ok) throw new InputError(`${fn}: segments [${segments.join(', ')}] are not strictly ascending integer offsets from 0 to ${s} (the rows of q)`);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  checkScale(fn, scale);
  const out = opts.out ?? g.tensor(act, q.shape, 'attention_out');
  for (const [first, len, count] of runsOf(segments)) {
    dispatchFlash(g, {
      op: 'segments', preset: opts.preset ?? selectPrefillAttentionPreset(g.device, d), q, k, v, out, act, kv: act, kvHeads: h, group: 1,
      headDim: d, causal: false, scale, segs: count, segLen: len, qFirst: first, kFirst: first, kvLen: len, shift: 0, kHead: d / 4, kRow: (h * d) / 4,
    });
  }
  return out;
}
