// The library's front door:
//   const model = await Glm4v.load(dir, { onProgress, signal });
//   for await (const ev of model.generate({ messages }, { maxNewTokens: 512 })) { ... }
//   model.dispose();
// Prompt → chat template → placeholders expanded → tokens; images/videos → patches; prefill; then one recorded
// decode step replayed per token, streaming text split into thinking and answer (spec §8.4).

import { ConfigError, ContextOverflowError, Device, type DeviceOptions, InputError } from '@glm4v/core';
import type { KvDType } from '@glm4v/kernels';
import type { LoadOptions } from './checkpoint/upload.js';
import type { GenerationConfig, PreprocessorConfig } from './config.js';
import { type GenerateEvent, type GenerateResult, collect } from './generate/events.js';
import { type GenerateOptions, resolveOptions } from './generate/options.js';
import { TurnRecord, runTurn } from './generate/turn.js';
import type { Glm4vModel, PrefillInput } from './model/glm4v.js';
import type { Session } from './model/session.js';
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
export type { FinishReason, GenerateEvent, GenerateResult, GenerationStats } from './generate/events.js';

export interface GenerateRequest {
  messages: readonly Message[];
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

  get device(): Device {
    return this.model.device;
  }

  /** The prompt's text and ids as the model will see them (template rendered, placeholders expanded). */
  private async prepare(request: GenerateRequest): Promise<{ text: string; input: PrefillInput }> {
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
    return { text, input };
  }

  /**
   * Streams a reply: `token` events (ids), `text` events (decoded pieces, each tagged thinking or answer, never
   * ending inside a UTF-8 character), and a final `done` event with the finish reason and stats.
   */
  async *generate(request: GenerateRequest, options: GenerateOptions = {}): AsyncGenerator<GenerateEvent> {
    if (this.disposal.signal.aborted) throw new InputError('this model has been disposed');
    if (this.busy) throw new InputError('this model is already generating; wait for the other generate() to finish');
    this.busy = true;
    try {
      yield* this.run(request, options);
    } finally {
      this.busy = false;
    }
  }

  private async *run(request: GenerateRequest, options: GenerateOptions): AsyncGenerator<GenerateEvent> {
    const t0 = performance.now();
    const opt = resolveOptions(this.generation, options);
    const { input } = await this.prepare(request);
    const maxPos = this.model.config.text.maxPositionEmbeddings;
    const prompt = input.ids.length;
    const capacity = Math.min(options.contextLength ?? prompt + opt.maxNewTokens, maxPos);
    if (prompt >= capacity) {
      const limit = options.contextLength !== undefined ? `, contextLength ${options.contextLength}` : '';
      throw new ContextOverflowError(`the prompt has ${prompt} tokens; the context holds ${capacity} (max_position_embeddings ${maxPos}${limit}), leaving no room to answer`);
    }
    const signal = options.signal ? AbortSignal.any([options.signal, this.disposal.signal]) : this.disposal.signal;
    const record = new TurnRecord(t0);
    let session: Session | undefined;
    try {
      if (!signal.aborted) {
        session = await this.model.createSession(capacity, this.kvCacheDType);
        const eos = new Set(this.generation.eosTokenIds);
        yield* runTurn({ model: this.model, tokenizer: this.tokenizer, eos, session, input, promptIds: input.ids, opt, signal }, record);
      }
    } catch (e) {
      // dispose() during a generation frees the GPU under it: whatever fails then, the generation was aborted
      if (!this.disposal.signal.aborted) throw e;
      record.finish = 'abort';
    } finally {
      session?.dispose();
    }
    yield { type: 'done', finishReason: record.finish, stats: record.stats(prompt, 0, opt.seed) };
  }

  /** Runs generate() to the end and returns the whole reply; `onEvent` sees every event as it comes. */
  generateText(request: GenerateRequest, options: GenerateOptions = {}, onEvent?: (ev: GenerateEvent) => void): Promise<GenerateResult> {
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
