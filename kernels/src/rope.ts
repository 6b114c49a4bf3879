// Rotary position embeddings (rope.wgsl), in place: the text decoder's partial multimodal RoPE and the vision
// tower's 2-D rotate-half RoPE.

import { type Graph, InputError, type Params, type Tensor, UniformLayout } from '@glm4v/core';
import ROPE_WGSL from './rope.wgsl.js';
import { type ActDType, assertDType, assertShape, checkActDType, prelude } from './prelude.js';
import { grid1d } from './grid.js';

const WG = 256;
/** Frequencies the uniform block holds (omega: array<vec4f, 16>). */
export const MAX_ROPE_FREQUENCIES = 64;
const PARAMS = new UniformLayout(
  ['rows: u32, heads: u32, half_dim: u32, pairs: u32, s0: u32, s01: u32, pos: i32, pad: u32', ...Array.from({ length: MAX_ROPE_FREQUENCIES }, (_, i) => `w${i}: f32`)].join(', '),
);

/**
 * The reference's f32 inverse frequencies 1 / theta^(2i/dim), i < dim/2, rounded as PyTorch rounds them: the
 * exponent 2i/dim in f32, the power in f32, then the f32 reciprocal. Angles are f32(pos)·ω in f32, so at position
 * 65535 one ulp of ω moves an angle by ~4e-3 rad: ω must be these exact numbers (spec pitfall 30).
 */
export function ropeFrequencies(dim: number, theta: number): Float32Array {
  const f = Math.fround;
  return Float32Array.from({ length: dim / 2 }, (_, i) => f(1 / f(Math.pow(theta, f((2 * i) / dim)))));
}

function omegaValues(omega: Float32Array): Record<string, number> {
  const v: Record<string, number> = {};
  for (let i = 0; i < MAX_ROPE_FREQUENCIES; i++) v[`w${i}`] = omega[i] ?? 0;
  return v;
}

function checkX(fn: string, x: Tensor, numHeads: number, headDim: number): number {
  assertDType(`${fn} input '${x.label}'`, x.dtype, ['f32', 'f16']);
  checkActDType(x.device, x.dtype as ActDType, fn);
  if (!Number.isInteger(numHeads) || numHeads < 1) throw new InputError(`${fn}: numHeads ${numHeads} is not a positive integer`);
  if (x.shape.length !== 2) throw new InputError(`${fn} input '${x.label}' has shape [${x.shape.join(', ')}]; expected [S, ${numHeads * headDim}]`);
  assertShape(`${fn} input '${x.label}'`, x.shape, [undefined, numHeads * headDim]);
  return x.shape[0];
}

export interface RopeTextOptions {
  numHeads: number;
  headDim: number;
  /** Leading dims of each head that rotate (GLM: headDim · partial_rotary_factor = 64). */
  rotaryDim: number;
  /** Frequency pairs taken from the t, h and w streams; they sum to rotaryDim / 2 (GLM: [8, 12, 12]). */
  sections: readonly [number, number, number];
  theta: number;
  /** i32 [3, S] (rows t, h, w), or for decode (S = 1) a function of the run's params giving the one position. */
  positions: Tensor | ((p: Params) => number);
}

/**
 * The text decoder's partial multimodal RoPE, in place on x [S, numHeads·headDim] (f32 or f16): dims [0, rotaryDim)
 * of each head turn as interleaved pairs, y[2j] = x[2j]·cosφ − x[2j+1]·sinφ, y[2j+1] = x[2j+1]·cosφ + x[2j]·sinφ,
 * φ_j = pos_stream(j)·ω_j; pair j takes stream t for j < s0, h for j < s0 + s1, w otherwise.
 * (Glm4vTextRotaryEmbedding + apply_multimodal_rotary_pos_emb; spec §7.2)
 */
