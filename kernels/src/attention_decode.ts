// Decode attention: one new token for each sequence of a batch, straight from the fused q|k|v projection, with the
// text RoPE and the KV-cache store in the same dispatch (attention_decode.wgsl), then flash-decoding's combine pass
// (attention_reduce.wgsl) when some row's keys were split.

import { type Device, type Graph, InputError, type Params, type Tensor } from '@glm4v/core';
import DECODE_WGSL from './attention_decode.wgsl.js';
import REDUCE_WGSL from './attention_reduce.wgsl.js';
import SINCOS_WGSL from './sincos.wgsl.js';
import {
  type KvCache,
  attentionPrelude,
  checkCache,
  checkFusedQkv,
  checkHeads,
  checkScale,
  decodeTargets,
  DECODE_MAX_SPLITS,
} from './attention.js';
import { DECODE_HEADER, DECODE_PARAMS, REDUCE_HEADER, REDUCE_PARAMS } from './attention_layout.js';
import { prelude } from './prelude.js';
import { grid1d } from './grid.js';
import { hasSubgroupsOf, isCpuAdapter, minSubgroupSize } from './adapter.js';
import { MAX_ROPE_FREQUENCIES, omegaValues, ropeFrequencies } from './rope.js';
import { checkRows } from './rows.js';

/**
 * The fewest keys per flash-decoding split. A GPU needs many workgroups (one per kv head, split and row) to fill
 * its cores; a CPU has few cores and pays for every split's setup (q in, partial results out): on lavapipe 512
 * beat 256 (more setup) and 1024 (too few workgroups at 1k context).
 */
export function decodeMinChunk(device: Device): number {
  return isCpuAdapter(device) ? 512 : 64;
}

/**
 * Lanes per query head: the largest power of two up to 8 that fits the adapter's smallest subgroup, or 1 without
 * subgroups (then one invocation holds a whole head).
 */
export function decodeLanes(device: Device): number {
  return 2 ** Math.floor(Math.log2(Math.min(8, Math.max(1, minSubgroupSize(device)))));
}

export interface DecodeOptions {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /**
   * i32 [M, ROW_FIELDS] (rows.ts): row r's slot, the cache position its token takes and its rotary position, each
   * slot and position below the cache's slots and capacity; written on the host before each run.
   */
  rows: Tensor;
  /** The most keys any row has in a run (its largest position + 1), from the run's params: sizes the grid. */
  maxKeys: (p: Params) => number;
  /** The text RoPE on q and the new k (the partial rotary dims and theta); none: q and k are used as they are. */
  rope?: { rotaryDim: number; theta: number };
  scale?: number;
  out?: Tensor;
  /** Lanes per query head (a power of two ≤ the smallest subgroup, or 1); default decodeLanes(). */
  lanes?: number;
}

function checkLanes(device: Device, lanes: number): void {
  const ok = Number.isInteger(lanes) && lanes >= 1 && lanes <= 32 && (lanes & (lanes - 1)) === 0;
  if (!ok) throw new InputError(`attentionDecode: lanes is ${lanes}; expected a power of two from 1 to 32`);
  if (lanes > 1 && !hasSubgroupsOf(device, lanes)) {
    throw new InputError(
      `attentionDecode: ${lanes} lanes per head need subgroups of at least ${lanes} invocations, which this adapter lacks`,
    );
  }
}

function checkRope(rope: DecodeOptions['rope'], headDim: number): number {
  if (!rope) return 0;
  const { rotaryDim, theta } = rope;
  if (
    !Number.isInteger(rotaryDim) ||
    rotaryDim < 4 ||
    rotaryDim % 4 !== 0 ||
    rotaryDim > headDim ||
    rotaryDim / 2 > MAX_ROPE_FREQUENCIES
  ) {
    throw new InputError(
      `attentionDecode: rotaryDim ${rotaryDim} must be a multiple of 4 in [4, min(headDim = ${headDim}, ${2 * MAX_ROPE_FREQUENCIES})]`,
    );
  }
  if (!(theta > 0)) throw new InputError(`attentionDecode: theta ${theta} must be positive`);
  return rotaryDim / 4;
}

/** The kernel's generated prefix: lanes per head, vec4s per lane and the team's sum (shuffles, or none). */
function lanesPrefix(lanes: number, headDim: number): string {
  const sum =
    lanes === 1
      ? 'return x;'
      : 'var s = x;\n  for (var o = T / 2u; o > 0u; o >>= 1u) { s += subgroupShuffleXor(s, o); }\n  return s;';
  return `const T = ${lanes}u;\nconst ND = ${Math.ceil(headDim / 4 / lanes)}u;\n/** The sum over the T lanes of a team, in every lane of it. */\nfn team_sum(x: f32) -> f32 {\n  ${sum}\n}\n`;
}

