// The flags `glm4v-run` and `glm4v-run chat` share: the model (--model/--demo, --kv-cache) and the generation
// options (GenerateOptions, one flag each), parsed and checked with the flag named in every message.

import { checkOptions, type GenerateOptions } from '../generate/options.js';
import { UsageError } from './usage.js';

export const MODEL_FLAGS = {
  model: { type: 'string' },
  demo: { type: 'boolean' },
  'kv-cache': { type: 'string' },
} as const;

export const GENERATE_FLAGS = {
  'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'repetition-penalty': { type: 'string' },
  seed: { type: 'string' },
  context: { type: 'string' },
  stop: { type: 'string', multiple: true },
  'min-pixels': { type: 'string' },
  'max-pixels': { type: 'string' },
  fps: { type: 'string' },
  'max-frames': { type: 'string' },
  'show-special': { type: 'boolean' },
} as const;

export const MODEL_HELP = `  --model DIR               checkpoint folder (config.json, tokenizer.json, *.safetensors)
  --demo                    use a tiny checkpoint with RANDOM weights instead (made once, cached)
  --kv-cache f32|f16        KV-cache element type: f32 (exact, default) or f16 (half the memory)`;

export const GENERATE_HELP = `  --max-new-tokens N        stop after N new tokens (default: generation_config.json, else 8192)
  --temperature T           0 = greedy (default: generation_config.json)
  --top-k K                 0 = off
  --top-p P                 1 = off
  --repetition-penalty R    1 = off
  --seed S                  same seed, same output
  --context N               KV-cache size in tokens (default: prompt + max new tokens)
  --stop TEXT               end the reply where TEXT appears (not printed); repeat for several
  --min-pixels N            pixel budget of the images or video, overriding preprocessor_config.json (images) or
  --max-pixels N              video_preprocessor_config.json: bounds on frames × height × width after resizing,
                              a still image counting as 2 frames
  --fps F                   video frames sampled per second (default 2)
  --max-frames N            most video frames sampled (default: 300 s worth); beyond, spread evenly
  --show-special            print special tokens and box markers too (by default they are removed)`;

/** GenerateOptions keys whose flag is not the key in kebab case. */
const FLAG_OF: Partial<Record<keyof GenerateOptions, string>> = { contextLength: 'context' };

/** The flag that sets a GenerateOptions key, for messages: --max-new-tokens, --context, … */
export function flagOf(option: keyof GenerateOptions): string {
  return `--${FLAG_OF[option] ?? option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

function num(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} expects a number, got '${v}'`);
  return n;
}

type Values = { [K in keyof typeof GENERATE_FLAGS]?: (typeof GENERATE_FLAGS)[K] extends { multiple: true } ? string[] : (typeof GENERATE_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

/** GenerateOptions from parsed flags, each checked (a bad value is a UsageError naming the flag). */
export function generateOptions(v: Values): GenerateOptions {
  const options: GenerateOptions = {
    maxNewTokens: num(v['max-new-tokens'], 'max-new-tokens'),
    temperature: num(v.temperature, 'temperature'),
    topK: num(v['top-k'], 'top-k'),
    topP: num(v['top-p'], 'top-p'),
    repetitionPenalty: num(v['repetition-penalty'], 'repetition-penalty'),
    seed: num(v.seed, 'seed'),
    contextLength: num(v.context, 'context'),
    stop: v.stop,
    minPixels: num(v['min-pixels'], 'min-pixels'),
    maxPixels: num(v['max-pixels'], 'max-pixels'),
    fps: num(v.fps, 'fps'),
    maxFrames: num(v['max-frames'], 'max-frames'),
    showSpecial: v['show-special'],
  };
  try {
    checkOptions(options, flagOf);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return options;
}

/** --kv-cache: f32 or f16. */
export function kvCacheFlag(v: string | undefined): 'f32' | 'f16' {
  if (v === undefined || v === 'f32' || v === 'f16') return v ?? 'f32';
  throw new UsageError(`--kv-cache expects f32 or f16, got '${v}'`);
}
