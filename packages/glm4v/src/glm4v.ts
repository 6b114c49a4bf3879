// The library's front door:
//   const model = await Glm4v.load(dir, { onProgress, signal });
//   for await (const ev of model.generate({ messages }, { maxNewTokens: 512 })) { ... }
//   model.dispose();
// Prompt → chat template → placeholders expanded → tokens; images/videos → patches; prefill; then one recorded
// decode step replayed per token, streaming text split into thinking and answer (spec §8.4).

import { AbortError, ConfigError, ContextOverflowError, Device, type DeviceOptions, Graph, InputError, Tensor } from '@glm4v/core';
import { type KvDType, QUANT_FORMATS, type QuantFormat, createSamplerState, isQuantFormat, markPresent } from '@glm4v/kernels';
import type { LoadOptions } from './checkpoint/upload.js';
import type { GenerationConfig, PreprocessorConfig } from './config.js';
import { type GenerateOptions, type ResolvedOptions, resolveOptions } from './generate/options.js';
import { type Phase, PhaseSplitter } from './generate/phases.js';
import type { DecodeStep, Glm4vModel, NextToken, PrefillInput } from './model/glm4v.js';
import type { Session } from './model/session.js';
import { DecodeLoop } from './model/decode-loop.js';
import { loadModel } from './model/load.js';
import { preprocessImages } from './preprocess/image.js';
import type { ImageInput, PreparedVideo } from './preprocess/types.js';
import { preprocessVideo } from './preprocess/video.js';
import { ChatTemplate, type Message } from './prompt/chat-template.js';
import { expandPlaceholders } from './prompt/placeholders.js';
import { TextStream, Tokenizer } from './prompt/tokenizer.js';
import { concatFloat32 } from './arrays.js';

export type { GenerateOptions } from './generate/options.js';
export type { Phase } from './generate/phases.js';

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
  /**
   * Quantise the decoder's linear weights and lm_head to this format as they load (q8: ~1.06 bytes a weight,
   * q4: ~0.63). A checkpoint written by `glm4v-run quantize` loads in its own format without this.
   */
  quant?: QuantFormat;
  /** The same for the vision tower and merger (default: as stored, bf16 in the original checkpoint). */
  quantVision?: QuantFormat;
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
    for (const [name, v] of [['quant', opts.quant], ['quantVision', opts.quantVision]] as const) {
      if (v !== undefined && !isQuantFormat(v)) throw new InputError(`${name}: unknown format ${JSON.stringify(v)} (expected ${Object.keys(QUANT_FORMATS).join(' or ')})`);
    }
    const device = opts.device ?? (await Device.create(opts.deviceOptions));
    try {
      const { model, configs } = await loadModel(dir, device, { ...opts, quantFormats: { text: opts.quant, vision: opts.quantVision } });
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
    const owned: { dispose(): void }[] = [];
    const times = { t0, prefill: performance.now(), first: performance.now() };
    let result = { generated: 0, finish: 'abort' as FinishReason };
    try {
      if (!options.signal?.aborted) {
        const session = await this.model.createSession(capacity, this.kvCacheDType);
        owned.push(session);
        const next = await this.nextToken(opt, input.ids, owned);
        times.prefill = performance.now();
        const prefilled = await this.model.prefill(session, input, { next, signal: options.signal }).then(() => true, (e) => {
          if (e instanceof AbortError) return false;
          throw e;
        });
        times.first = performance.now();
        if (prefilled) result = yield* this.decode(session, next, opt.maxNewTokens, options.signal, owned);
      }
    } finally {
      owned.reverse().forEach((o) => o.dispose());
    }
    yield { type: 'done', finishReason: result.finish, stats: stats(times, performance.now(), prompt, result.generated, opt.seed) };
  }

  /** How the next token is chosen: argmax, or sampling with a fresh sampler state that has seen the prompt. */
  private async nextToken(opt: ResolvedOptions, ids: Int32Array, owned: { dispose(): void }[]): Promise<NextToken> {
    if (!opt.sampling) return { kind: 'argmax' };
    const state = await createSamplerState(this.device, this.model.config.text.vocabSize);
    owned.push(state.presence);
    // the repetition penalty counts the prompt's tokens as seen, as transformers does
    const t = await Tensor.fromArray(this.device, 'i32', [ids.length], ids, 'prompt_ids');
    const g = new Graph(this.device, 'mark-prompt');
    try {
      markPresent(g, state, t);
      await g.run();
    } finally {
      g.dispose();
      t.dispose();
    }
    return { kind: 'sample', options: opt.sampling, state };
  }

  /** Streams tokens from session.token (chosen by prefill) until a stop token, the limit or an abort. */
  private async *decode(session: Session, next: NextToken, maxNewTokens: number, signal: AbortSignal | undefined, owned: { dispose(): void }[]): AsyncGenerator<GenerateEvent, { generated: number; finish: FinishReason }> {
    const eos = new Set(this.generation.eosTokenIds);
    const stream = new TextStream(this.tokenizer);
    const phases = new PhaseSplitter();
    let step: DecodeStep | undefined;
    const loop = new DecodeLoop(session, () => {
      if (!step) owned.push((step = this.model.recordDecode(session, { next })));
      return step;
    });
    let generated = 0;
    let finish: FinishReason = 'length';
    for (;;) {
      const aborted = signal?.aborted === true;
      const more = !aborted && generated + 1 < maxNewTokens && loop.canStep;
      const token = await loop.next(more);
      generated++;
      if (eos.has(token)) {
        finish = 'stop';
        break;
      }
      yield { type: 'token', id: token };
      for (const piece of phases.push(stream.push(token))) yield { type: 'text', ...piece };
      if (!more) {
        if (aborted) finish = 'abort';
        break;
      }
    }
    for (const piece of [...phases.push(stream.flush()), ...phases.flush()]) yield { type: 'text', ...piece };
    return { generated, finish };
  }

  /** Runs generate() to the end and returns the whole reply; `onEvent` sees every event as it comes. */
  async generateText(request: GenerateRequest, options: GenerateOptions = {}, onEvent?: (ev: GenerateEvent) => void): Promise<GenerateResult> {
    const out: GenerateResult = { thinking: '', answer: '', tokens: [], finishReason: 'length', stats: undefined as never };
    for await (const ev of this.generate(request, options)) {
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

  /** Frees the weights (and the device, when this object created it). */
  dispose(): void {
    this.model.dispose();
    if (this.ownsDevice) this.device.dispose();
  }
}

function stats(t: { t0: number; prefill: number; first: number }, end: number, prompt: number, generated: number, seed: number): GenerationStats {
  const decodeMs = end - t.first;
  return {
    promptTokens: prompt,
    generatedTokens: generated,
    timeToFirstTokenMs: t.first - t.t0,
    prefillMs: t.first - t.prefill,
    prefillTokensPerSecond: t.first > t.prefill ? prompt / ((t.first - t.prefill) / 1000) : 0,
    decodeMs,
    decodeTokensPerSecond: generated > 1 ? (generated - 1) / (decodeMs / 1000) : 0,
    totalMs: end - t.t0,
    seed,
  };
}
