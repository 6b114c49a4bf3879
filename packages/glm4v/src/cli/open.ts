// Opening a model for a command, in the order that fails fastest: the processor (configs, tokenizer, template:
// no weights) and the caller's check of its request, then the device and the request's images against its limits,
// then the weights, with a progress bar on a terminal. Every command that runs the model (run, chat, batch,
// worker) opens it here; the model-choosing flags they share are declared here too.

import { Device, InputError } from '@glm4v/core';
import type { KvDType, QuantFormat } from '@glm4v/kernels';
import type { LoadProgress } from '../checkpoint/upload.js';
import { demoCheckpoint } from '../demo.js';
import { Glm4v } from '../glm4v.js';
import { Glm4vProcessor, type PreparedPrompt } from '../processor.js';
import { ProgressBar } from './progress.js';
import { UsageError, intFlag, quantFlag } from './usage.js';

/** KV-cache tokens per conversation (serve) or job (batch, worker) when none is asked for, at most the model's. */
export const DEFAULT_CONTEXT = 8192;

/**
 * The context of serve's and worker's --context N (given, or DEFAULT_CONTEXT), checked against the folder's
 * max_position_embeddings: call it from openModel's request check, before the weights load.
 */
export function contextFlag(context: number | undefined, processor: Glm4vProcessor): number {
  const maxPos = processor.config.text.maxPositionEmbeddings;
  const n = context ?? Math.min(DEFAULT_CONTEXT, maxPos);
  if (n < 2 || n > maxPos)
    throw new UsageError(
      `--context expects an integer from 2 to ${maxPos} (max_position_embeddings), got '${context}'`,
    );
  return n;
}

/** How the weights and the KV cache are held: the flags of every command that loads the model. */
export const WEIGHT_FLAGS = {
  'kv-cache': { type: 'string' },
  quant: { type: 'string' },
  'quant-vision': { type: 'string' },
} as const;

export const WEIGHT_HELP = `  --kv-cache f16|f32        KV-cache element type: f16 (half the memory; the default where the GPU has
                            shader-f16) or f32 (exact)
  --quant q8|q4             quantise the decoder (linear layers, lm_head, embeddings) as it loads: ~10 GB
                            (q8) or ~5.3 GB (q4) instead of ~19 GB; a folder written by 'glm4v-run quantize'
                            loads quantised without it
  --quant-vision q8|q4      the same for the vision tower (default: as stored, bf16: ~1.8 GB)`;

export const MODEL_FLAGS = {
  model: { type: 'string' },
  demo: { type: 'boolean' },
  ...WEIGHT_FLAGS,
} as const;

export const MODEL_HELP = `  --model DIR               checkpoint folder (config.json, tokenizer.json, *.safetensors)
  --demo                    use a tiny checkpoint with RANDOM weights instead (made once, cached)
${WEIGHT_HELP}`;

export const MAX_BATCH_HELP = `  --max-batch N             jobs decoded together (default 8; continuous batching: one read of the weights per
                            step for all of them). Each holds a KV slot of --context tokens, allocated at the
                            start: lower either if the GPU runs out of memory`;

/** --max-batch: an integer from 1 to 64 (default 8). */
export function maxBatchFlag(v: string | undefined): number {
  return intFlag(v, 'max-batch', 1, 8, 64);
}

/** What WEIGHT_FLAGS chose. */
export interface WeightChoice {
  /** Unset: Glm4v's default (f16 where the adapter has shader-f16). */
  kvCache?: KvDType;
  quant?: QuantFormat;
  quantVision?: QuantFormat;
}

/** Reads WEIGHT_FLAGS; a bad value is a UsageError naming the flag. */
export function weightFlags(v: { 'kv-cache'?: string; quant?: string; 'quant-vision'?: string }): WeightChoice {
  const kv = v['kv-cache'];
  if (kv !== undefined && kv !== 'f32' && kv !== 'f16')
    throw new UsageError(`--kv-cache expects f32 or f16, got '${kv}'`);
  return {
    kvCache: kv,
    quant: quantFlag(v.quant, '--quant'),
    quantVision: quantFlag(v['quant-vision'], '--quant-vision'),
  };
}

/** The checkpoint folder of --model or --demo (made once and cached; its notice goes to stderr). */
export async function modelDir(v: { model?: string; demo?: boolean }): Promise<string> {
  if (!v.model && !v.demo) throw new UsageError('give --model DIR (or --demo)');
  if (v.model && v.demo) throw new UsageError('give either --model or --demo, not both');
  if (!v.demo) return v.model!;
  process.stderr.write('demo: a tiny checkpoint with RANDOM weights — the pipeline is real, the text is noise\n');
  return demoCheckpoint();
}

/** A model opened for a command; close() frees it and its device. */
export interface OpenModel {
  processor: Glm4vProcessor;
  model: Glm4v;
  /** What `check` prepared. */
  prompts: PreparedPrompt[];
  close(): void;
}

/**
 * Loads `dir`'s processor, lets `check` prepare the request with it (a bad request fails here, in well under a
 * second), then creates the device, checks the prepared prompts' images against its limits, and loads the weights
 * (quantised as asked; a loading bar on stderr when it is a terminal, unless `quiet`). Commands whose requests come later (chat, batch,
 * worker) check nothing here: each request is prepared and checked before it runs.
 */
export async function openModel(
  dir: string,
  opts: WeightChoice & { quiet?: boolean },
  check: (p: Glm4vProcessor) => Promise<PreparedPrompt[]> = async () => [],
): Promise<OpenModel> {
  const processor = await Glm4vProcessor.load(dir);
  const prompts = await check(processor);
  const device = await Device.create();
  try {
    for (const p of prompts) processor.checkLimits(p, device.limits);
    if (opts.kvCache === 'f16' && !device.has('shader-f16'))
      throw new InputError(
        `--kv-cache f16 needs the shader-f16 feature, which this adapter (${device.adapter.description || device.adapter.device}) lacks`,
      );
    const bar = process.stderr.isTTY && !opts.quiet ? new ProgressBar(process.stderr) : undefined;
    const onProgress = bar && ((p: LoadProgress) => bar.update(p.bytesDone, p.bytesTotal, p.tensor));
    const model = await Glm4v.load(dir, {
      device,
      processor,
      kvCacheDType: opts.kvCache,
      quant: opts.quant,
      quantVision: opts.quantVision,
      onProgress,
    }).finally(() => bar?.done());
    const close = () => {
      model.dispose();
      device.dispose();
    };
    return { processor, model, prompts, close };
  } catch (e) {
    device.dispose();
    throw e;
  }
}
