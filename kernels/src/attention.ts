// Attention: causal grouped-query prefill and flash-decoding over a KV cache, and segment-restricted bidirectional
// attention for the vision tower. Kernels: attention.wgsl (GPUs: K/V tiles in workgroup memory),
// attention_flash.wgsl (GPUs with subgroups, prefill and vision: the same tiles, lanes over the head dim) or
// attention_broadcast.wgsl (CPU adapters: K/V rows shared by subgroup broadcasts), the same work and bindings;
// attention_store.wgsl (new k, v rows into the cache); attention_reduce.wgsl (flash-decoding's combine pass).
// All accumulate in f32; the online softmax runs in base 2 with log2(e) folded into the scale.

import { type Device, type Graph, InputError, LimitError, type Params, Tensor } from '@glm4v/core';
import TILED_WGSL from './attention.wgsl.js';
import FLASH_WGSL from './attention_flash.wgsl.js';
import BROADCAST_WGSL from './attention_broadcast.wgsl.js';
import REDUCE_WGSL from './attention_reduce.wgsl.js';
import STORE_WGSL from './attention_store.wgsl.js';
import { type ActDType, assertDType, assertShape, checkActDType, prelude } from './prelude.js';
import { grid1d } from './grid.js';
import { canBroadcast, isCpuAdapter } from './matmul.js';
import { checkRows } from './rows.js';
import { FLASH_HEADER, FLASH_PARAMS, REDUCE_HEADER, REDUCE_PARAMS, STORE_HEADER, STORE_PARAMS } from './attention_layout.js';

/**
 * Per-layer KV cache: k and v each [slots, numKvHeads, capacity, headDim], f32 (exact path) or f16 (needs
 * shader-f16): one cache per slot, for as many sequences (a batch decodes several slots in one step, each to its
 * own length). Keys are stored post-RoPE. Owned by the caller (a session or a pool of them).
 */
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

/**
 * Flash-decoding's split of `keys` keys: at least minChunk keys per split, at most DECODE_MAX_SPLITS splits
 * (decode_split in the shaders, which split each row by its own key count).
 */
export const DECODE_MAX_SPLITS = 256;
export function decodeSplits(keys: number, minChunk: number): { splits: number; chunk: number } {
  const chunk = Math.ceil(keys / decodeTargets(keys, minChunk));
  return { splits: Math.ceil(keys / chunk), chunk };
}

/** The split count decodeSplits aims at: monotone in `keys`, and never below the count it gives. */
function decodeTargets(keys: number, minChunk: number): number {
  return Math.min(DECODE_MAX_SPLITS, Math.max(1, Math.ceil(keys / minChunk)));
}

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

/**
 * Allocates a KV cache of `capacity` positions for each of `slots` sequences. Its contents are undefined until
 * prefill or decode write them.
 */
export async function createKvCache(
  device: Device,
  numKvHeads: number,
  capacity: number,
  headDim: number,
  dtype: KvDType = 'f32',
  label = 'kv_cache',
  slots = 1,
): Promise<KvCache> {
  checkHeads('createKvCache', numKvHeads, numKvHeads, headDim);
  checkInt('createKvCache: capacity', capacity, 1);
  checkInt('createKvCache: slots', slots, 1);
  assertDType('createKvCache dtype', dtype, ['f32', 'f16']);
  if (dtype === 'f16' && !device.has('shader-f16')) throw new InputError('createKvCache: an f16 KV cache needs the shader-f16 feature, which this adapter lacks');
  const shape = [slots, numKvHeads, capacity, headDim];
  const bytes = slots * numKvHeads * capacity * headDim * (dtype === 'f16' ? 2 : 4);
  const limit = device.limits.maxStorageBufferBindingSize;
  if (bytes > limit) {
    throw new LimitError(`createKvCache: k and v ${dtype}[${shape.join(', ')}] (slots, kv heads, capacity, head dim) are ${bytes} bytes each, above this device's storage binding limit of ${limit}`);
  }
  const k = await Tensor.empty(device, dtype, shape, `${label}.k`);
  try {
    return { k, v: await Tensor.empty(device, dtype, shape, `${label}.v`) };
  } catch (e) {
    k.dispose();
    throw e;
  }
}

