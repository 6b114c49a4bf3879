// Opening a model for a command, in the order that fails fastest: the processor (configs, tokenizer, template:
// no weights) and the caller's check of its request, then the device and the request's images against its limits,
// then the weights, with a progress bar on a terminal.

import { Device, InputError } from '@glm4v/core';
import type { LoadProgress } from '../checkpoint/upload.js';
import { demoCheckpoint } from '../demo.js';
import { Glm4v } from '../glm4v.js';
import { Glm4vProcessor, type PreparedPrompt } from '../processor.js';
import { ProgressBar } from './progress.js';
import { UsageError } from './usage.js';

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
 * second), then creates the device, checks the prepared prompts' images against its limits, and loads the weights.
 */
export async function openModel(dir: string, opts: { kvCache: 'f32' | 'f16'; quiet: boolean }, check: (p: Glm4vProcessor) => Promise<PreparedPrompt[]>): Promise<OpenModel> {
  const processor = await Glm4vProcessor.load(dir);
  const prompts = await check(processor);
  const device = await Device.create();
  try {
    for (const p of prompts) processor.checkLimits(p, device.limits);
    if (opts.kvCache === 'f16' && !device.has('shader-f16')) throw new InputError(`--kv-cache f16 needs the shader-f16 feature, which this adapter (${device.adapter.description || device.adapter.device}) lacks`);
    const bar = process.stderr.isTTY && !opts.quiet ? new ProgressBar(process.stderr) : undefined;
    const onProgress = bar && ((p: LoadProgress) => bar.update(p.bytesDone, p.bytesTotal, p.tensor));
    const model = await Glm4v.load(dir, { device, processor, kvCacheDType: opts.kvCache, onProgress }).finally(() => bar?.done());
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
