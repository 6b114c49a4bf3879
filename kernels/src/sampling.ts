// Token selection on the GPU (argmax.wgsl, sampling.wgsl, presence.wgsl): greedy argmax, and one token drawn
// from logits [1, V] with HF transformers' processors in their order: repetition penalty → temperature →
// top-k → top-p → softmax → draw. A decode step records this once and replays it; only the u32 token id it
// writes needs to come back to the host.
//
// Contract (what the tests check against a float64 reference):
// - Scores s = logit, then ÷penalty (s > 0) or ×penalty (s ≤ 0) for ids in the presence table, then ÷temperature,
//   each rounded to f32 as stored. Everything after is f32 on the GPU.
// - Greedy (temperature 0 or topK 1): argmax of the penalised logits, ties to the smallest index.
// - Top-k keeps exactly k tokens: ties at the k-th score go to the smaller index (HF keeps every token tied with
//   the k-th; the two differ only when the k-th and (k+1)-th scores are bit-identical).
// - Top-p keeps tokens in order of (score desc, index asc) while the mass of those before them is < topP of the
//   normaliser (at least one): the top-k mass when top-k is on, else Σexp over all V tokens (computed exactly
//   in a reduction pass, so every probability is exact). With top-k off the nucleus is searched among the top
//   SAMPLING_LIMITS.topPCandidates (1024) tokens; if reaching topP needs more, the nucleus is those 1024,
//   renormalised. That binds only for near-flat distributions (a peaked LLM distribution at topP ≤ 0.95 needs
//   far fewer tokens); the tests pin the behaviour down.
// - Greedy ignores temperature (as HF with do_sample=False) but applies the penalty.
// - The draw: u = samplerUniform(seed, step) ∈ [0, 1); the token is the first, in the order above (or, with
//   neither top-k nor top-p, in index order over all V), whose cumulative weight exceeds u · Σ kept weights.
// - The sampled token's presence bit is set, so the next replay penalises it.

import { type Device, type Graph, InputError, LimitError, type Params, Tensor, UniformLayout, type Workgroups } from '@glm4v/core';
import ARGMAX_WGSL from './argmax.wgsl.js';
import SAMPLING_WGSL from './sampling.wgsl.js';
import PRESENCE_WGSL from './presence.wgsl.js';
import { assertDType, assertShape } from './prelude.js';
import { grid1d } from './grid.js';

export interface SamplingOptions {
  /** 0 (or topK === 1) → greedy argmax. */
  temperature: number;
  /** 0 = disabled (as is topK ≥ V). At most SAMPLING_LIMITS.maxTopK otherwise. */
  topK: number;
  /** 1 = disabled; in (0, 1]. */
  topP: number;
  /** 1 = disabled; HF semantics: for each id present in the history, logit > 0 → logit / p, else logit · p. */
  repetitionPenalty: number;
  /** u32 seed; the random number of a step is philox2x32-10 of (step, 0) under key seed. */
  seed: number;
}

/** Per-session state on the GPU: the presence table of V bits (u32 [ceil(V/32)]) that repetition penalty reads. */
export interface SamplerState {
  presence: Tensor;
  vocabSize: number;
}

export const SAMPLING_LIMITS = Object.freeze({
  /** Largest top-k the candidate buffer holds. */
  maxTopK: 1024,
  /** Tokens among which the top-p nucleus is searched when top-k is off. */
  topPCandidates: 1024,
});

const PARAMS = new UniformLayout('n: u32, nb: u32, want: u32, top_k: u32, top_p: f32, temp: f32, penalty: f32, seed: u32, step: u32, word: u32, shift: u32, bits: u32');
const ARGMAX_PARAMS = new UniformLayout('rows: u32, cols: u32, nb: u32, penalty: f32');
const MARK_PARAMS = new UniformLayout('count: u32, vocab: u32');
const WG = 256;
const CTL_WORDS = 16 + 2048; // state words + histogram, then the candidate pairs

