// Attention: causal grouped-query prefill over a KV cache and segment-restricted bidirectional attention for the
// vision tower (decode: attention_decode.ts). Kernels: attention.wgsl (GPUs: K/V tiles in workgroup memory),
// attention_flash.wgsl (GPUs with subgroups: the same tiles, lanes over the head dim) or attention_broadcast.wgsl
// (CPU adapters: K/V rows shared by subgroup broadcasts), the same work and bindings; attention_store.wgsl (a
// prefill chunk's k, v rows into the cache). All accumulate in f32; the online softmax runs in base 2 with log2(e)
// folded into the scale.

import { type Device, type Graph, InputError, LimitError, Tensor } from '@glm4v/core';
import TILED_WGSL from './attention.wgsl.js';
import FLASH_WGSL from './attention_flash.wgsl.js';
import BROADCAST_WGSL from './attention_broadcast.wgsl.js';
import STORE_WGSL from './attention_store.wgsl.js';
import { type ActDType, assertDType, assertShape, checkActDType, prelude } from './prelude.js';
import { grid1d } from './grid.js';
import { canBroadcast, hasSubgroupsOf, isCpuAdapter } from './adapter.js';
import { FLASH_HEADER, FLASH_PARAMS, STORE_HEADER, STORE_PARAMS } from './attention_layout.js';

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
  | { kind: 'tiled'; WG: number; BK: number }
  | { kind: 'flash'; WG: number; T: number; R: number; BK: number }
  | { kind: 'broadcast'; WG: number; R: number };

/**
 * Prefill and vision presets, named in kernel labels. WG invocations per workgroup, each owning one row (tiled) or
 * R rows (broadcast) of queries; BK keys per workgroup-memory tile (2·BK·headDim·4 bytes: 16 KiB at headDim 128).
 */
export const ATTENTION_PRESETS = {
  /** GPUs without subgroups of ≥ 8 lanes. */
  tiled64x16: { kind: 'tiled', WG: 64, BK: 16 },
  /** GPUs with subgroups of ≥ 8 lanes: 64 rows per workgroup, teams of 8 lanes × 2 rows. */
  flash8x2: { kind: 'flash', WG: 256, T: 8, R: 2, BK: 16 },
  /** CPU adapters, head dim ≤ 64: 8 lanes × 4 rows. */
  bcast8x4: { kind: 'broadcast', WG: 8, R: 4 },
  /** CPU adapters, head dim > 64: 8 lanes × 2 rows (4 rows of 128 spill; see attention_broadcast.wgsl). */
  bcast8x2: { kind: 'broadcast', WG: 8, R: 2 },
} as const satisfies Record<string, AttentionPreset>;
export type AttentionPresetName = keyof typeof ATTENTION_PRESETS;

/**
 * The preset for a head dim: on CPU adapters with subgroups of ≥ 8 lanes, 'bcast8x4' up to head dim 64 and
 * 'bcast8x2' above; elsewhere 'tiled64x16'. It does not depend on the op or the sizes, so prefill and vision
 * attention of one head dim share a pipeline (on lavapipe a head-dim-128 compile takes seconds).
 */
export function selectAttentionPreset(device: Device, headDim: number): AttentionPresetName {
  if (!isCpuAdapter(device) || !canBroadcast(device)) return 'tiled64x16';
  return headDim > 64 ? 'bcast8x2' : 'bcast8x4';
}

/**
 * The preset for prefill and vision attention: 'flash8x2' on GPUs whose subgroups have at least 8 lanes, else
 * selectAttentionPreset's.
 */
