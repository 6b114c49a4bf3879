// The uniform blocks and bindings of the attention kernels, declared once here and prepended to their WGSL (style
// habit 13: one source for every layout): the flash kernels (attention.wgsl, attention_flash.wgsl and
// attention_broadcast.wgsl share one), decode (attention_decode.wgsl), the flash-decoding reduction and the
// prefill's KV-cache store. The row fields come from rows.ts.

import { UniformLayout } from '@glm4v/core';
import { ROWS_WGSL } from './rows.js';

const FLASH_FIELDS =
  'segs: u32, seg_len: u32, tiles: u32, kv_heads: u32, group: u32, q_first: u32, k_first: u32, kv_len: u32, causal: u32, ' +
  'shift: u32, q_row: u32, o_row: u32, k_head: u32, k_row: u32, hd4: u32, kv_head0: u32, scale: f32';
export const FLASH_PARAMS = new UniformLayout(FLASH_FIELDS);
const REDUCE_FIELDS = 'count: u32, heads: u32, max_splits: u32, capacity: u32, min_chunk: u32, max_target: u32';
export const REDUCE_PARAMS = new UniformLayout(REDUCE_FIELDS);
const DECODE_SCALARS =
  'kv_heads: u32, group: u32, hd4: u32, qkv_row: u32, k_off: u32, v_off: u32, capacity: u32, slots: u32, min_chunk: u32, ' +
  'max_target: u32, max_splits: u32, rot4: u32, scale: f32, pad0: u32, pad1: u32, pad2: u32';
/** attention_decode.wgsl's uniform block: the scalars, then the rotary frequencies (omega: array<vec4f, 16>). */
export const DECODE_PARAMS = new UniformLayout(
  [DECODE_SCALARS, ...Array.from({ length: 64 }, (_, i) => `w${i}: f32`)].join(', '),
);
const STORE_FIELDS =
  'rows: u32, kv_heads: u32, hd4: u32, start: u32, capacity: u32, slot: u32, src_row: u32, k_off: u32, v_off: u32';
export const STORE_PARAMS = new UniformLayout(STORE_FIELDS);

/**
 * Flash-decoding's split of a row's keys (decodeSplits in attention.ts) and the row's key count (its cache position + 1,
 * clamped to the capacity), shared by the decode and reduce kernels, which read the rows table.
 */
const DECODE_SPLIT_WGSL =
  ROWS_WGSL +
  `fn decode_split(keys: u32, min_chunk: u32, max_target: u32) -> vec2u {
  let goal = min(max_target, max(1u, (keys + min_chunk - 1u) / min_chunk));
  let chunk = (keys + goal - 1u) / goal;
  return vec2u((keys + chunk - 1u) / chunk, chunk);
}
fn row_keys(r: u32, capacity: u32) -> u32 {
  return min(u32(max(rows[r * ROW_FIELDS + ROW_POS], 0)) + 1u, capacity);
}
fn row_slot(r: u32, slots: u32) -> u32 {
  return min(u32(max(rows[r * ROW_FIELDS + ROW_SLOT], 0)), slots - 1u);
}
`;

/** The uniform block, bindings and shared functions of attention.wgsl and attention_broadcast.wgsl. */
export const FLASH_HEADER =
  `struct Params { ${FLASH_FIELDS} }\n` +
  '@group(0) @binding(0) var<uniform> p: Params;\n' +
  '@group(0) @binding(1) var<storage, read> q: array<vec4<A>>;\n' +
  '@group(0) @binding(2) var<storage, read> k: array<vec4<KV>>;\n' +
  '@group(0) @binding(3) var<storage, read> v: array<vec4<KV>>;\n' +
  '@group(0) @binding(4) var<storage, read_write> out: array<vec4<O>>;\n' +
  `// A workgroup's keys: rows [0, kv_len) of k and v from element \`base\`. Uniform per workgroup.
struct Keys { base: u32, kv_len: u32 }
fn keys_of(seg: u32, kvh: u32) -> Keys {
  return Keys((p.kv_head0 + kvh) * p.k_head + (p.k_first + seg * p.seg_len) * p.k_row, p.kv_len);
}
`;

export const REDUCE_HEADER =
  `struct Params { ${REDUCE_FIELDS} }\n` +
  '@group(0) @binding(0) var<uniform> p: Params;\n' +
  '@group(0) @binding(1) var<storage, read> part: array<vec4f>;\n' +
  '@group(0) @binding(2) var<storage, read> rows: array<i32>;\n' +
  '@group(0) @binding(3) var<storage, read_write> out: array<vec4<A>>;\n' +
  DECODE_SPLIT_WGSL;

export const DECODE_HEADER =
  DECODE_SPLIT_WGSL +
  `struct Params { ${DECODE_SCALARS}, omega: array<vec4f, 16> }\n` +
  '@group(0) @binding(0) var<uniform> p: Params;\n' +
  '@group(0) @binding(1) var<storage, read> qkv: array<vec4<A>>;\n' +
  '@group(0) @binding(2) var<storage, read> rows: array<i32>;\n' +
  '@group(0) @binding(3) var<storage, read_write> kc: array<vec4<KV>>;\n' +
  '@group(0) @binding(4) var<storage, read_write> vc: array<vec4<KV>>;\n' +
  '@group(0) @binding(5) var<storage, read_write> part: array<vec4f>;\n' +
  '@group(0) @binding(6) var<storage, read_write> out: array<vec4<A>>;\n';

export const STORE_HEADER =
  `struct Params { ${STORE_FIELDS} }\n` +
  '@group(0) @binding(0) var<uniform> p: Params;\n' +
  '@group(0) @binding(1) var<storage, read> qkv: array<vec4<A>>;\n' +
  '@group(0) @binding(2) var<storage, read_write> kc: array<vec4<KV>>;\n' +
  '@group(0) @binding(3) var<storage, read_write> vc: array<vec4<KV>>;\n';
