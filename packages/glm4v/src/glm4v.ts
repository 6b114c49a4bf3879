// The library's front door:
//   const model = await Glm4v.load(dir, { onProgress, signal });
//   for await (const ev of model.generate({ messages }, { maxNewTokens: 512 })) { ... }
//   model.dispose();
// Prompt → chat template → placeholders expanded → tokens; images/videos → patches; prefill; then one recorded
// decode step replayed per token, streaming text split into thinking and answer (spec §8.4). Decoding goes through
// a Batcher (generate/batcher.ts): generate() is a batch of one; batcher() and generateBatch() decode many
// conversations together.

import { ConfigError, ContextOverflowError, Device, type DeviceOptions, InputError } from '@glm4v/core';
import type { KvDType } from '@glm4v/kernels';
import type { LoadOptions } from './checkpoint/upload.js';
import { type GenerationConfig, type PreprocessorConfig, readConfigs } from './config.js';
import { Batcher, type BatcherOptions, type BatchHost } from './generate/batcher.js';
import { abortedStats } from './generate/sequence.js';
import { type GenerateOptions, resolveOptions } from './generate/options.js';
import type { Phase } from './generate/phases.js';
import type { Glm4vModel, PrefillInput } from './model/glm4v.js';
import { loadModel } from './model/load.js';
import { preprocessImages } from './preprocess/image.js';
import type { ImageInput, PreparedVideo } from './preprocess/types.js';
import { preprocessVideo } from './preprocess/video.js';
import { ChatTemplate, type Message } from './prompt/chat-template.js';
import { expandPlaceholders } from './prompt/placeholders.js';
import { Tokenizer } from './prompt/tokenizer.js';
import { concatFloat32 } from './arrays.js';

export type { GenerateOptions } from './generate/options.js';
export type { Phase } from './generate/phases.js';
export type { Batcher, BatcherOptions, BatcherStats, Submission } from './generate/batcher.js';

export interface GenerateRequest {
  messages: readonly Message[];
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationStats {
  promptTokens: number;
  /** Tokens the model produced, a final stop token included (which `token` events and `tokens` leave out). */
  generatedTokens: number;
  /** From the call to the first new token: preprocessing, vision and prefill. */
  timeToFirstTokenMs: number;
  prefillMs: number;
  prefillTokensPerSecond: number;
  decodeMs: number;
  /** Tokens after the first, per second of decoding. */
  decodeTokensPerSecond: number;
  totalMs: number;
  seed: number;
}

export type GenerateEvent =
  | { type: 'token'; id: number }
  | { type: 'text'; text: string; phase: Phase }
  | { type: 'done'; finishReason: FinishReason; stats: GenerationStats };

export interface GenerateResult {
  thinking: string;
  answer: string;
  tokens: number[];
  finishReason: FinishReason;
  stats: GenerationStats;
}

export interface Glm4vLoadOptions extends LoadOptions {
  /** A device to use (kept alive after dispose); by default one is created and owned. */
  device?: Device;
  deviceOptions?: DeviceOptions;
  /** KV-cache element type: f32 (exact, default) or f16 (half the memory; needs shader-f16). */
  kvCacheDType?: KvDType;
}

export class Glm4v {
  readonly dir: string;
  readonly tokenizer: Tokenizer;
  private readonly model: Glm4vModel;
  private readonly template: ChatTemplate;
  readonly generation: GenerationConfig;
  readonly imageConfig: PreprocessorConfig;
  readonly videoConfig: PreprocessorConfig;
  private readonly ownsDevice: boolean;
  private readonly kvCacheDType: KvDType;
  private busy = false;
  /** Aborted by dispose(): a generation in progress ends as an abort. */
  private readonly disposal = new AbortController();

  private constructor(dir: string, model: Glm4vModel, parts: { tokenizer: Tokenizer; template: ChatTemplate; generation: GenerationConfig; image: PreprocessorConfig; video: PreprocessorConfig }, ownsDevice: boolean, kv: KvDType) {
    this.dir = dir;
    this.model = model;
    this.tokenizer = parts.tokenizer;
    this.template = parts.template;
    this.generation = parts.generation;
    this.imageConfig = parts.image;
    this.videoConfig = parts.video;
    this.ownsDevice = ownsDevice;
    this.kvCacheDType = kv;
  }