/**
 * Decode: one new token for each of M sequences, each in its own slot of the cache at its own length. qkv
 * [M, (Hq + 2·Hkv)·D]: the rows of the fused q|k|v projection. Row r's q and k are turned by RoPE at its rotary
 * position (with `rope`), its k and v written at position pos_r of slot_r, and it attends over that slot's
 * [0, pos_r]: flash-decoding, each row's keys split across workgroups by its own length (decodeSplits; so a row's
 * result does not depend on the other rows), with a reduction dispatch when some row has more than one split. A
 * recorded step is replayed per token with a new rows table; nothing but the grid depends on the run. Positions
 * past the capacity are clamped by the shader, so nothing writes or reads outside the cache; the caller keeps them
 * inside. Returns [M, Hq·D].
 */
export function attentionDecode(g: Graph, qkv: Tensor, cache: KvCache, opts: DecodeOptions): Tensor {
  const fn = 'attentionDecode';
  const { numHeads: hq, numKvHeads: hkv, headDim: d } = opts;
  checkHeads(fn, hq, hkv, d);
  const [m, act] = checkFusedQkv(fn, g, qkv, opts.out, hq, hkv, d);
  const width = (hq + 2 * hkv) * d;
  checkRows(fn, opts.rows, m);
  const [slots, capacity, kv] = checkCache(fn, cache, hkv, d);
  const scale = opts.scale ?? 1 / Math.sqrt(d);
  checkScale(fn, scale);
  const rot4 = checkRope(opts.rope, d);
  const lanes = opts.lanes ?? decodeLanes(g.device);
  checkLanes(g.device, lanes);
  const out = opts.out ?? g.tensor(act, [m, hq * d], 'attention_out');
  const group = hq / hkv;
  const teams = Math.min(group, Math.max(1, 128 / lanes));
  const chunks = Math.ceil(group / teams);
  const minChunk = decodeMinChunk(g.device);
  // Every row's split count is at most the target count of the longest row (decodeSplits), the grid's size.
  const targets = (p: Params): number => {
    const n = opts.maxKeys(p);
    if (!Number.isInteger(n) || n < 1 || n > capacity)
      throw new InputError(`${fn}: maxKeys is ${n}; expected an integer in [1, ${capacity}] (the cache capacity)`);
    return decodeTargets(n, minChunk);
  };
  // The split count is not monotone in the key count (16384 keys give 256 splits, 16385 give 253), so the scratch
  // is sized by the target count, which bounds it for every length up to the capacity.
  const maxSplits = decodeTargets(capacity, minChunk);
  const part = g.tensor('f32', [m * hq, maxSplits, d / 4 + 1, 4], 'attention_decode_partials');
  const d4 = d / 4;
  const omega = omegaValues(opts.rope ? ropeFrequencies(opts.rope.rotaryDim, opts.rope.theta) : new Float32Array(0));
  g.dispatch({
    kernel: {
      label: `attention_decode_${act}a_${kv}kv_t${lanes}_d${d}`,
      code:
        attentionPrelude(act, kv, act, lanes > 1) + lanesPrefix(lanes, d) + SINCOS_WGSL + DECODE_HEADER + DECODE_WGSL,
      constants: { TEAMS: teams },
    },
    uniforms: {
      layout: DECODE_PARAMS,
      values: {
        kv_heads: hkv,
        group,
        hd4: d4,
        qkv_row: width / 4,
        k_off: hq * d4,
        v_off: (hq + hkv) * d4,
        capacity,
        slots,
        min_chunk: minChunk,
        max_target: DECODE_MAX_SPLITS,
        max_splits: maxSplits,
        rot4,
        scale: scale * Math.LOG2E,
        pad0: 0,
        pad1: 0,
        pad2: 0,
        ...omega,
      },
    },
    inputs: [qkv, opts.rows],
    outputs: [cache.k, cache.v, part, out],
    workgroups: (p: Params) => [hkv * chunks, targets(p), m],
  });
  g.dispatch({
    kernel: {
      label: `attention_reduce_${act}a_d${d}`,
      code: prelude({ act }) + REDUCE_HEADER + REDUCE_WGSL,
      constants: { HD: d },
    },
    uniforms: {
      layout: REDUCE_PARAMS,
      values: {
        count: m * hq,
        heads: hq,
        max_splits: maxSplits,
        capacity,
        min_chunk: minChunk,
        max_target: DECODE_MAX_SPLITS,
      },
    },
    inputs: [part, opts.rows],
    outputs: [out],
    workgroups: (p: Params) => (targets(p) > 1 ? grid1d(g.device, m * hq) : [0]),
  });
  return out;
}
