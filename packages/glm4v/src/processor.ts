// What a model folder says about a request, without its weights: the configs, the tokenizer, the chat template and
// the image and video preprocessors (Glm4vProcessor in transformers). `prepare` checks a request and turns it into
// token ids and vision-tower inputs: options checked, messages rendered, images decoded and resized (size, aspect
// ratio), video frames sampled, the prompt measured against the context; checkLimits then measures every image
// against a device's storage binding (the vision tower's). A bad request so fails in well under a second, before
// the weights (21 GB for the real model) load; Glm4v.load takes the processor and generate() the prepared prompt.

import { ConfigError, ContextOverflowError, InputError } from '@glm4v/core';
import { concatFloat32 } from './arrays.js';
import { type GenerationConfig, type Glm4vConfig, type PreprocessorConfig, readConfigs } from './config.js';
import { type ModelFolder, asFolder } from './files/folder.js';
import { type GenerateOptions, checkOptions, resolveOptions } from './generate/options.js';
import { type Grid, type MediaPlan, checkOneMediaKind, planMedia } from './media-plan.js';
import type { PrefillInput, VisionInput } from './model/glm4v.js';
import { checkVisionFits, patchLength } from './model/vision.js';
import { preprocessImages } from './preprocess/image.js';
import { preprocessVideo } from '#platform';
import { ChatTemplate, type ContentPart, type Message } from './prompt/chat-template.js';
import { expandPlaceholders, mediaSpans } from './prompt/placeholders.js';
import { Tokenizer } from './prompt/tokenizer.js';

export interface GenerateRequest {
  messages: readonly Message[];
}

export interface PrepareContext {
  /** How error messages name an option (default `option maxPixels`); the CLI passes its flag names. */
  nameOf?: (option: keyof GenerateOptions) => string;
}

/** Where an image or video of a prompt sits: its patch grid and, for a video, one timestamp per temporal patch. */
export interface MediaLayout {
  kind: 'image' | 'video';
  grid: Grid;
  timestamps: readonly number[];
}

/** A checked request: the prompt as the model sees it, and the vision-tower inputs of its images or videos. */
export class PreparedPrompt {
  /**
   * `pixels`: the patches of media[firstNew…] (media before it were prepared in an earlier turn and are already
   * in the KV cache), concatenated in order. `spans`: each media block's [start, end) in `ids`.
   */
  constructor(
    readonly text: string,
    readonly ids: Int32Array,
    readonly media: readonly MediaLayout[],
    /** The media plan of the whole prompt (media-plan.ts). */
    readonly plan: MediaPlan,
    readonly spans: readonly (readonly [number, number])[],
    private readonly pixels: Float32Array,
    private readonly firstNew: number,
    private readonly patchLen: number,
  ) {}

  /**
   * The largest cut ≤ `c` that falls outside every media block. Prefilling from there leaves no block split
   * between the KV cache and the new tokens (their positions and the image rows must be computed whole).
   */
  cutBefore(c: number): number {
    for (const [a, b] of this.spans) if (a < c && c < b) return a;
    return c;
  }

  /** Index of the first media at or after token `from`. */
  private firstMediaFrom(from: number): number {
    const i = this.spans.findIndex(([a]) => a >= from);
    return i < 0 ? this.media.length : i;
  }

  /** Whether input(from) can be built: `from` cuts no block, and every media after it was prepared here. */
  covers(from: number): boolean {
    return this.cutBefore(from) === from && this.firstMediaFrom(from) >= this.firstNew;
  }

  /** The prefill input of tokens [from, end) (see covers()). */
  input(from = 0): PrefillInput {
    const first = this.firstMediaFrom(from);
    if (!this.covers(from))
      throw new InputError(`prefill from token ${from}: it cuts a media block or needs media that were not prepared`);
    const out: PrefillInput = { ids: this.ids.subarray(from) };
    const media = this.media.slice(first);
    if (media.length === 0) return out;
    const patchesBefore = this.media
      .slice(this.firstNew, first)
      .reduce((n, m) => n + m.grid[0] * m.grid[1] * m.grid[2], 0);
    const vision: VisionInput = {
      pixelValues: this.pixels.subarray(patchesBefore * this.patchLen),
      grids: media.map((m) => m.grid),
    };
    if (media[0].kind === 'image') out.images = vision;
    else out.videos = vision;
    return out;
  }
}