export async function createSamplerState(device: Device, vocabSize: number): Promise<SamplerState> {
  if (!Number.isInteger(vocabSize) || vocabSize < 1) throw new InputError(`createSamplerState: vocabSize is ${vocabSize}; expected a positive integer`);
  const presence = await Tensor.empty(device, 'u32', [Math.ceil(vocabSize / 32)], 'sampler_presence');
  presence.writeBytes(new Uint8Array(presence.byteSize));
  return { presence, vocabSize };
}

/** Forgets every seen token (a new session on the same state). */
export function resetSamplerState(state: SamplerState): void {
  state.presence.writeBytes(new Uint8Array(state.presence.byteSize));
}

/** Marks token ids as seen (e.g. the prompt): sets presence[id] for every element of ids (i32/u32); ids ∉ [0, V) are ignored. */
export function markPresent(g: Graph, state: SamplerState, ids: Tensor): void {
  assertDType(`markPresent ids '${ids.label}'`, ids.dtype, ['i32', 'u32']);
  if (ids.numel === 0) return;
  const wg = 64;
  g.dispatch({
    kernel: { label: 'sampling_mark_present', code: PRESENCE_WGSL, constants: { WG: wg } },
    uniforms: { layout: MARK_PARAMS, values: { count: ids.numel, vocab: state.vocabSize } },
    inputs: [ids],
    outputs: [state.presence],
    workgroups: grid1d(g.device, Math.ceil(ids.numel / wg)),
  });
}

/** Greedy: index of the largest logit of each row, logits [rows, V] (f32) → u32 [rows]; ties → smallest index; NaNs skipped (an all-NaN row → 0); rows ≤ 65535. */
export function argmax(g: Graph, logits: Tensor, out?: Tensor): Tensor {
  assertDType(`argmax logits '${logits.label}'`, logits.dtype, ['f32']);
  const cols = logits.shape[logits.shape.length - 1] ?? 0;
  if (cols < 1) throw new InputError(`argmax logits '${logits.label}' has shape [${logits.shape.join(', ')}]; expected a non-empty last dimension`);
  const rows = logits.numel / cols;
  const y = out ?? g.tensor('u32', [rows], 'argmax_out');
  assertDType(`argmax output '${y.label}'`, y.dtype, ['u32']);
  assertShape(`argmax output '${y.label}'`, y.shape, [rows]);
  if (rows > 0) recordArgmax(g, logits, rows, cols, y);
  return y;
}

/** Block and finish dispatches; with `greedy`, one row penalised on the fly and the winner marked present. */
function recordArgmax(g: Graph, x: Tensor, rows: number, cols: number, y: Tensor, greedy?: { state: SamplerState; penalty: number }): void {
  const per = elementsPerInvocation(cols);
  const nb = Math.ceil(cols / (WG * per));
  const part = g.tensor('u32', [2 * rows * nb], 'argmax_partials');
  // The kernel names the presence binding either way; plain argmax binds a placeholder it never touches.
  const presence = greedy ? greedy.state.presence : g.tensor('u32', [1], 'argmax_no_presence');
  const common = {
    uniforms: { layout: ARGMAX_PARAMS, values: { rows, cols, nb, penalty: greedy?.penalty ?? 1 } },
    inputs: [x],
    outputs: [part, y, presence],
  };
  const direct = nb === 1 ? 1 : 0;
  const penalised = greedy ? 1 : 0;
  const first = greedy ? 'block_penalised' : 'block';
  g.dispatch({
    ...common,
    kernel: { label: `argmax_${first}${direct ? '_direct' : ''}`, code: ARGMAX_WGSL, entryPoint: 'block', constants: { WG, PER: per, DIRECT: direct, PENALISED: penalised } },
    workgroups: [nb, rows],
  });
  if (nb === 1) return;
  const last = greedy ? 'finish_mark' : 'finish';
  g.dispatch({ ...common, kernel: { label: `argmax_${last}`, code: ARGMAX_WGSL, entryPoint: 'finish', constants: { WG, PENALISED: penalised } }, workgroups: grid1d(g.device, rows) });
}

