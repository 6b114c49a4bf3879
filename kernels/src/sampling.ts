// Token selection on the GPU (argmax.wgsl, sampling.wgsl, presence.wgsl): greedy argmax, and one token per row
// of logits [M, V] chosen with HF transformers' processors in their order: repetition penalty → temperature →
// top-k → top-p → softmax → draw. Each row is one sequence of a batch, with its own options (per slot, set on the
// host when a sequence takes the slot), seen tokens and draw counter. A decode step records this once and replays
// it; only the u32 token ids it writes need to come back to the host.
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

import {
  type Device,
  type Graph,
  InputError,
  LimitError,
  type Params,
  Tensor,
  UniformLayout,
  type Workgroups,
} from '@glm4v/core';
import ARGMAX_WGSL from './argmax.wgsl.js';
import SAMPLING_WGSL from './sampling.wgsl.js';
import PRESENCE_WGSL from './presence.wgsl.js';
import { assertDType, assertShape } from './prelude.js';
import { grid1d } from './grid.js';
import { ROWS_WGSL, checkRows } from './rows.js';

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

export const SAMPLING_LIMITS = Object.freeze({
  /** Largest top-k the candidate buffer holds. */
  maxTopK: 1024,
  /** Tokens among which the top-p nucleus is searched when top-k is off. */
  topPCandidates: 1024,
});

/** How a slot's tokens are chosen: argmax (penalised), a draw over all tokens, or a draw among the top ones. */
const MODE = { greedy: 0, full: 1, top: 2 } as const;
/** A slot's options as the kernels read them, one u32 word each (f32 fields as their bits). */
const SLOT_FIELDS = [
  ['mode', 'u32'],
  ['want', 'u32'],
  ['top_k', 'u32'],
  ['cap', 'u32'],
  ['top_p', 'f32'],
  ['temp', 'f32'],
  ['penalty', 'f32'],
  ['seed', 'u32'],
] as const;
type SlotValues = Record<(typeof SLOT_FIELDS)[number][0], number>;
/** Largest candidate buffer: max(256, 2·maxTopK rounded up to a power of two). */
const MAX_CAP = 2048;

/** The row fields, SlotOptions and the MODE_ constants, prepended to argmax.wgsl and sampling.wgsl. */
const SAMPLER_HEADER =
  ROWS_WGSL +
  `struct SlotOptions { ${SLOT_FIELDS.map(([n, t]) => `${n}: ${t}`).join(', ')} }\n` +
  Object.entries(MODE)
    .map(([name, v]) => `const MODE_${name.toUpperCase()} = ${v}u;\n`)
    .join('');

/**
 * The sampler's state on the GPU, per slot (one slot per sequence of a batch): how the slot's tokens are chosen
 * (options: u32 [slots, 8], SLOT_FIELDS) and which tokens it has seen (presence: V bits, u32 [slots, ceil(V/32)])
 * for the repetition penalty. A new state has every slot greedy with no penalty and nothing seen.
 */
export interface SamplerState {
  presence: Tensor;
  options: Tensor;
  vocabSize: number;
  slots: number;
  dispose(): void;
}

const PARAMS = new UniformLayout(
  'n: u32, nb: u32, rows: u32, slots: u32, words: u32, ctl_stride: u32, word: u32, shift: u32, bits: u32',
);
const ARGMAX_PARAMS = new UniformLayout('rows: u32, cols: u32, nb: u32, slots: u32, words: u32');
const MARK_PARAMS = new UniformLayout('count: u32, vocab: u32, first: u32');
const WG = 256;
const CTL_WORDS = 16 + 2048; // state words + histogram, then the candidate pairs