export class Glm4vProcessor {
  private constructor(
    /** Where the folder is (a path, a URL, a picked folder's name), for messages. */
    readonly dir: string,
    readonly config: Glm4vConfig,
    readonly generation: GenerationConfig,
    readonly imageConfig: PreprocessorConfig,
    readonly videoConfig: PreprocessorConfig,
    readonly tokenizer: Tokenizer,
    readonly template: ChatTemplate,
  ) {}

  /**
   * Reads and cross-checks a folder's configs, tokenizer and chat template (a path under Node, a URL in a page, or
   * any ModelFolder); no weight file is opened.
   */
  static async load(dir: string | ModelFolder): Promise<Glm4vProcessor> {
    const folder = asFolder(dir);
    const configs = await readConfigs(folder);
    const tokenizer = await Tokenizer.load(folder);
    const template = await ChatTemplate.load(folder);
    checkTokenizer(folder, tokenizer, configs.model);
    return new Glm4vProcessor(
      folder.location,
      configs.model,
      configs.generation,
      configs.image,
      configs.video,
      tokenizer,
      template,
    );
  }

  /** Checks `request` with `options` and prepares it; every failure is a typed error naming what is at fault. */
  prepare(request: GenerateRequest, options: GenerateOptions = {}, ctx: PrepareContext = {}): Promise<PreparedPrompt> {
    return prepareMessages(this, request, options, ctx, new Map());
  }

  /**
   * LimitError unless each image (or video frame) of `prompt` fits the vision tower on a device with `limits`
   * (`device.limits`): one image's residual stream is bound whole. Cheap: no weights, no GPU work.
   */
  checkLimits(prompt: PreparedPrompt, limits: { readonly maxStorageBufferBindingSize: number }): void {
    checkVisionFits(
      prompt.media.map((m) => m.grid),
      this.config.vision,
      limits.maxStorageBufferBindingSize,
    );
  }

  /**
   * The KV-cache size a prompt of `promptTokens` needs with `options`: prompt + max new tokens, or contextLength,
   * at most max_position_embeddings. ContextOverflowError when the prompt leaves no room to answer.
   */
  contextFor(promptTokens: number, options: GenerateOptions, nameOf: PrepareContext['nameOf'] = (k) => k): number {
    const maxPos = this.config.text.maxPositionEmbeddings;
    const capacity = Math.min(
      options.contextLength ?? promptTokens + resolveOptions(this.generation, options).maxNewTokens,
      maxPos,
    );
    if (promptTokens >= capacity) {
      const limit = options.contextLength !== undefined ? `, ${nameOf('contextLength')} ${options.contextLength}` : '';
      throw new ContextOverflowError(
        `the prompt has ${promptTokens} tokens; the context holds ${capacity} (max_position_embeddings ${maxPos}${limit}), leaving no room to answer`,
      );
    }
    return capacity;
  }
}

/** The tokenizer must fit the model's vocabulary and give the media tokens the ids config.json names. */
function checkTokenizer(folder: ModelFolder, tokenizer: Tokenizer, config: Glm4vConfig): void {
  if (tokenizer.vocabSize > config.text.vocabSize) {
    throw new ConfigError(
      `${folder.location}: the tokenizer has ${tokenizer.vocabSize} ids but the model's vocabulary (config.json vocab_size) is ${config.text.vocabSize}`,
    );
  }
  const t = config.tokens;
  const named: [string, number, string][] = [
    ['<|begin_of_image|>', t.imageStart, 'image_start_token_id'],
    ['<|end_of_image|>', t.imageEnd, 'image_end_token_id'],
    ['<|begin_of_video|>', t.videoStart, 'video_start_token_id'],
    ['<|end_of_video|>', t.videoEnd, 'video_end_token_id'],
    ['<|image|>', t.image, 'image_token_id'],
    ['<|video|>', t.video, 'video_token_id'],
  ];
  for (const [token, id, field] of named) {
    const got = tokenizer.tokenId(token);
    if (got !== id)
      throw new ConfigError(
        `${folder.path('tokenizer.json')}: '${token}' is ${got === undefined ? 'missing' : `id ${got}`}, but config.json ${field} is ${id}`,
      );
  }
}

type MediaPart = Extract<ContentPart, { type: 'image' } | { type: 'video' }>;

