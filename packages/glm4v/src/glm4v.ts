// The library's front door:
//   const model = await Glm4v.load(dir, { onProgress, signal });
//   for await (const ev of model.generate({ messages }, { maxNewTokens: 512 })) { ... }
//   model.dispose();
// A request is checked and prepared by the processor (processor.ts: template, placeholders, tokens, image and
// video patches), which works without the weights; then prefill and one recorded decode step replayed per token,
// streaming text split into thinking and answer (docs/model.md#one-request). Every reply runs on a Batcher (generate/batcher.ts):
// generate() and each chat turn are a batch of one; batcher() and generateBatch() decode many together.

import { ConfigError, Device, type DeviceOptions, InputError } from '@glm4v/core';
import { type KvDType, QUANT_FORMATS, type QuantFormat, isQuantFormat } from '@glm4v/kernels';
import type { LoadOptions } from './checkpoint/upload.js';
import type { GenerationConfig, PreprocessorConfig } from './config.js';
import { type ModelFolder, asFolder } from './files/folder.js';
import { Batcher, type BatcherOptions } from './generate/batcher.js';
import { Engine } from './generate/engine.js';
import { type GenerateEvent, type GenerateResult, collect } from './generate/events.js';
import { type GenerateOptions, resolveOptions } from './generate/options.js';
import { TurnRecord } from './generate/turn.js';
import type { Glm4vModel } from './model/glm4v.js';
import { loadModel } from './model/load-model.js';
import { type GenerateRequest, Glm4vProcessor, type PreparedPrompt } from './processor.js';
import type { Message } from './prompt/chat-template.js';
import type { Tokenizer } from './prompt/tokenizer.js';
import { Chat } from './chat.js';

export type { GenerateOptions } from './generate/options.js';
export type { Phase } from './generate/phases.js';
export type { FinishReason, GenerateEvent, GenerateResult, GenerationStats } from './generate/events.js';
export type { GenerateRequest } from './processor.js';
export type { Batcher, BatcherOptions, BatcherStats, Submission } from './generate/batcher.js';

export interface Glm4vLoadOptions extends LoadOptions {
  /** A device to use (kept alive after dispose); by default one is created and owned. */
  device?: Device;
  deviceOptions?: DeviceOptions;
  /**
   * KV-cache element type: f16 (half the memory; the default where the adapter has shader-f16, with the greedy
   * tokens of f32 on every conformance case) or f32 (the exact path; the default without shader-f16).
   */
  kvCacheDType?: KvDType;
  /** The folder's processor, when already loaded (to check requests before the weights load). */
  processor?: Glm4vProcessor;
  /**
   * Quantise the decoder's linear weights, lm_head and embedding table to this format as they load (q8: ~1.06
   * bytes a weight, q4: ~0.56). A checkpoint written by `glm4v-run quantize` loads in its own format without this.
   */
  quant?: QuantFormat;
  /** The same for the vision tower and merger (default: as stored, bf16 in the original checkpoint). */
  quantVision?: QuantFormat;
}

/** The KV cache's element type unless asked: f16 where the adapter has shader-f16, else f32. */
export function defaultKvCacheDType(device: Device): KvDType {
  return device.has('shader-f16') ? 'f16' : 'f32';
}

export class Glm4v {
  private constructor(
    private readonly engine: Engine,
    private readonly ownsDevice: boolean,
  ) {}

  /**
   * Loads a checkpoint folder (a path under Node, a URL in a page, or any ModelFolder): configs, tokenizer, chat
   * template (the processor), then the weights (streamed to the GPU once they are known to fit), quantised as they
   * load where `quant`/`quantVision` ask for it.
   */
  static async load(dir: string | ModelFolder, opts: Glm4vLoadOptions = {}): Promise<Glm4v> {
    for (const [name, v] of [
      ['quant', opts.quant],
      ['quantVision', opts.quantVision],
    ] as const) {
      if (v !== undefined && !isQuantFormat(v))
        throw new InputError(
          `${name}: unknown format ${JSON.stringify(v)} (expected ${Object.keys(QUANT_FORMATS).join(' or ')})`,
        );
    }
    const folder = asFolder(dir);
    const processor = opts.processor ?? (await Glm4vProcessor.load(folder));
    const device = opts.device ?? (await Device.create(opts.deviceOptions));
    try {
      const { model } = await loadModel(folder, device, {
        ...opts,
        quantFormats: { text: opts.quant, vision: opts.quantVision },
      });
      return new Glm4v(new Engine(model, processor, opts.kvCacheDType ?? defaultKvCacheDType(device)), !opts.device);
    } catch (e) {
      if (!opts.device) device.dispose();
      throw e;
    }
  }

  /**
   * Wraps a model already built (randomModel at the real shapes, for benchmarks) with the processor of the folder
   * `dir` (configs, tokenizer, chat template), whose weights are not read. The result owns the model, not its device.
   */
  static async fromModel(
    model: Glm4vModel,
    dir: string | ModelFolder,
    opts: { kvCacheDType?: KvDType } = {},
  ): Promise<Glm4v> {
    const processor = await Glm4vProcessor.load(dir);
    if (processor.tokenizer.vocabSize > model.config.text.vocabSize) {
      throw new ConfigError(
        `${processor.dir}: the tokenizer has ${processor.tokenizer.vocabSize} ids but the model's vocabulary is ${model.config.text.vocabSize}`,
      );
    }
    return new Glm4v(new Engine(model, processor, opts.kvCacheDType ?? defaultKvCacheDType(model.device)), false);
  }