export async function createSamplerState(device: Device, vocabSize: number, slots = 1): Promise<SamplerState> {
  if (!Number.isInteger(vocabSize) || vocabSize < 1)
    throw new InputError(`createSamplerState: vocabSize is ${vocabSize}; expected a positive integer`);
  if (!Number.isInteger(slots) || slots < 1)
    throw new InputError(`createSamplerState: slots is ${slots}; expected a positive integer`);
  const presence = await Tensor.empty(device, 'u32', [slots, Math.ceil(vocabSize / 32)], 'sampler_presence');
  let options: Tensor;
  try {
    options = await Tensor.empty(device, 'u32', [slots, SLOT_FIELDS.length], 'sampler_options');
  } catch (e) {
    presence.dispose();
    throw e;
  }
  const state: SamplerState = {
    presence,
    options,
    vocabSize,
    slots,
    dispose: () => [presence, options].forEach((t) => t.dispose()),
  };
  for (let slot = 0; slot < slots; slot++) setSamplerOptions(state, slot, undefined);
  return state;
}

/** How a slot's tokens are chosen: argmax (penalised or not), a draw over all tokens, or among the top ones. */
export type SamplingMode = keyof typeof MODE;

/**
 * Sets how `slot` chooses its tokens (undefined: plain argmax) and forgets the tokens it has seen: the state of a
 * new sequence in that slot. Checks the options first (InputError / LimitError naming the option). Returns the
 * slot's mode (for SamplerModes).
 */
export function setSamplerOptions(state: SamplerState, slot: number, opts: SamplingOptions | undefined): SamplingMode {
  checkSlot('setSamplerOptions', state, slot);
  const o = opts ?? { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };
  const plan = checkOptions(o, state.vocabSize);
  const values: SlotValues = {
    mode: MODE[plan.mode],
    want: plan.want,
    top_k: plan.topK,
    cap: plan.cap,
    top_p: o.topP,
    temp: o.temperature,
    penalty: o.repetitionPenalty,
    seed: o.seed,
  };
  const words = new DataView(new ArrayBuffer(4 * SLOT_FIELDS.length));
  SLOT_FIELDS.forEach(([name, type], i) =>
    type === 'f32' ? words.setFloat32(4 * i, values[name], true) : words.setUint32(4 * i, values[name], true),
  );
  state.options.writeBytes(new Uint8Array(words.buffer), slot * 4 * SLOT_FIELDS.length);
  resetSamplerState(state, slot);
  return plan.mode;
}

/** Forgets every seen token of `slot` (of every slot when omitted). */
export function resetSamplerState(state: SamplerState, slot?: number): void {
  const words = state.presence.shape[1];
  if (slot === undefined) state.presence.writeBytes(new Uint8Array(state.presence.byteSize));
  else {
    checkSlot('resetSamplerState', state, slot);
    state.presence.writeBytes(new Uint8Array(4 * words), 4 * words * slot);
  }
}

function checkSlot(fn: string, state: SamplerState, slot: number): void {
  if (!Number.isInteger(slot) || slot < 0 || slot >= state.slots)
    throw new InputError(`${fn}: slot ${slot} is outside the sampler's ${state.slots} slots`);
}

/**
 * Marks token ids as seen by `slot` (e.g. its prompt): sets presence[slot][id] for every element of ids
 * (i32/u32); ids ∉ [0, V) are ignored.
 */
export function markPresent(g: Graph, state: SamplerState, ids: Tensor, slot = 0): void {
  assertDType(`markPresent ids '${ids.label}'`, ids.dtype, ['i32', 'u32']);
  checkSlot('markPresent', state, slot);
  if (ids.numel === 0) return;
  const wg = 64;
  g.dispatch({
    kernel: { label: 'sampling_mark_present', code: PRESENCE_WGSL, constants: { WG: wg } },
    uniforms: {
      layout: MARK_PARAMS,
      values: { count: ids.numel, vocab: state.vocabSize, first: slot * state.presence.shape[1] },
    },
    inputs: [ids],
    outputs: [state.presence],
    workgroups: grid1d(g.device, Math.ceil(ids.numel / wg)),
  });
}