interface Plan {
  mode: 'greedy' | 'top' | 'full';
  /** Tokens ranked and kept before top-p (top-k, or the top-p candidate count). */
  want: number;
  /** Candidate buffer size, a power of two ≥ 2·want. */
  cap: number;
  topK: number;
}

function checkOptions(o: SamplingOptions, vocab: number): Plan {
  const bad = (name: string, v: number, expected: string) => new InputError(`sample: ${name} is ${v}; expected ${expected}`);
  if (!Number.isFinite(o.temperature) || o.temperature < 0) throw bad('temperature', o.temperature, 'a finite number ≥ 0');
  if (!Number.isInteger(o.topK) || o.topK < 0) throw bad('topK', o.topK, 'an integer ≥ 0');
  if (!(o.topP > 0 && o.topP <= 1)) throw bad('topP', o.topP, 'a number in (0, 1]');
  if (!Number.isFinite(o.repetitionPenalty) || o.repetitionPenalty <= 0) throw bad('repetitionPenalty', o.repetitionPenalty, 'a finite number > 0');
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed >= 2 ** 32) throw bad('seed', o.seed, 'an integer in [0, 2^32)');
  if (o.temperature === 0 || o.topK === 1) return { mode: 'greedy', want: 1, cap: 0, topK: 1 };
  const topK = o.topK >= vocab ? 0 : o.topK; // HF: top_k = min(top_k, V); keeping all is no restriction
  if (topK > SAMPLING_LIMITS.maxTopK) throw new LimitError(`sample: topK ${topK} is above the sampler's limit of ${SAMPLING_LIMITS.maxTopK} (vocabulary ${vocab})`);
  if (topK === 0 && o.topP === 1) return { mode: 'full', want: 0, cap: 0, topK: 0 };
  const want = topK > 0 ? topK : Math.min(SAMPLING_LIMITS.topPCandidates, vocab);
  return { mode: 'top', want, cap: Math.max(256, 2 ** Math.ceil(Math.log2(2 * want))), topK };
}

/**
 * The radix digits of the 64-bit composite key (order key of the score, ~index), most significant first. Index
 * digits stop once ≤ 7 index bits are left: the boundary bin then holds ≤ 128 tokens, and want − 1 + 128 ≤ CAP
 * (CAP ≥ max(256, 2·want)), so the select is done and the gather fits; the rank sort settles the rest.
 */
function digits(vocab: number): { word: number; shift: number; bits: number }[] {
  const d = [
    { word: 0, shift: 21, bits: 11 },
    { word: 0, shift: 10, bits: 11 },
    { word: 0, shift: 0, bits: 10 },
  ];
  const ib = (vocab - 1).toString(2).length; // index bits; higher bits of ~index are all 1 for every token
  for (let hi = ib; hi > 7; hi -= 11) d.push({ word: 1, shift: Math.max(0, hi - 11), bits: hi - Math.max(0, hi - 11) });
  return d;
}

/**
 * One token from logits [1, V] (f32) with the options; `step` maps the graph params to the draw's counter so
 * replays draw fresh numbers. Returns u32 [1] and marks the token in state.presence. Options are fixed here.
 */