  /** Loads a checkpoint folder: configs, tokenizer, chat template and weights (streamed to the GPU). */
  static async load(dir: string, opts: Glm4vLoadOptions = {}): Promise<Glm4v> {
    const tokenizer = await Tokenizer.load(dir);
    const template = await ChatTemplate.load(dir);
    const device = opts.device ?? (await Device.create(opts.deviceOptions));
    try {
      const { model, configs } = await loadModel(dir, device, opts);
      if (tokenizer.vocabSize > configs.model.text.vocabSize) {
        model.dispose();
        throw new ConfigError(`${dir}: the tokenizer has ${tokenizer.vocabSize} ids but the model's vocabulary (config.json vocab_size) is ${configs.model.text.vocabSize}`);
      }
      return new Glm4v(dir, model, { tokenizer, template, generation: configs.generation, image: configs.image, video: configs.video }, !opts.device, opts.kvCacheDType ?? 'f32');
    } catch (e) {
      if (!opts.device) device.dispose();
      throw e;
    }
  }

  /**
   * Wraps a model already built (randomModel at the real shapes, for benchmarks) with the tokenizer, chat template
   * and configs of the folder `dir`, whose weights are not read. The result owns the model, not its device.
   */
  static async fromModel(model: Glm4vModel, dir: string, opts: { kvCacheDType?: KvDType } = {}): Promise<Glm4v> {
    const tokenizer = await Tokenizer.load(dir);
    const template = await ChatTemplate.load(dir);
    const configs = await readConfigs(dir);
    if (tokenizer.vocabSize > model.config.text.vocabSize) {
      throw new ConfigError(`${dir}: the tokenizer has ${tokenizer.vocabSize} ids but the model's vocabulary is ${model.config.text.vocabSize}`);
    }
    return new Glm4v(dir, model, { tokenizer, template, generation: configs.generation, image: configs.image, video: configs.video }, false, opts.kvCacheDType ?? 'f32');
  }

  get device(): Device {
    return this.model.device;
  }

  /** The prompt's ids, images and videos as the model will see them (template rendered, placeholders expanded). */
  private async prepare(request: GenerateRequest): Promise<PrefillInput> {
    const images: ImageInput[] = [];
    const videos: string[] = [];
    for (const m of request.messages ?? []) {
      if (typeof m?.content === 'string' || !Array.isArray(m?.content)) continue;
      for (const p of m.content) {
        if (p?.type === 'image') images.push(p.image);
        else if (p?.type === 'video') videos.push(p.video);
      }
    }
    const rendered = this.template.render(request.messages, { addGenerationPrompt: true });
    const merge = this.model.config.vision.spatialMergeSize;
    const img = images.length ? await preprocessImages(images, this.imageConfig) : undefined;
    const vids: PreparedVideo[] = [];
    for (const v of videos) vids.push(await preprocessVideo(v, this.videoConfig));
    const text = expandPlaceholders(rendered, img?.grids ?? [], vids.map((v) => ({ grid: v.grids[0], timestamps: v.timestamps })), merge);
    const input: PrefillInput = { ids: Int32Array.from(this.tokenizer.encode(text)) };
    if (img) input.images = { pixelValues: img.pixelValues, grids: img.grids };
    if (vids.length) input.videos = { pixelValues: concatFloat32(vids.map((v) => v.pixelValues)), grids: vids.flatMap((v) => v.grids) };
    return input;
  }

  /** What a Batcher needs from this model. */
  private get host(): BatchHost {
    return { model: this.model, tokenizer: this.tokenizer, generation: this.generation, prepare: (r) => this.prepare(r), disposal: this.disposal.signal };
  }

  /**
   * Streams a reply: `token` events (ids), `text` events (decoded pieces, each tagged thinking or answer, never
   * ending inside a UTF-8 character), and a final `done` event with the finish reason and stats. One at a time per
   * model; batcher() serves many conversations at once.
   */
  async *generate(request: GenerateRequest, options: GenerateOptions = {}): AsyncGenerator<GenerateEvent> {
    if (this.disposal.signal.aborted) throw new InputError('this model has been disposed');
    if (this.busy) throw new InputError('this model is already generating; wait for the other generate() to finish, or use batcher()');
    this.busy = true;
    try {
      yield* this.run(request, options);
    } finally {
      this.busy = false;
    }
  }

