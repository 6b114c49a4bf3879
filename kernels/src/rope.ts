// Rotary position embeddings (rope.wgsl), in place: the text decoder's partial multimodal RoPE and the vision
// tower's 2-D rotate-half RoPE.

import { type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import ROPE_WGSL from './rope.wgsl.js';
import SINCOS_WGSL from './sincos.wgsl.js';
import { type ActDType, assertDType, assertShape, checkActDType, prelude } from './prelude.js';
import { grid1d } from './grid.js';
import { ROW, ROW_FIELDS, checkRows } from './rows.js';

const WG = 256;
/** Frequencies the uniform block holds (omega: array<vec4f, 16>). */
export const MAX_ROPE_FREQUENCIES = 64;
// 12 scalars (padded), so that omega, an array of vec4f in the WGSL struct, starts 16-byte aligned
const SCALARS =
  'rows: u32, heads: u32, half_dim: u32, pairs: u32, s0: u32, s01: u32, pos_first: u32, pos_stream: u32, pos_row: u32, x_row: u32, pad1: u32, pad2: u32';
const PARAMS = new UniformLayout(
  [SCALARS, ...Array.from({ length: MAX_ROPE_FREQUENCIES }, (_, i) => `w${i}: f32`)].join(', '),
);

/**
 * The reference's f32 inverse frequencies 1 / theta^(2i/dim), i < dim/2, rounded as PyTorch rounds them: the
 * exponent 2i/dim in f32, the power in f32, then the f32 reciprocal. Angles are f32(pos)·ω in f32, so at position
 * 65535 one ulp of ω moves an angle by ~4e-3 rad: ω must be these exact numbers (docs/model.md#m-rope).
 */
export function ropeFrequencies(dim: number, theta: number): Float32Array {
  const f = Math.fround;
  return Float32Array.from({ length: dim / 2 }, (_, i) => f(1 / f(Math.pow(theta, f((2 * i) / dim)))));
}

const PADS = { pad1: 0, pad2: 0 };

export function omegaValues(omega: Float32Array): Record<string, number> {
  const v: Record<string, number> = {};
  for (let i = 0; i < MAX_ROPE_FREQUENCIES; i++) v[`w${i}`] = omega[i] ?? 0;
  return v;
}

function checkX(fn: string, x: Tensor, numHeads: number, headDim: number, width = numHeads * headDim): number {
  assertDType(`${fn} input '${x.label}'`, x.dtype, ['f32', 'f16']);
  checkActDType(x.device, x.dtype as ActDType, fn);
  if (!Number.isInteger(numHeads) || numHeads < 1)
    throw new InputError(`${fn}: numHeads ${numHeads} is not a positive integer`);
  if (!Number.isInteger(width) || width < numHeads * headDim || width % 2 !== 0)
    throw new InputError(`${fn}: rowWidth ${width} is not an even integer ≥ numHeads·headDim = ${numHeads * headDim}`);
  if (x.shape.length !== 2)
    throw new InputError(`${fn} input '${x.label}' has shape [${x.shape.join(', ')}]; expected [S, ${width}]`);
  assertShape(`${fn} input '${x.label}'`, x.shape, [undefined, width]);
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
  /**
   * i32 [3, S] (rows t, h, w); or for a batched decode step, the rows table i32 [S, ROW_FIELDS] (rows.ts), whose
   * ROW.ropePos field is the position on all three streams.
   */
  positions: Tensor | { rows: Tensor };
  /** x's row width when its rows hold more than these heads (the fused q|k|v rows: q and k turn); default numHeads·headDim. */
  rowWidth?: number;
}

/**
 * The text decoder's partial multimodal RoPE, in place on the first numHeads heads of x [S, rowWidth] (f32 or f16): dims [0, rotaryDim)
 * of each head turn as interleaved pairs, y[2j] = x[2j]·cosφ − x[2j+1]·sinφ, y[2j+1] = x[2j+1]·cosφ + x[2j]·sinφ,
 * φ_j = pos_stream(j)·ω_j; pair j takes stream t for j < s0, h for j < s0 + s1, w otherwise.
 * (Glm4vTextRotaryEmbedding + apply_multimodal_rotary_pos_emb; docs/model.md#m-rope)
 */
export function ropeText(g: Graph, x: Tensor, opts: RopeTextOptions): Tensor {
  const { numHeads, headDim, rotaryDim, sections, theta, positions } = opts;
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0)
    throw new InputError(`ropeText: headDim ${headDim} is not a positive even integer`);
  const rows = checkX('ropeText', x, numHeads, headDim, opts.rowWidth);
  if (!Number.isInteger(rotaryDim) || rotaryDim < 2 || rotaryDim % 2 !== 0 || rotaryDim > headDim) {
    throw new InputError(`ropeText: rotaryDim ${rotaryDim} must be an even integer in [2, headDim = ${headDim}]`);
  }
  const pairs = rotaryDim / 2;
  if (pairs > MAX_ROPE_FREQUENCIES)
    throw new InputError(
      `ropeText: rotaryDim ${rotaryDim} has ${pairs} frequencies; at most ${MAX_ROPE_FREQUENCIES} are supported`,
    );
  if (
    sections.length !== 3 ||
    sections.some((s) => !Number.isInteger(s) || s < 0) ||
    sections[0] + sections[1] + sections[2] !== pairs
  ) {
    throw new InputError(
      `ropeText: sections [${sections.join(', ')}] must be 3 non-negative integers summing to rotaryDim / 2 = ${pairs}`,
    );
  }
  if (!(theta > 0)) throw new InputError(`ropeText: theta ${theta} must be positive`);
  const act = x.dtype as ActDType;
  let at = { pos_first: 0, pos_stream: rows, pos_row: 1 };
  let table: Tensor;
  if ('rows' in positions) {
    checkRows('ropeText', positions.rows, rows);
    at = { pos_first: ROW.ropePos, pos_stream: 0, pos_row: ROW_FIELDS };
    table = positions.rows;
  } else {
    assertDType(`ropeText positions '${positions.label}'`, positions.dtype, ['i32']);
    assertShape(`ropeText positions '${positions.label}'`, positions.shape, [3, rows]);
    table = positions;
  }
  const values = {
    rows,
    heads: numHeads,
    half_dim: headDim / 2,
    pairs,
    s0: sections[0],
    s01: sections[0] + sections[1],
    ...at,
    x_row: (opts.rowWidth ?? numHeads * headDim) / 2,
    ...PADS,
    ...omegaValues(ropeFrequencies(rotaryDim, theta)),
  };
  g.dispatch({
    kernel: {
      label: `rope_text_${act}a`,
      code: prelude({ act }) + SINCOS_WGSL + ROPE_WGSL,
      entryPoint: 'text',
      constants: { WG },
    },
    uniforms: { layout: PARAMS, values },
    inputs: [table],
    outputs: [x],
    workgroups: grid1d(g.device, Math.ceil((rows * pairs) / WG)),
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
 * (Glm4vVisionRotaryEmbedding + apply_rotary_pos_emb_vision; docs/model.md#vision-rope)
 */
export function ropeVision(g: Graph, x: Tensor, coords: Tensor, opts: RopeVisionOptions): Tensor {
  const { numHeads, headDim, theta } = opts;
  if (!Number.isInteger(headDim) || headDim < 4 || headDim % 4 !== 0)
    throw new InputError(`ropeVision: headDim ${headDim} must be a positive multiple of 4`);
  if (headDim / 4 > MAX_ROPE_FREQUENCIES)
    throw new InputError(
      `ropeVision: headDim ${headDim} needs ${headDim / 4} frequencies; at most ${MAX_ROPE_FREQUENCIES} are supported`,
    );
  if (!(theta > 0)) throw new InputError(`ropeVision: theta ${theta} must be positive`);
  const rows = checkX('ropeVision', x, numHeads, headDim);
  assertDType(`ropeVision coords '${coords.label}'`, coords.dtype, ['i32']);
  assertShape(`ropeVision coords '${coords.label}'`, coords.shape, [rows, 2]);
  const act = x.dtype as ActDType;
  const pairs = headDim / 4;
  g.dispatch({
    kernel: {
      label: `rope_vision_${act}a`,
      code: prelude({ act }) + SINCOS_WGSL + ROPE_WGSL,
      entryPoint: 'vision',
      constants: { WG },
    },
    uniforms: {
      layout: PARAMS,
      values: {
        rows,
        heads: numHeads,
        half_dim: headDim / 2,
        pairs,
        s0: 0,
        s01: 0,
        pos_first: 0,
        pos_stream: 0,
        pos_row: 2,
        x_row: 0,
        ...PADS,
        ...omegaValues(ropeFrequencies(headDim / 2, theta)),
      },
    },
    inputs: [coords],
    outputs: [x],
    workgroups: grid1d(g.device, Math.ceil((rows * pairs) / WG)),
  });
  return x;
}