/** Greedy: index of the largest logit of each row, logits [rows, V] (f32) → u32 [rows]; ties → smallest index; NaNs skipped (an all-NaN row → 0); rows ≤ 65535. */
export function argmax(g: Graph, logits: Tensor, out?: Tensor): Tensor {
  assertDType(`argmax logits '${logits.label}'`, logits.dtype, ['f32']);
  const cols = logits.shape[logits.shape.length - 1] ?? 0;
  if (cols < 1)
    throw new InputError(
      `argmax logits '${logits.label}' has shape [${logits.shape.join(', ')}]; expected a non-empty last dimension`,
    );
  const rows = logits.numel / cols;
  const y = out ?? g.tensor('u32', [rows], 'argmax_out');
  assertDType(`argmax output '${y.label}'`, y.dtype, ['u32']);
  assertShape(`argmax output '${y.label}'`, y.shape, [rows]);
  if (rows > 0) recordArgmax(g, logits, rows, cols, y);
  return y;
}

/**
 * Block and finish dispatches; with `greedy`, the sampler's greedy rows of a batch (each penalised on the fly by
 * its slot's options and presence bits, its winner marked and written to y[slot]).
 */
function recordArgmax(
  g: Graph,
  x: Tensor,
  rows: number,
  cols: number,
  y: Tensor,
  greedy?: { state: SamplerState; rows: Tensor; run: (p: Params) => boolean },
): void {
  const per = elementsPerInvocation(cols);
  const nb = Math.ceil(cols / (WG * per));
  const part = g.tensor('u32', [2 * rows * nb], 'argmax_partials');
  // The kernel names every binding either way; plain argmax binds placeholders it never touches.
  const stand = (label: string, words = 1) => g.tensor('u32', [words], label);
  const state = greedy?.state;
  const common = {
    uniforms: {
      layout: ARGMAX_PARAMS,
      values: { rows, cols, nb, slots: state?.slots ?? 1, words: state?.presence.shape[1] ?? 1 },
    },
    inputs: [
      x,
      greedy?.rows ?? stand('argmax_no_rows'),
      state?.options ?? stand('argmax_no_options', SLOT_FIELDS.length),
    ],
    outputs: [part, y, state?.presence ?? stand('argmax_no_presence')],
  };
  const direct = nb === 1 ? 1 : 0;
  const penalised = greedy ? 1 : 0;
  const code = SAMPLER_HEADER + ARGMAX_WGSL;
  const when = (w: Workgroups): Workgroups | ((p: Params) => Workgroups) =>
    greedy ? (p: Params) => (greedy.run(p) ? w : [0]) : w;
  g.dispatch({
    ...common,
    kernel: {
      label: `argmax_${greedy ? 'block_penalised' : 'block'}${direct ? '_direct' : ''}`,
      code,
      entryPoint: 'block',
      constants: { WG, PER: per, DIRECT: direct, PENALISED: penalised },
    },
    workgroups: when([nb, rows]),
  });
  if (nb === 1) return;
  g.dispatch({
    ...common,
    kernel: {
      label: `argmax_${greedy ? 'finish_mark' : 'finish'}`,
      code,
      entryPoint: 'finish',
      constants: { WG, PENALISED: penalised },
    },
    workgroups: when(grid1d(g.device, rows)),
  });
}

interface Plan {
  mode: SamplingMode;
  /** Tokens ranked and kept before top-p (top-k, or the top-p candidate count). */
  want: number;
  /** Candidate buffer size, a power of two ≥ 2·want. */
  cap: number;
  topK: number;
}

function checkOptions(o: SamplingOptions, vocab: number): Plan {
  const bad = (name: string, v: number, expected: string) =>
    new InputError(`sample: ${name} is ${v}; expected ${expected}`);
  if (!Number.isFinite(o.temperature) || o.temperature < 0)
    throw bad('temperature', o.temperature, 'a finite number ≥ 0');
  if (!Number.isInteger(o.topK) || o.topK < 0) throw bad('topK', o.topK, 'an integer ≥ 0');
  if (!(o.topP > 0 && o.topP <= 1)) throw bad('topP', o.topP, 'a number in (0, 1]');
  if (!Number.isFinite(o.repetitionPenalty) || o.repetitionPenalty <= 0)
    throw bad('repetitionPenalty', o.repetitionPenalty, 'a finite number > 0');
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed >= 2 ** 32)
    throw bad('seed', o.seed, 'an integer in [0, 2^32)');
  if (o.temperature === 0 || o.topK === 1) return { mode: 'greedy', want: 1, cap: 0, topK: 1 };
  const topK = o.topK >= vocab ? 0 : o.topK; // HF: top_k = min(top_k, V); keeping all is no restriction
  if (topK > SAMPLING_LIMITS.maxTopK)
    throw new LimitError(
      `sample: topK ${topK} is above the sampler's limit of ${SAMPLING_LIMITS.maxTopK} (vocabulary ${vocab})`,
    );
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