export function sample(g: Graph, logits: Tensor, state: SamplerState, opts: SamplingOptions, step: (p: Params) => number, out?: Tensor): Tensor {
  const V = state.vocabSize;
  assertDType(`sample logits '${logits.label}'`, logits.dtype, ['f32']);
  if (logits.numel !== V || logits.shape[logits.shape.length - 1] !== V) {
    throw new InputError(`sample logits '${logits.label}' has shape [${logits.shape.join(', ')}]; expected [1, ${V}] (the sampler state's vocabulary)`);
  }
  const plan = checkOptions(opts, V);
  const y = out ?? g.tensor('u32', [1], 'sampled_token');
  assertDType(`sample output '${y.label}'`, y.dtype, ['u32']);
  assertShape(`sample output '${y.label}'`, y.shape, [1]);
  if (plan.mode === 'greedy') {
    recordArgmax(g, logits, 1, V, y, { state, penalty: opts.repetitionPenalty });
    return y;
  }
  const per = elementsPerInvocation(V);
  const nb = Math.ceil(V / (WG * per));
  const scores = g.tensor('f32', [1, V], 'sampling_scores');
  const stats = g.tensor('f32', [2 * nb], 'sampling_stats');
  const ctl = g.tensor('u32', [CTL_WORDS + 2 * plan.cap], 'sampling_ctl');
  const base = {
    n: V, nb, want: plan.want, top_k: plan.topK, top_p: opts.topP, temp: opts.temperature,
    penalty: opts.repetitionPenalty, seed: opts.seed, step: 0, word: 0, shift: 0, bits: 0,
  };
  const stage = (entry: string, workgroups: Workgroups, constants: Record<string, number>, values: DispatchValues, tag = '') =>
    g.dispatch({
      kernel: { label: `sampling_${entry}${tag}`, code: SAMPLING_WGSL, entryPoint: entry, constants: { WG, PER: per, ...constants } },
      uniforms: { layout: PARAMS, values },
      inputs: [logits],
      outputs: [state.presence, scores, stats, ctl, y],
      workgroups,
    });
  const blocks = grid1d(g.device, nb);
  const hist = plan.mode === 'top' ? 1 : 0;
  const softmax = plan.mode === 'full' || plan.topK === 0 ? 1 : 0; // the all-token normaliser
  if (hist) stage('init', [1], {}, base);
  stage('scan', blocks, { HIST: hist, STATS: softmax }, base, `${hist ? '_hist' : ''}${softmax ? '_stats' : ''}`);
  const draw = (p: Params) => ({ ...base, step: step(p) });
  if (plan.mode === 'full') {
    stage('draw_full', [1], {}, draw);
    return y;
  }
  const cap = { CAP: plan.cap };
  digits(V).forEach((d, i) => {
    if (i > 0) stage('refine', blocks, {}, { ...base, ...d });
    stage('pick_digit', [1], cap, { ...base, ...d }, `_cap${plan.cap}`);
  });
  stage('gather', blocks, cap, base, `_cap${plan.cap}`);
  stage('draw_top', [1], cap, draw, `_cap${plan.cap}`);
  return y;
}

/**
 * Tokens per invocation in the passes over a row of V (argmax and the sampler): the largest of 8, 16, 32 that
 * still leaves ≥ 16 workgroups. At these sizes the passes are bound by per-workgroup cost, not bandwidth: on
 * lavapipe over 151552 tokens, argmax took 1.9 ms at PER 16 (37 workgroups), 1.2 at 32 (19), 0.7 at 64 (10),
 * and the sampler ~40% less at 32 than at 8; 16 workgroups still spread over a real GPU's cores.
 */
function elementsPerInvocation(vocab: number): number {
  let per = 8;
  while (per < 32 && vocab >= WG * per * 2 * 16) per *= 2;
  return per;
}

type DispatchValues = Record<string, number> | ((p: Params) => Record<string, number>);

// ---- the random numbers, on the host (for tests and for anyone replaying a run) ----

function mulhilo32(a: number, b: number): [number, number] {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return [(a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0, Math.imul(a, b) >>> 0];
}

/** Philox2x32-10 (Salmon et al., SC'11) of counter (c0, c1) under key: both output words, as sampling.wgsl computes them. */
export function philox2x32(c0: number, c1: number, key: number): [number, number] {
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let k = key >>> 0;
  for (let r = 0; r < 10; r++) {
    const [hi, lo] = mulhilo32(0xd256d193, x0);
    x0 = (hi ^ k ^ x1) >>> 0;
    x1 = lo;
    k = (k + 0x9e3779b9) >>> 0;
  }
  return [x0, x1];
}

/** The sampler's uniform draw for (seed, step): a multiple of 2^-24 in [0, 1), exactly as the GPU computes it. */
export function samplerUniform(seed: number, step: number): number {
  return (philox2x32(step, 0, seed)[0] >>> 8) / 16777216;
}
