// The generation options as command-line flags (`--max-new-tokens 64`) and as job-file keys (`"max_new_tokens": 64`):
// one table, so `glm4v-run`, `glm4v-run chat`, `glm4v-run batch` and the job lines name the same options the same
// way. The values are checked by generate/options.ts (checkOptions), as the library checks them.

import { type GenerateOptions, checkOptions } from '../generate/options.js';
import { UsageError } from './usage.js';

type Numeric = Exclude<keyof GenerateOptions, 'signal' | 'stop' | 'showSpecial' | 'ignoreEos'>;

/**
 * GenerateOptions key → its flag name (and job-file key, with `_` for `-`); plus `stop` (repeatable, a list in jobs)
 * and `show-special` (a switch, true or false in jobs).
 */
const FLAGS: Readonly<Record<Numeric, string>> = {
  maxNewTokens: 'max-new-tokens',
  temperature: 'temperature',
  topK: 'top-k',
  topP: 'top-p',
  repetitionPenalty: 'repetition-penalty',
  seed: 'seed',
  contextLength: 'context',
  minPixels: 'min-pixels',
  maxPixels: 'max-pixels',
  fps: 'fps',
  maxFrames: 'max-frames',
};

const KEYS = Object.keys(FLAGS) as Numeric[];

const flagName = (k: keyof GenerateOptions): string =>
  FLAGS[k as Numeric] ?? (k === 'showSpecial' ? 'show-special' : k);
/** The job-file key of a GenerateOptions key, also for messages: max_new_tokens, context, … */
export const jobOptionKey = (k: keyof GenerateOptions): string => flagName(k).replaceAll('-', '_');

/** The flag that sets a GenerateOptions key, for messages: --max-new-tokens, --context, … */
export const flagOf = (k: keyof GenerateOptions): string => `--${flagName(k)}`;

/** The job-file keys of the options: `max_new_tokens`, `top_k`, …, `stop`, `show_special`. */
export const JOB_OPTION_KEYS: ReadonlySet<string> = new Set([...KEYS.map(jobOptionKey), 'stop', 'show_special']);

/** parseArgs declarations of the generation flags. */
export const GENERATION_FLAGS = {
  ...(Object.fromEntries(KEYS.map((k) => [FLAGS[k], { type: 'string' }])) as Record<string, { type: 'string' }>),
  stop: { type: 'string', multiple: true },
  'show-special': { type: 'boolean' },
} as const;

export const GENERATION_HELP = `  --max-new-tokens N        stop after N new tokens (default: generation_config.json, else 8192)
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

/** The generation options among parsed flags, checked; a bad value is a UsageError naming the flag. */
export function generationOptions(values: Record<string, unknown>): GenerateOptions {
  const options: GenerateOptions = {};
  for (const k of KEYS) {
    const v = values[FLAGS[k]];
    if (v === undefined) continue;
    const n = Number(v);
    if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n))
      throw new UsageError(`--${FLAGS[k]} expects a number, got '${v}'`);
    options[k] = n;
  }
  if (values.stop !== undefined) options.stop = values.stop as string[];
  if (values['show-special'] !== undefined) options.showSpecial = values['show-special'] as boolean;
  try {
    checkOptions(options, flagOf);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return options;
}

/** The generation options among a job line's keys, checked; an InputError names the key (`max_new_tokens = 0: …`). */
export function jobOptions(job: Readonly<Record<string, unknown>>): GenerateOptions {
  const options: GenerateOptions = {};
  for (const k of KEYS) if (job[jobOptionKey(k)] !== undefined) options[k] = job[jobOptionKey(k)] as number;
  if (job.stop !== undefined) options.stop = job.stop as string[];
  if (job.show_special !== undefined) options.showSpecial = job.show_special as boolean;
  checkOptions(options, jobOptionKey);
  return options;
}