/** Checks a cache's dtypes and shape; returns its slots, capacity and dtype. */
function checkCache(fn: string, cache: KvCache, numKvHeads: number, headDim: number): [number, number, KvDType] {
  assertDType(`${fn}: cache.k '${cache.k.label}'`, cache.k.dtype, ['f32', 'f16']);
  assertDType(`${fn}: cache.v '${cache.v.label}'`, cache.v.dtype, [cache.k.dtype]);
  assertShape(`${fn}: cache.k '${cache.k.label}'`, cache.k.shape, [undefined, numKvHeads, undefined, headDim]);
  assertShape(`${fn}: cache.v '${cache.v.label}'`, cache.v.shape, cache.k.shape);
  return [cache.k.shape[0], cache.k.shape[2], cache.k.dtype as KvDType];
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

/** A one-word stand-in for the rows table, bound by dispatches that do not read it (the kernels name it either way). */
function noRows(g: Graph): Tensor {
  return g.tensor('i32', [1], 'attention_no_rows');
}

/**
 * Records the store of `count` k, v rows into the cache: at positions [start, start + count) of `slot`, or with a
 * rows table, row r at its own slot and position.
 */
function storeKv(g: Graph, k: Tensor, v: Tensor, cache: KvCache, act: ActDType, kv: KvDType, count: number, at: { start: number; slot: number } | { rows: Tensor }): void {
  const [slots, hkv, capacity, d] = cache.k.shape;
  const ragged = 'rows' in at;
  g.dispatch({
    kernel: { label: `attention_store_${act}a_${kv}kv`, code: attentionPrelude(act, kv, act, false) + STORE_HEADER + STORE_WGSL, constants: { WG: STORE_WG } },
    uniforms: {
      layout: STORE_PARAMS,
      values: { rows: count, kv_heads: hkv, hd4: d / 4, start: ragged ? 0 : at.start, capacity, slot: ragged ? 0 : at.slot, slots, ragged: ragged ? 1 : 0 },
    },
    inputs: [k, v, ragged ? at.rows : noRows(g)],
    outputs: [cache.k, cache.v],
    workgroups: grid1d(g.device, Math.ceil((count * hkv * d) / 4 / STORE_WG)),
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
  /** Keys per segment; flash-decoding: the cache capacity, which bounds each row's keys. */
  kvLen: number;
  shift: number;
  /** vec4 strides of k and v: between kv heads and between rows. */
  kHead: number;
  kRow: number;
  /** The first kv head read (a prefill into slot s reads heads s·kvHeads onwards). */
  kvHead0: number;
  /**
   * Flash-decoding over ragged rows: segment r is row r of `rows` (its slot and key count), its keys split as
   * decodeSplits says for its own count; `targets` bounds every row's split count for a run (sizes the grid);
   * `maxSplits` is the split stride of `out`.
   */
  decode?: { rows: Tensor; slots: number; minChunk: number; maxSplits: number; targets: (p: Params) => number };
}

function dispatchFlash(g: Graph, r: FlashRun): void {
  const preset = checkPreset(g.device, r.preset);
  const rowsPerTile = preset.kind === 'tiled' ? preset.WG : preset.kind === 'flash' ? (preset.WG / preset.T) * preset.R : preset.WG * preset.R;
  const tiles = Math.ceil((r.segLen * r.group) / rowsPerTile);
  const subgroups = preset.kind !== 'tiled';
  const dec = r.decode;
  const values = (splits: number) => ({
    segs: r.segs, seg_len: r.segLen, tiles, kv_heads: r.kvHeads, group: r.group, splits, chunk: r.kvLen, q_first: r.qFirst,
    k_first: r.kFirst, kv_len: r.kvLen, causal: r.causal ? 1 : 0, shift: r.shift, partial: dec ? 1 : 0,
    max_splits: dec?.maxSplits ?? 1, q_row: (r.kvHeads * r.group * r.headDim) / 4, k_head: r.kHead, k_row: r.kRow,
    hd4: r.headDim / 4, kv_head0: r.kvHead0, slots: dec?.slots ?? 1, min_chunk: dec?.minChunk ?? 1, max_target: DECODE_MAX_SPLITS,
    scale: r.scale * Math.LOG2E,
  });
  const kvTag = r.op === 'segments' ? '' : `_${r.kv}kv`;
  g.dispatch({
    kernel: {
      label: `attention_${r.op}_${r.act}a${kvTag}_${r.preset}_d${r.headDim}`,
      code: attentionPrelude(r.act, r.kv, dec ? 'f32' : r.act, subgroups) + FLASH_HEADER + { tiled: TILED_WGSL, flash: FLASH_WGSL, broadcast: BROADCAST_WGSL }[preset.kind],
      constants: { WG: preset.WG, HD: r.headDim, ...presetConstants(preset) },
    },
    uniforms: { layout: FLASH_PARAMS, values: dec ? (p: Params) => values(dec.targets(p)) : values(1) },
    inputs: [r.q, r.k, r.v, dec ? dec.rows : noRows(g)],
    outputs: [r.out],
    workgroups: dec ? (p: Params) => grid1d(g.device, r.segs * dec.targets(p) * tiles * r.kvHeads) : grid1d(g.device, r.segs * tiles * r.kvHeads),
  });
}

export interface PrefillOptions {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Cache position of the first row (earlier chunks already in the cache). */
  start: number;
  /** The cache slot written and read (default 0). */
  slot?: number;
  /** Default 1/sqrt(headDim). */
  scale?: number;
  out?: Tensor;
  /** Kernel preset; default selectAttentionPreset(). */
  preset?: AttentionPresetName;
}

/**
 * Causal grouped-query prefill. q [S, Hq·D], k/v [S, Hkv·D] (f32, or f16 activations), post-RoPE. Writes the k, v
 * rows into the cache of `slot` at positions [start, start+S), then out[i] = softmax(q_i·Kᵀ·scale + causal
 * mask)·V over that slot's positions [0, start+i]. Query head h uses kv head floor(h / (Hq/Hkv)). Returns [S, Hq·D].
 */
export function attentionPrefill(g: Graph, q: Tensor, k: Tensor, v: Tensor, cache: KvCache, opts: PrefillOptions): Tensor {
  const fn = 'attentionPrefill';
  const { numHeads: hq, numKvHeads: hkv, headDim: d, start } = opts;
  const slot = opts.slot ?? 0;
  checkHeads(fn, hq, hkv, d);
  const [s, act] = checkQkv(fn, g, { q, k, v, out: opts.out }, hq, hkv, d);
  const [slots, capacity, kv] = checkCache(fn, cache, hkv, d);
  checkInt(`${fn}: start`, start, 0);
  checkInt(`${fn}: slot`, slot, 0);
  if (slot >= slots) throw new InputError(`${fn}: slot ${slot} is outside the cache's ${slots} slots`);
  if (start + s > capacity) throw new InputError(`${fn}: start ${start} + ${s} rows exceed the cache capacity of ${capacity} positions`);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  checkScale(fn, scale);
  const group = hq / hkv;
  const out = opts.out ?? g.tensor(act, q.shape, 'attention_out');
  storeKv(g, k, v, cache, act, kv, s, { start, slot });
  dispatchFlash(g, {
    op: 'prefill', preset: opts.preset ?? selectPrefillAttentionPreset(g.device, d), q, k: cache.k, v: cache.v, out, act, kv,
    kvHeads: hkv, group, headDim: d, causal: true, scale, segs: 1, segLen: s, qFirst: 0, kFirst: 0, kvLen: start + s,
    shift: start, kHead: (capacity * d) / 4, kRow: d / 4, kvHead0: slot * hkv,
  });
  return out;
}

export interface DecodeOptions {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /**
   * i32 [M, ROW_FIELDS] (rows.ts): row r's slot and the cache position its token takes (ROW.slot, ROW.pos), each
   * below the cache's slots and capacity; written on the host before each run.
   */
  rows: Tensor;
  /** The most keys any row has in a run (its largest position + 1), from the run's params: sizes the grid. */
  maxKeys: (p: Params) => number;
  scale?: number;
  out?: Tensor;
  preset?: AttentionPresetName;
}

/**
 * Decode: one new token for each of M sequences, each in its own slot of the cache at its own length. q [M, Hq·D],
 * k/v [M, Hkv·D]. Row r writes its k, v at position pos_r of slot_r, then attends over that slot's [0, pos_r]:
 * flash-decoding, each row's keys split across workgroups by its own length (decodeSplits; so a row's result does
 * not depend on the other rows) with partial max, sum and output per split, and a reduction dispatch. A recorded
 * step is replayed per token with a new rows table. Positions past the capacity are clamped by the shaders, so
 * nothing writes or reads outside the cache; the caller keeps them inside. Returns [M, Hq·D].
 */
export function attentionDecode(g: Graph, q: Tensor, k: Tensor, v: Tensor, cache: KvCache, opts: DecodeOptions): Tensor {
  const fn = 'attentionDecode';
  const { numHeads: hq, numKvHeads: hkv, headDim: d } = opts;
  checkHeads(fn, hq, hkv, d);
  const [m, act] = checkQkv(fn, g, { q, k, v, out: opts.out }, hq, hkv, d);
  checkRows(fn, opts.rows, m);
  const [slots, capacity, kv] = checkCache(fn, cache, hkv, d);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  checkScale(fn, scale);
  const group = hq / hkv;
  const presetName = opts.preset ?? selectAttentionPreset(g.device, d);
  const decodePreset = checkPreset(g.device, presetName);
  if (decodePreset.kind === 'flash') throw new InputError(`${fn}: preset '${presetName}' serves prefill and vision attention only`);
  const { minChunk } = decodePreset;
  // Every row's split count is at most the target count of the longest row (decodeSplits), the grid's size.
  const targets = (p: Params): number => {
    const n = opts.maxKeys(p);
    if (!Number.isInteger(n) || n < 1 || n > capacity) throw new InputError(`${fn}: maxKeys is ${n}; expected an integer in [1, ${capacity}] (the cache capacity)`);
    return decodeTargets(n, minChunk);
  };
  // The split count is not monotone in the key count (16384 keys give 256 splits, 16385 give 253), so the scratch
  // is sized by the target count, which bounds it for every length up to the capacity.
  const maxSplits = decodeTargets(capacity, minChunk);
  const part = g.tensor('f32', [m * hq, maxSplits, d / 4 + 1, 4], 'attention_decode_partials');
  const out = opts.out ?? g.tensor(act, q.shape, 'attention_out');
  storeKv(g, k, v, cache, act, kv, m, { rows: opts.rows });
  dispatchFlash(g, {
    op: 'decode', preset: presetName, q, k: cache.k, v: cache.v, out: part, act, kv, kvHeads: hkv, group, headDim: d,
    causal: false, scale, segs: m, segLen: 1, qFirst: 0, kFirst: 0, kvLen: capacity, shift: 0, kHead: (capacity * d) / 4, kRow: d / 4,
    kvHead0: 0, decode: { rows: opts.rows, slots, minChunk, maxSplits, targets },
  });
  g.dispatch({
    kernel: { label: `attention_reduce_${act}a_d${d}`, code: prelude({ act }) + REDUCE_HEADER + REDUCE_WGSL, constants: { HD: d } },
    uniforms: { layout: REDUCE_PARAMS, values: { count: m * hq, heads: hq, max_splits: maxSplits, capacity, min_chunk: minChunk, max_target: DECODE_MAX_SPLITS } },
    inputs: [part, opts.rows],
    outputs: [out],
    workgroups: grid1d(g.device, m * hq),
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
      headDim: d, causal: false, scale, segs: count, segLen: len, qFirst: first, kFirst: first, kvLen: len, shift: 0, kHead: d / 4, kRow: (h * d) / 4, kvHead0: 0,
    });
  }
  return out;
}