  /** A batch of one, its KV cache sized for this request (prompt + maxNewTokens, or contextLength). */
  private async *run(request: GenerateRequest, options: GenerateOptions): AsyncGenerator<GenerateEvent> {
    const t0 = performance.now();
    const opt = resolveOptions(this.generation, options);
    const input = await this.prepare(request);
    const maxPos = this.model.config.text.maxPositionEmbeddings;
    const prompt = input.ids.length;
    const capacity = Math.min(options.contextLength ?? prompt + opt.maxNewTokens, maxPos);
    if (prompt >= capacity) {
      const limit = options.contextLength !== undefined ? `, contextLength ${options.contextLength}` : '';
      throw new ContextOverflowError(`the prompt has ${prompt} tokens; the context holds ${capacity} (max_position_embeddings ${maxPos}${limit}), leaving no room to answer`);
    }
    if (options.signal?.aborted || this.disposal.signal.aborted) {
      yield { type: 'done', finishReason: 'abort', stats: abortedStats(prompt, t0, opt.seed) };
      return;
    }
    const batcher = await Batcher.create(this.host, { maxBatch: 1, contextLength: Math.max(2, capacity), kvCacheDType: this.kvCacheDType });
    try {
      yield* batcher.enqueue(input, opt, t0, options.signal).events;
    } finally {
      await batcher.close();
    }
  }

  /**
   * A batcher over this model: up to maxBatch conversations decoding together (continuous batching), each with its
   * own options, in a KV pool of maxBatch × contextLength tokens allocated now. Close it to free the pool.
   */
  async batcher(opts: BatcherOptions = {}): Promise<Batcher> {
    if (this.disposal.signal.aborted) throw new InputError('this model has been disposed');
    return Batcher.create(this.host, { kvCacheDType: this.kvCacheDType, ...opts });
  }

  /**
   * Several requests decoded together (a batcher of up to `maxBatch`, default 8, its context the longest request's
   * prompt + maxNewTokens); the results in the order of the requests.
   */
  async generateBatch(jobs: readonly { request: GenerateRequest; options?: GenerateOptions }[], opts: { maxBatch?: number } = {}): Promise<GenerateResult[]> {
    if (jobs.length === 0) return [];
    const maxPos = this.model.config.text.maxPositionEmbeddings;
    const prepared = await Promise.all(jobs.map(async (j) => ({ input: await this.prepare(j.request), opt: resolveOptions(this.generation, j.options ?? {}) })));
    const context = Math.min(maxPos, Math.max(...prepared.map((p, i) => jobs[i].options?.contextLength ?? p.input.ids.length + p.opt.maxNewTokens)));
    const batcher = await this.batcher({ maxBatch: Math.min(opts.maxBatch ?? 8, jobs.length), contextLength: Math.max(2, context) });
    try {
      return await Promise.all(prepared.map((p, i) => collect(batcher.enqueue(p.input, p.opt, performance.now(), jobs[i].options?.signal).events)));
    } finally {
      await batcher.close();
    }
  }

  /** Runs generate() to the end and returns the whole reply; `onEvent` sees every event as it comes. */
  async generateText(request: GenerateRequest, options: GenerateOptions = {}, onEvent?: (ev: GenerateEvent) => void): Promise<GenerateResult> {
    return collect(this.generate(request, options), onEvent);
  }

  /**
   * Frees the weights (and the device, when this object created it). Safe at any point and more than once: a
   * generation in progress ends with finish reason 'abort'; generate() afterwards throws.
   */
  dispose(): void {
    if (this.disposal.signal.aborted) return;
    this.disposal.abort();
    this.model.dispose();
    if (this.ownsDevice) this.device.dispose();
  }
}

/** The whole reply of an event stream. */
async function collect(events: AsyncIterable<GenerateEvent>, onEvent?: (ev: GenerateEvent) => void): Promise<GenerateResult> {
  const out: GenerateResult = { thinking: '', answer: '', tokens: [], finishReason: 'length', stats: undefined as never };
  for await (const ev of events) {
    onEvent?.(ev);
    if (ev.type === 'token') out.tokens.push(ev.id);
    else if (ev.type === 'text') out[ev.phase] += ev.text;
    else {
      out.finishReason = ev.finishReason;
      out.stats = ev.stats;
    }
  }
  return out;
}
