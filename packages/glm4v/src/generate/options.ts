// Generation options as the user gives them, resolved against generation_config.json. Without options, as
// transformers does: do_sample false means greedy; absent sampling values take transformers' defaults
// (temperature 1, top-k 50, top-p 1); the repetition penalty applies in greedy decoding too. An explicit
// temperature decides by itself: 0 is greedy, above 0 samples, whatever do_sample says.

import { InputError } from '@glm4v/core';
import { SAMPLING_LIMITS, type SamplingOptions } from '@glm4v/kernels';
import type { GenerationConfig } from '../config.js';

export interface GenerateOptions {
  /** Stop after this many new tokens (default: generation_config.json's max_new_tokens, else 8192). */
  maxNewTokens?: number;
  /** 0 = greedy. Default: generation_config.json (greedy unless it sets do_sample). */
  temperature?: number;
  /** 0 = no top-k cut. */
  topK?: number;
  /** 1 = no nucleus cut. */
  topP?: number;
  /** 1 = none. */
  repetitionPenalty?: number;
  /** Same seed, same output. Default: a random seed, reported in the stats. */
  seed?: number;
  /** KV-cache size in tokens (default: prompt + maxNewTokens, at most max_position_embeddings). */
  contextLength?: number;
  /**
   * Pixel budget of this request's images or video, overriding preprocessor_config.json (images) or
   * video_preprocessor_config.json (videos): bounds on frames × height × width after resizing, where a still image
   * counts as 2 frames and a video's sampled frames all count (the processor's size.shortest_edge/longest_edge).
   */
  minPixels?: number;
  maxPixels?: number;
  /** Video frames sampled per second (default 2, the processor's). */
  fps?: number;
  /** Most video frames sampled (default: 300 seconds' worth at `fps`); beyond, frames are spread evenly. */
  maxFrames?: number;
  /**
   * Strings that end the reply (finish reason 'stop'), matched on the decoded text, across token boundaries, tags
   * and box markers included. Neither the stop string nor anything after it is in the text.
   */
  stop?: readonly string[];
  /** Text events include special tokens and box markers (default: both removed; `tokens` always has every id). */
  showSpecial?: boolean;
  /** Keep going past end-of-sequence tokens until maxNewTokens or a stop string (benchmarks: fixed reply lengths). */
  ignoreEos?: boolean;
  signal?: AbortSignal;
}

export interface ResolvedOptions {
  /** undefined: plain argmax (greedy with no penalty). */
  sampling?: SamplingOptions;
  maxNewTokens: number;
  seed: number;
  stop: readonly string[];
  showSpecial: boolean;
  ignoreEos: boolean;
}

type NumericOption = Exclude<keyof GenerateOptions, 'signal' | 'stop' | 'showSpecial' | 'ignoreEos'>;

const RULES: Readonly<Record<NumericOption, [(v: number) => boolean, string]>> = {
  maxNewTokens: [(v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'],
  temperature: [(v) => Number.isFinite(v) && v >= 0, 'a number ≥ 0'],
  topK: [
    (v) => Number.isInteger(v) && v >= 0 && v <= SAMPLING_LIMITS.maxTopK,
    `an integer from 0 to ${SAMPLING_LIMITS.maxTopK}`,
  ],
  topP: [(v) => v > 0 && v <= 1, 'a number in (0, 1]'],
  repetitionPenalty: [(v) => Number.isFinite(v) && v > 0, 'a number > 0'],
  seed: [(v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32, 'an integer in [0, 2^32)'],
  contextLength: [(v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1'],
  minPixels: [(v) => Number.isSafeInteger(v) && v >= 1, 'an integer ≥ 1'],
  maxPixels: [(v) => Number.isSafeInteger(v) && v >= 1, 'an integer ≥ 1'],
  fps: [(v) => Number.isFinite(v) && v > 0, 'a number > 0'],
  maxFrames: [(v) => Number.isInteger(v) && v >= 2, 'an integer ≥ 2'],
};

/** Checks every given option; `nameOf` names it in the message (the CLI passes its flag names). */
export function checkOptions(
  o: GenerateOptions,
  nameOf: (option: keyof GenerateOptions) => string = (k) => `option ${k}`,
): void {
  for (const [k, [ok, what]] of Object.entries(RULES) as [NumericOption, [(v: number) => boolean, string]][]) {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'number' || !ok(v)))
      throw new InputError(`${nameOf(k)} = ${v}: expected ${what}`);
  }
  if (o.minPixels !== undefined && o.maxPixels !== undefined && o.minPixels > o.maxPixels) {
    throw new InputError(`${nameOf('minPixels')} = ${o.minPixels} is above ${nameOf('maxPixels')} = ${o.maxPixels}`);
  }
  for (const k of ['showSpecial', 'ignoreEos'] as const) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean')
      throw new InputError(`${nameOf(k)} = ${JSON.stringify(o[k])}: expected true or false`);
  }
  if (o.stop !== undefined) {
    if (!Array.isArray(o.stop)) throw new InputError(`${nameOf('stop')}: expected an array of strings`);
    o.stop.forEach((s, i) => {
      if (typeof s !== 'string' || s.length === 0)
        throw new InputError(`${nameOf('stop')}[${i}] = ${JSON.stringify(s)}: expected a non-empty string`);
    });
  }
}

export function resolveOptions(gen: GenerationConfig, o: GenerateOptions): ResolvedOptions {
  checkOptions(o);
  const sampled = o.temperature !== undefined ? o.temperature > 0 : gen.doSample;
  const temperature = sampled ? (o.temperature ?? gen.temperature ?? 1) : 0;
  const repetitionPenalty = o.repetitionPenalty ?? gen.repetitionPenalty ?? 1;
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 32);
  const maxNewTokens = o.maxNewTokens ?? gen.maxNewTokens ?? 8192;
  const common = {
    maxNewTokens,
    seed,
    stop: [...(o.stop ?? [])],
    showSpecial: o.showSpecial === true,
    ignoreEos: o.ignoreEos === true,
  };
  if (temperature === 0 && repetitionPenalty === 1) return common;
  return {
    sampling: {
      temperature,
      topK: o.topK ?? gen.topK ?? (sampled ? 50 : 0),
      topP: o.topP ?? gen.topP ?? 1,
      repetitionPenalty,
      seed,
    },
    ...common,
  };
}