/** Which modes a run has rows of (from its params); a mode no row has skips its dispatches. */
export type SamplerModes = (p: Params) => { greedy: boolean; full: boolean; top: boolean };

/**
 * One token per row of logits [M, V] (f32): row r is the sequence in slot_r of the rows table i32 [M, ROW_FIELDS]
 * (rows.ts), chosen as that slot's options say (setSamplerOptions), its draw counter step_r, written to
 * out[slot_r] (u32 [slots]) and marked in the slot's presence bits. Each row's token depends on its own logits,
 * options, presence bits and step only. `modes` (default: all) skips the dispatches of modes no row uses.
 */
export function sample(
  g: Graph,
  logits: Tensor,
  state: SamplerState,
  rows: Tensor,
  out: Tensor,
  modes?: SamplerModes,
): Tensor {
  const V = state.vocabSize;
  assertDType(`sample logits '${logits.label}'`, logits.dtype, ['f32']);
  const m = logits.shape.length === 2 ? logits.shape[0] : 0;
  if (m < 1 || logits.shape[1] !== V) {
    throw new InputError(
      `sample logits '${logits.label}' has shape [${logits.shape.join(', ')}]; expected [M, ${V}] (the sampler state's vocabulary)`,
    );
  }
  checkRows('sample', rows, m);
  assertDType(`sample output '${out.label}'`, out.dtype, ['u32']);
  assertShape(`sample output '${out.label}'`, out.shape, [state.slots]);
  const run = (mode: SamplingMode) => (p: Params) => (modes ? modes(p)[mode] : true);
  recordArgmax(g, logits, m, V, out, { state, rows, run: run('greedy') });
  const per = elementsPerInvocation(V);
  const nb = Math.ceil(V / (WG * per));
  const ctlStride = CTL_WORDS + 2 * MAX_CAP;
  const scores = g.tensor('f32', [m, V], 'sampling_scores');
  const stats = g.tensor('f32', [m, 2 * nb], 'sampling_stats');
  const ctl = g.tensor('u32', [m, ctlStride], 'sampling_ctl');
  const base = {
    n: V,
    nb,
    rows: m,
    slots: state.slots,
    words: state.presence.shape[1],
    ctl_stride: ctlStride,
    word: 0,
    shift: 0,
    bits: 0,
  };
  const stage = (entry: string, blocks: number, when: (p: Params) => boolean, values: Record<string, number> = base) =>
    g.dispatch({
      kernel: {
        label: `sampling_${entry}`,
        code: SAMPLER_HEADER + SAMPLING_WGSL,
        entryPoint: entry,
        constants: { WG, PER: per, MAX_CAP },
      },
      uniforms: { layout: PARAMS, values },
      inputs: [logits, rows, state.options],
      outputs: [state.presence, scores, stats, ctl, out],
      workgroups: (p: Params) => (when(p) ? [blocks, m] : [0]),
    });
  const top = run('top');
  const drawn = (p: Params) => top(p) || run('full')(p);
  stage('init', 1, top);
  stage('scan', nb, drawn);
  digits(V).forEach((d, i) => {
    if (i > 0) stage('refine', nb, top, { ...base, ...d });
    stage('pick_digit', 1, top, { ...base, ...d });
  });
  stage('gather', nb, top);
  stage('draw_top', 1, top);
  stage('draw_full', 1, run('full'));
  return out;
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