/** The request's images and videos in prompt order (messages are checked by the template before this runs). */
export function mediaParts(messages: readonly Message[]): MediaPart[] {
  return messages.flatMap((m) =>
    Array.isArray(m.content) ? m.content.filter((p): p is MediaPart => p.type === 'image' || p.type === 'video') : [],
  );
}

/**
 * The pixel budget for this request: the options over the preprocessor config; a bound given alone moves the
 * config's other bound when they would cross (both given and crossed is refused by checkOptions).
 */
function withBudget(cfg: PreprocessorConfig, o: GenerateOptions): PreprocessorConfig {
  const minPixels = o.minPixels ?? Math.min(cfg.minPixels, o.maxPixels ?? Infinity);
  const maxPixels = o.maxPixels ?? Math.max(cfg.maxPixels, o.minPixels ?? 0);
  return { ...cfg, minPixels, maxPixels };
}

/**
 * prepare(), reusing the layouts in `known` (media parts of earlier chat turns, by identity) instead of decoding
 * them again. The media not in `known` must come last.
 */
export async function prepareMessages(
  p: Glm4vProcessor,
  request: GenerateRequest,
  o: GenerateOptions,
  ctx: PrepareContext,
  known: ReadonlyMap<object, MediaLayout>,
): Promise<PreparedPrompt> {
  const nameOf = ctx.nameOf ?? ((k) => `option ${k}`);
  checkOptions(o, nameOf);
  const rendered = p.template.render(request?.messages, { addGenerationPrompt: true });
  const parts = mediaParts(request.messages);
  const images = parts.filter((m) => m.type === 'image');
  checkOneMediaKind(images.length, parts.length - images.length);
  const firstNew = parts.findIndex((m) => !known.has(m));
  const fresh = firstNew < 0 ? [] : parts.slice(firstNew);
  if (fresh.some((m) => known.has(m)))
    throw new InputError('prepare: media already prepared must come before new media');
  const { layouts, pixels } = await preprocessMedia(p, fresh, o);
  const media = [...parts.slice(0, parts.length - fresh.length).map((m) => known.get(m)!), ...layouts];
  const grids = (kind: MediaLayout['kind']) => media.filter((m) => m.kind === kind).map((m) => m.grid);
  const plan = planMedia(grids('image'), grids('video'), p.config.vision.spatialMergeSize, 'prepare');
  const text = expandPlaceholders(
    rendered,
    plan,
    media.map((m) => m.timestamps),
  );
  const ids = Int32Array.from(p.tokenizer.encode(text));
  p.contextFor(ids.length, o, nameOf);
  const spans = mediaSpans(ids, p.config.tokens);
  if (spans.length !== media.length)
    throw new InputError(
      `the prompt has ${spans.length} image or video blocks for ${media.length} images or videos: is there a <|begin_of_image|> or <|begin_of_video|> in the text?`,
    );
  return new PreparedPrompt(
    text,
    ids,
    media,
    plan,
    spans,
    pixels,
    parts.length - fresh.length,
    patchLength(p.config.vision),
  );
}

/** Decodes, resizes and patchifies `parts` (all images or all videos) with this request's budget and sampling. */
async function preprocessMedia(
  p: Glm4vProcessor,
  parts: readonly MediaPart[],
  o: GenerateOptions,
): Promise<{ layouts: MediaLayout[]; pixels: Float32Array }> {
  const images = parts.flatMap((m) => (m.type === 'image' ? [m.image] : []));
  const videos = parts.flatMap((m) => (m.type === 'video' ? [m.video] : []));
  if (images.length > 0) {
    const cfg = withBudget(p.imageConfig, o);
    const img = await preprocessImages(images, cfg);
    return { layouts: img.grids.map((grid) => ({ kind: 'image', grid, timestamps: [] })), pixels: img.pixelValues };
  }
  const cfg = withBudget(p.videoConfig, o);
  const layouts: MediaLayout[] = [];
  const pixels: Float32Array[] = [];
  for (const path of videos) {
    const v = await preprocessVideo(path, cfg, { fps: o.fps, maxFrames: o.maxFrames });
    layouts.push({ kind: 'video', grid: v.grids[0], timestamps: v.timestamps });
    pixels.push(v.pixelValues);
  }
  return { layouts, pixels: concatFloat32(pixels) };
}