  get device(): Device {
    return this.engine.model.device;
  }

  get processor(): Glm4vProcessor {
    return this.engine.processor;
  }

  get dir(): string {
    return this.processor.dir;
  }

  get tokenizer(): Tokenizer {
    return this.processor.tokenizer;
  }

  get generation(): GenerationConfig {
    return this.processor.generation;
  }

  get imageConfig(): PreprocessorConfig {
    return this.processor.imageConfig;
  }

  get videoConfig(): PreprocessorConfig {
    return this.processor.videoConfig;
  }

  /**
   * Streams a reply: `token` events (ids), `text` events (decoded pieces, each tagged thinking or answer, never
   * ending inside a UTF-8 character), and a final `done` event with the finish reason and stats. `request` may
   * be one `processor.prepare()` already checked (its media options were applied then). One at a time per model;
   * batcher() serves many conversations at once.
   */
  generate(request: GenerateRequest | PreparedPrompt, options: GenerateOptions = {}): AsyncGenerator<GenerateEvent> {
    return this.engine.reply(options, (signal, record) => this.reply(request, options, signal, record));
  }

  private async *reply(
    request: GenerateRequest | PreparedPrompt,
    options: GenerateOptions,
    signal: AbortSignal,
    record: TurnRecord,
  ): AsyncGenerator<GenerateEvent> {
    const { model, processor } = this.engine;
    const opt = resolveOptions(processor.generation, options);
    record.seed = opt.seed;
    const prompt = await this.engine.prepare(request, options);
    record.promptTokens = prompt.ids.length;
    const capacity = processor.contextFor(prompt.ids.length, options);
    if (signal.aborted) return;
    const session = await model.createSession(capacity, this.engine.kvCacheDType);
    try {
      yield* this.engine.decode(session, { input: prompt.input(), promptIds: prompt.ids, opt, record, signal });
    } finally {
      session.dispose();
    }
  }

  /**
   * A batcher over this model: up to maxBatch conversations decoding together (continuous batching), each with its
   * own options, in a KV pool of maxBatch × contextLength tokens allocated now. Close it to free the pool.
   */
  async batcher(opts: BatcherOptions = {}): Promise<Batcher> {
    if (this.engine.disposal.signal.aborted) throw new InputError('this model has been disposed');
    return Batcher.create(this.engine, opts);
  }

  /**
   * Several requests decoded together (a batcher of up to `maxBatch`, default 8, its context the longest request's
   * prompt + maxNewTokens); the results in the order of the requests.
   */
  async generateBatch(
    jobs: readonly { request: GenerateRequest | PreparedPrompt; options?: GenerateOptions }[],
    opts: { maxBatch?: number } = {},
  ): Promise<GenerateResult[]> {
    if (jobs.length === 0) return [];
    const { processor } = this.engine;
    const prepared = await Promise.all(
      jobs.map(async ({ request, options = {} }) => {
        const prompt = await this.engine.prepare(request, options);
        return {
          prompt,
          options,
          opt: resolveOptions(processor.generation, options),
          context: processor.contextFor(prompt.ids.length, options),
        };
      }),
    );
    const batcher = await this.batcher({
      maxBatch: Math.min(opts.maxBatch ?? 8, jobs.length),
      contextLength: Math.max(...prepared.map((p) => p.context)),
    });
    try {
      const events = ({ prompt, options, opt }: (typeof prepared)[number]) =>
        batcher.enqueue({
          input: prompt.input(),
          promptIds: prompt.ids,
          opt,
          record: new TurnRecord(),
          signal: options.signal,
        }).events;
      return await Promise.all(prepared.map((p) => collect(events(p))));
    } finally {
      await batcher.close();
    }
  }

  /** Runs generate() to the end and returns the whole reply; `onEvent` sees every event as it comes. */
  generateText(
    request: GenerateRequest | PreparedPrompt,
    options: GenerateOptions = {},
    onEvent?: (ev: GenerateEvent) => void,
  ): Promise<GenerateResult> {
    return collect(this.generate(request, options), onEvent);
  }

  /**
   * A conversation with this model: each `chat.send(message)` renders the whole history but prefills only the
   * tokens its KV cache (kept across turns) does not hold. `history` starts it (a system message, earlier turns).
   */
  chat(history: readonly Message[] = []): Chat {
    return new Chat(this.engine, history);
  }

  /**
   * Frees the weights (and the device, when this object created it). Safe at any point and more than once: a
   * generation in progress ends with finish reason 'abort'; generate() afterwards throws.
   */
  dispose(): void {
    if (this.engine.disposal.signal.aborted) return;
    this.engine.disposal.abort();
    this.engine.model.dispose();
    if (this.ownsDevice) this.device.dispose();
  }
}