export function ropeText(g: Graph, x: Tensor, opts: RopeTextOptions): Tensor {
  const { numHeads, headDim, rotaryDim, sections, theta, positions } = opts;
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) throw new InputError(`ropeText: headDim ${headDim} is not a positive even integer`);
  const rows = checkX('ropeText', x, numHeads, headDim);
  if (!Number.isInteger(rotaryDim) || rotaryDim < 2 || rotaryDim % 2 !== 0 || rotaryDim > headDim) {
    throw new InputError(`ropeText: rotaryDim ${rotaryDim} must be an even integer in [2, headDim = ${headDim}]`);
  }
  const pairs = rotaryDim / 2;
  if (pairs > MAX_ROPE_FREQUENCIES) throw new InputError(`ropeText: rotaryDim ${rotaryDim} has ${pairs} frequencies; at most ${MAX_ROPE_FREQUENCIES} are supported`);
  if (sections.length !== 3 || sections.some((s) => !Number.isInteger(s) || s < 0) || sections[0] + sections[1] + sections[2] !== pairs) {
    throw new InputError(`ropeText: sections [${sections.join(', ')}] must be 3 non-negative integers summing to rotaryDim / 2 = ${pairs}`);
  }
  if (!(theta > 0)) throw new InputError(`ropeText: theta ${theta} must be positive`);
  const act = x.dtype as ActDType;
  const fixed = { rows, heads: numHeads, half_dim: headDim / 2, pairs, s0: sections[0], s01: sections[0] + sections[1], pad: 0, ...omegaValues(ropeFrequencies(rotaryDim, theta)) };
  const workgroups = grid1d(g.device, Math.ceil((rows * pairs) / WG));
  const code = prelude({ act }) + ROPE_WGSL;
  if (typeof positions === 'function') {
    if (rows !== 1) throw new InputError(`ropeText: a position given by a function of the params needs x with 1 row (decode); '${x.label}' has ${rows}`);
    g.dispatch({
      kernel: { label: `rope_text_param_${act}a`, code, entryPoint: 'text_param', constants: { WG } },
      uniforms: { layout: PARAMS, values: (p: Params) => ({ ...fixed, pos: positions(p) }) },
      outputs: [x],
      workgroups,
    });
    return x;
  }
  assertDType(`ropeText positions '${positions.label}'`, positions.dtype, ['i32']);
  assertShape(`ropeText positions '${positions.label}'`, positions.shape, [3, rows]);
  g.dispatch({
    kernel: { label: `rope_text_${act}a`, code, entryPoint: 'text_tensor', constants: { WG } },
    uniforms: { layout: PARAMS, values: { ...fixed, pos: 0 } },
    inputs: [positions],
    outputs: [x],
    workgroups,
  });
  return x;
}

export interface RopeVisionOptions {
  numHeads: number;
  headDim: number;
  theta: number;
}

/**
 * The vision tower's 2-D RoPE, in place on x [S, numHeads·headDim] (f32 or f16): rotate-half over the whole head,
 * pairs (d, d + headDim/2) for d < headDim/2, angle row·ω_d for d < headDim/4 and col·ω_(d − headDim/4) after,
 * ω_i = theta^(−2i/(headDim/2)). coords: i32 [S, 2] = (row, col) of each patch in its image's patch grid.
 * (Glm4vVisionRotaryEmbedding + apply_rotary_pos_emb_vision; spec §6.4–6.5)
 */
export function ropeVision(g: Graph, x: Tensor, coords: Tensor, opts: RopeVisionOptions): Tensor {
  const { numHeads, headDim, theta } = opts;
  if (!Number.isInteger(headDim) || headDim < 4 || headDim % 4 !== 0) throw new InputError(`ropeVision: headDim ${headDim} must be a positive multiple of 4`);
  if (headDim / 4 > MAX_ROPE_FREQUENCIES) throw new InputError(`ropeVision: headDim ${headDim} needs ${headDim / 4} frequencies; at most ${MAX_ROPE_FREQUENCIES} are supported`);
  if (!(theta > 0)) throw new InputError(`ropeVision: theta ${theta} must be positive`);
  const rows = checkX('ropeVision', x, numHeads, headDim);
  assertDType(`ropeVision coords '${coords.label}'`, coords.dtype, ['i32']);
  assertShape(`ropeVision coords '${coords.label}'`, coords.shape, [rows, 2]);
  const act = x.dtype as ActDType;
  const pairs = headDim / 4;
  g.dispatch({
    kernel: { label: `rope_vision_${act}a`, code: prelude({ act }) + ROPE_WGSL, entryPoint: 'vision', constants: { WG } },
    uniforms: { layout: PARAMS, values: { rows, heads: numHeads, half_dim: headDim / 2, pairs, s0: 0, s01: 0, pos: 0, pad: 0, ...omegaValues(ropeFrequencies(headDim / 2, theta)) } },
    inputs: [coords],
    outputs: [x],
    workgroups: grid1d(g.device, Math.ceil((rows * pairs) / WG)),
  });
  return x;
}