export function selectPrefillAttentionPreset(device: Device, headDim: number): AttentionPresetName {
  if (!isCpuAdapter(device) && hasSubgroupsOf(device, ATTENTION_PRESETS.flash8x2.T)) return 'flash8x2';
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
export function decodeTargets(keys: number, minChunk: number): number {
  return Math.min(DECODE_MAX_SPLITS, Math.max(1, Math.ceil(keys / minChunk)));
}

const STORE_WG = 256;

/** The attention prelude: A for q, KV for the keys and values read, O for the output, subgroups when needed. */
export function attentionPrelude(act: ActDType, kv: KvDType, out: 'f32' | ActDType, subgroups: boolean): string {
  const f16 = act !== 'f16' && (kv === 'f16' || out === 'f16');
  return (f16 ? 'enable f16;\n' : '') + prelude({ act, subgroups }) + `alias KV = ${kv};\nalias O = ${out};\n`;
}

export function checkInt(what: string, n: number, min: number): void {
  if (!Number.isInteger(n) || n < min) throw new InputError(`${what} is ${n}; expected an integer ≥ ${min}`);
}

export function checkHeads(fn: string, numHeads: number, numKvHeads: number, headDim: number): void {
  checkInt(`${fn}: numHeads`, numHeads, 1);
  checkInt(`${fn}: numKvHeads`, numKvHeads, 1);
  checkInt(`${fn}: headDim`, headDim, 1);
  if (headDim % 4 !== 0 || headDim > 128)
    throw new InputError(`${fn}: headDim is ${headDim}; expected a multiple of 4 up to 128`);
  if (numHeads % numKvHeads !== 0)
    throw new InputError(`${fn}: numHeads (${numHeads}) is not a multiple of numKvHeads (${numKvHeads})`);
}

export function checkScale(fn: string, scale: number): void {
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
  if (dtype === 'f16' && !device.has('shader-f16'))
    throw new InputError('createKvCache: an f16 KV cache needs the shader-f16 feature, which this adapter lacks');
  const shape = [slots, numKvHeads, capacity, headDim];
  const bytes = slots * numKvHeads * capacity * headDim * (dtype === 'f16' ? 2 : 4);
  const limit = device.limits.maxStorageBufferBindingSize;
  if (bytes > limit) {
    throw new LimitError(
      `createKvCache: k and v ${dtype}[${shape.join(', ')}] (slots, kv heads, capacity, head dim) are ${bytes} bytes each, above this device's storage binding limit of ${limit}`,
    );
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
export function checkCache(fn: string, cache: KvCache, numKvHeads: number, headDim: number): [number, number, KvDType] {
  assertDType(`${fn}: cache.k '${cache.k.label}'`, cache.k.dtype, ['f32', 'f16']);
  assertDType(`${fn}: cache.v '${cache.v.label}'`, cache.v.dtype, [cache.k.dtype]);
  assertShape(`${fn}: cache.k '${cache.k.label}'`, cache.k.shape, [undefined, numKvHeads, undefined, headDim]);
  assertShape(`${fn}: cache.v '${cache.v.label}'`, cache.v.shape, cache.k.shape);
  return [cache.k.shape[0], cache.k.shape[2], cache.k.dtype as KvDType];
}

/** Checks q [S, hq·d], k and v [S, hkv·d] (and out like q) of one activation dtype; returns S and that dtype. */
function checkQkv(
  fn: string,
  g: Graph,
  t: { q: Tensor; k: Tensor; v: Tensor; out?: Tensor },
  hq: number,
  hkv: number,
  d: number,
): [number, ActDType] {
  const { q, k, v, out } = t;
  const s = q.shape.length === 2 ? q.shape[0] : -1;
  assertShape(`${fn}: q '${q.label}'`, q.shape, [s < 0 ? undefined : s, hq * d]);
  if (s < 1)
    throw new InputError(`${fn}: q '${q.label}' has shape [${q.shape.join(', ')}]; expected [S ≥ 1, ${hq * d}]`);
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
  if (!preset)
    throw new InputError(
      `attention preset '${name}' is unknown; expected one of ${Object.keys(ATTENTION_PRESETS).join(', ')}`,
    );
  if (preset.kind === 'broadcast' && !canBroadcast(device))
    throw new InputError(
      `attention preset '${name}' needs subgroups of at least 8 invocations, which this adapter lacks`,
    );
  if (preset.kind === 'flash' && !hasSubgroupsOf(device, preset.T)) {
    throw new InputError(
      `attention preset '${name}' needs subgroups of at least ${preset.T} invocations, which this adapter lacks`,
    );
  }
  return preset;
}

/** Records the store of a prefill chunk's k, v rows (from the fused q|k|v rows) into positions [start, start + S) of `slot`. */
function storeKv(
  g: Graph,
  qkv: Tensor,
  cache: KvCache,
  act: ActDType,
  kv: KvDType,
  hq: number,
  at: { start: number; slot: number },
): void {
  const [, hkv, capacity, d] = cache.k.shape;
  const count = qkv.shape[0];
  const d4 = d / 4;
  g.dispatch({
    kernel: {
      label: `attention_store_${act}a_${kv}kv`,
      code: attentionPrelude(act, kv, act, false) + STORE_HEADER + STORE_WGSL,
      constants: { WG: STORE_WG },
    },
    uniforms: {
      layout: STORE_PARAMS,
      values: {
        rows: count,
        kv_heads: hkv,
        hd4: d4,
        start: at.start,
        capacity,
        slot: at.slot,
        src_row: (hq + 2 * hkv) * d4,
        k_off: hq * d4,
        v_off: (hq + hkv) * d4,
      },
    },
    inputs: [qkv],
    outputs: [cache.k, cache.v],
    workgroups: grid1d(g.device, Math.ceil((count * hkv * d4) / STORE_WG)),
  });
}

function presetConstants(p: AttentionPreset): Record<string, number> {
  if (p.kind === 'tiled') return { BK: p.BK };
  if (p.kind === 'flash') return { T: p.T, R: p.R, BK: p.BK };
  return { R: p.R };
}

/**
 * One flash dispatch (attention.wgsl): `segments.count` segments of `segments.len` query rows each, every segment
 * over its own `segments.keys` keys. Built by the named setups below, prefillRun and visionRun.
 */
interface FlashRun {
  op: 'prefill' | 'segments';
  preset: AttentionPresetName;
  tensors: { q: Tensor; k: Tensor; v: Tensor; out: Tensor };
  dtypes: { act: ActDType; kv: KvDType };
  /** kv heads, query heads per kv head, head dim, and the first kv head read (slot s of a cache: s·kvHeads). */
  heads: { kv: number; group: number; dim: number; kvFirst: number };
  /** Segment s's queries are rows qFirst + s·len + [0, len), its keys rows kFirst + s·len + [0, keys). */
  segments: { count: number; len: number; qFirst: number; kFirst: number; keys: number };
  /** Causal: query i sees keys [0, shift + i] (shift: the keys already cached before this chunk). */
  mask: { causal: boolean; shift: number };
  scale: number;
  /** vec4 strides: between q's rows (q may be the fused q|k|v rows), out's rows, k's and v's heads and rows. */
  strides: { qRow: number; oRow: number; kHead: number; kRow: number };
}

/** Prefill of `rows` rows into cache slot `slot` after `start` cached positions: q from the fused q|k|v rows. */
function prefillRun(
  t: FlashRun['tensors'],
  dtypes: FlashRun['dtypes'],
  o: { hq: number; hkv: number; d: number; rows: number; start: number; slot: number; capacity: number },
): Omit<FlashRun, 'preset' | 'scale'> {
  return {
    op: 'prefill',
    tensors: t,
    dtypes,
    heads: { kv: o.hkv, group: o.hq / o.hkv, dim: o.d, kvFirst: o.slot * o.hkv },
    segments: { count: 1, len: o.rows, qFirst: 0, kFirst: 0, keys: o.start + o.rows },
    mask: { causal: true, shift: o.start },
    strides: {
      qRow: ((o.hq + 2 * o.hkv) * o.d) / 4,
      oRow: (o.hq * o.d) / 4,
      kHead: (o.capacity * o.d) / 4,
      kRow: o.d / 4,
    },
  };
}

/** Vision: `count` bidirectional segments of `len` rows from row `first`; q, k, v [S, H·D], one head group. */
function visionRun(
  t: FlashRun['tensors'],
  act: ActDType,
  o: { h: number; d: number; first: number; len: number; count: number },
): Omit<FlashRun, 'preset' | 'scale'> {
  const row = (o.h * o.d) / 4;
  return {
    op: 'segments',
    tensors: t,
    dtypes: { act, kv: act },
    heads: { kv: o.h, group: 1, dim: o.d, kvFirst: 0 },
    segments: { count: o.count, len: o.len, qFirst: o.first, kFirst: o.first, keys: o.len },
    mask: { causal: false, shift: 0 },
    strides: { qRow: row, oRow: row, kHead: o.d / 4, kRow: row },
  };
}

function dispatchFlash(g: Graph, r: FlashRun): void {
  const preset = checkPreset(g.device, r.preset);
  const rowsPerTile =
    preset.kind === 'tiled'
      ? preset.WG
      : preset.kind === 'flash'
        ? (preset.WG / preset.T) * preset.R
        : preset.WG * preset.R;
  const { heads, segments: seg, strides, tensors } = r;
  const tiles = Math.ceil((seg.len * heads.group) / rowsPerTile);
  const values = {
    segs: seg.count,
    seg_len: seg.len,
    tiles,
    kv_heads: heads.kv,
    group: heads.group,
    q_first: seg.qFirst,
    k_first: seg.kFirst,
    kv_len: seg.keys,
    causal: r.mask.causal ? 1 : 0,
    shift: r.mask.shift,
    q_row: strides.qRow,
    o_row: strides.oRow,
    k_head: strides.kHead,
    k_row: strides.kRow,
    hd4: heads.dim / 4,
    kv_head0: heads.kvFirst,
    scale: r.scale * Math.LOG2E,
  };
  const { act, kv } = r.dtypes;
  const kvTag = r.op === 'segments' ? '' : `_${kv}kv`;
  g.dispatch({
    kernel: {
      label: `attention_${r.op}_${act}a${kvTag}_${r.preset}_d${heads.dim}`,
      code:
        attentionPrelude(act, kv, act, preset.kind !== 'tiled') +
        FLASH_HEADER +
        { tiled: TILED_WGSL, flash: FLASH_WGSL, broadcast: BROADCAST_WGSL }[preset.kind],
      constants: { WG: preset.WG, HD: heads.dim, ...presetConstants(preset) },
    },
    uniforms: { layout: FLASH_PARAMS, values },
    inputs: [tensors.q, tensors.k, tensors.v],
    outputs: [tensors.out],
    workgroups: grid1d(g.device, seg.count * tiles * heads.kv),
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
  /** Kernel preset; default selectPrefillAttentionPreset(). */
  preset?: AttentionPresetName;
}

/** Checks the fused q|k|v rows [S, (hq + 2·hkv)·d] (and out [S, hq·d]) of one activation dtype; returns S and that dtype. */
export function checkFusedQkv(
  fn: string,
  g: Graph,
  qkv: Tensor,
  out: Tensor | undefined,
  hq: number,
  hkv: number,
  d: number,
): [number, ActDType] {
  const width = (hq + 2 * hkv) * d;
  assertDType(`${fn}: qkv '${qkv.label}'`, qkv.dtype, ['f32', 'f16']);
  const act = qkv.dtype as ActDType;
  checkActDType(g.device, act, `${fn}: qkv '${qkv.label}'`);
  const s = qkv.shape.length === 2 ? qkv.shape[0] : 0;
  if (s < 1)
    throw new InputError(`${fn}: qkv '${qkv.label}' has shape [${qkv.shape.join(', ')}]; expected [S ≥ 1, ${width}]`);
  assertShape(`${fn}: qkv '${qkv.label}'`, qkv.shape, [s, width]);
  if (out) {
    assertShape(`${fn}: out '${out.label}'`, out.shape, [s, hq * d]);
    assertDType(`${fn}: out '${out.label}'`, out.dtype, [act]);
  }
  return [s, act];
}

/**
 * Causal grouped-query prefill. qkv [S, (Hq + 2·Hkv)·D]: the rows of the fused q|k|v projection (f32, or f16
 * activations), q and k post-RoPE. Writes the k, v rows into the cache of `slot` at positions [start, start+S),
 * then out[i] = softmax(q_i·Kᵀ·scale + causal mask)·V over that slot's positions [0, start+i]. Query head h uses kv
 * head floor(h / (Hq/Hkv)). Returns [S, Hq·D].
 */
export function attentionPrefill(g: Graph, qkv: Tensor, cache: KvCache, opts: PrefillOptions): Tensor {
  const fn = 'attentionPrefill';
  const { numHeads: hq, numKvHeads: hkv, headDim: d, start } = opts;
  const slot = opts.slot ?? 0;
  checkHeads(fn, hq, hkv, d);
  const [s, act] = checkFusedQkv(fn, g, qkv, opts.out, hq, hkv, d);
  const [slots, capacity, kv] = checkCache(fn, cache, hkv, d);
  checkInt(`${fn}: start`, start, 0);
  checkInt(`${fn}: slot`, slot, 0);
  if (slot >= slots) throw new InputError(`${fn}: slot ${slot} is outside the cache's ${slots} slots`);
  if (start + s > capacity)
    throw new InputError(`${fn}: start ${start} + ${s} rows exceed the cache capacity of ${capacity} positions`);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  checkScale(fn, scale);
  const out = opts.out ?? g.tensor(act, [s, hq * d], 'attention_out');
  storeKv(g, qkv, cache, act, kv, hq, { start, slot });
  dispatchFlash(g, {
    ...prefillRun({ q: qkv, k: cache.k, v: cache.v, out }, { act, kv }, { hq, hkv, d, rows: s, start, slot, capacity }),
    preset: opts.preset ?? selectPrefillAttentionPreset(g.device, d),
    scale,
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
export function attentionSegments(
  g: Graph,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  segments: readonly number[],
  opts: SegmentsOptions,
): Tensor {
  const fn = 'attentionSegments';
  const { numHeads: h, headDim: d } = opts;
  checkHeads(fn, h, h, d);
  const [s, act] = checkQkv(fn, g, { q, k, v, out: opts.out }, h, h, d);
  const ok =
    segments.length >= 2 &&
    segments[0] === 0 &&
    segments[segments.length - 1] === s &&
    segments.every((x, i) => Number.isInteger(x) && (i === 0 || x > segments[i - 1]));
  if (!ok)
    throw new InputError(
      `${fn}: segments [${segments.join(', ')}] are not strictly ascending integer offsets from 0 to ${s} (the rows of q)`,
    );
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  checkScale(fn, scale);
  const out = opts.out ?? g.tensor(act, q.shape, 'attention_out');
  for (const [first, len, count] of runsOf(segments)) {
    dispatchFlash(g, {
      ...visionRun({ q, k, v, out }, act, { h, d, first, len, count }),
      preset: opts.preset ?? selectPrefillAttentionPreset(g.device, d),
      scale,
    });
  }
  return out;
}
