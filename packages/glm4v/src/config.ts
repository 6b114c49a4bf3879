// The checkpoint's config files as typed, validated values (docs/model.md#config). Both hub layouts of config.json are
// accepted: text fields inside `text_config` (or, in older files, repeated at top level); rope fields in
// `rope_scaling` or `rope_parameters`, nested or top level; token ids at top level or in `text_config`.
// Nothing the model's shape depends on is defaulted: a missing field is a ConfigError naming the file and field
// (docs/model.md#config-layouts). Defaults exist only where upstream documents them: rope_theta 10000, the
// preprocessor class defaults (docs/model.md#preprocessor-config), tie_word_embeddings false, and generation settings.

import { ConfigError } from '@glm4v/core';
import { type ModelFolder, asFolder, readJsonFile } from './files/folder.js';

export interface TextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  ropeTheta: number;
  partialRotaryFactor: number;
  rotaryDim: number;
  mropeSection: [number, number, number];
}
export interface VisionConfig {
  depth: number;
  hiddenSize: number;
  numHeads: number;
  headDim: number;
  /** The merger's inner width (not the ViT MLP's). */
  intermediateSize: number;
  /** The downsample's output width AND the ViT MLP's inner width. */
  outHiddenSize: number;
  imageSize: number;
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
  inChannels: number;
  rmsNormEps: number;
}
export interface TokenIds {
  imageStart: number;
  imageEnd: number;
  videoStart: number;
  videoEnd: number;
  image: number;
  video: number;
  pad?: number;
  eos: number[];
}
export interface Glm4vConfig {
  text: TextConfig;
  vision: VisionConfig;
  tokens: TokenIds;
  tieWordEmbeddings: boolean;
}
export interface GenerationConfig {
  eosTokenIds: number[];
  padTokenId?: number;
  doSample: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  maxNewTokens?: number;
}
export interface PreprocessorConfig {
  minPixels: number;
  maxPixels: number;
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  rescaleFactor: number;
  doResize: boolean;
  doRescale: boolean;
  doNormalize: boolean;
  doConvertRgb: boolean;
}

type Obj = Record<string, unknown>;
/** Where a field may live: an object and the dotted path that names it in messages. */
interface Src {
  o: Obj;
  at: string;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A field's value and its dotted name, from the first source that has it (null counts as absent). */
function find(srcs: readonly Src[], key: string): { v: unknown; field: string } | undefined {
  for (const s of srcs) if (s.o[key] !== undefined && s.o[key] !== null) return { v: s.o[key], field: s.at + key };
  return undefined;
}

class Reader {
  constructor(readonly file: string) {}

  fail(field: string, msg: string): never {
    throw new ConfigError(`${this.file}: '${field}' ${msg}`);
  }

  req(srcs: readonly Src[], key: string): { v: unknown; field: string } {
    const f = find(srcs, key);
    if (!f)
      throw new ConfigError(`${this.file}: missing required field '${srcs.map((s) => s.at + key).join("' or '")}'`);
    return f;
  }

  int(f: { v: unknown; field: string }, min = 0): number {
    if (typeof f.v !== 'number' || !Number.isSafeInteger(f.v) || f.v < min)
      this.fail(f.field, `must be an integer ≥ ${min}, got ${JSON.stringify(f.v)}`);
    return f.v;
  }

  num(f: { v: unknown; field: string }, lo: number, hi = Infinity, loOpen = true): number {
    const ok = typeof f.v === 'number' && Number.isFinite(f.v) && (loOpen ? f.v > lo : f.v >= lo) && f.v <= hi;
    if (!ok) this.fail(f.field, `must be a number in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${JSON.stringify(f.v)}`);
    return f.v as number;
  }

  bool(f: { v: unknown; field: string }): boolean {
    if (typeof f.v !== 'boolean') this.fail(f.field, `must be true or false, got ${JSON.stringify(f.v)}`);
    return f.v;
  }

  ints(f: { v: unknown; field: string }, len?: number): number[] {
    const v = typeof f.v === 'number' ? [f.v] : f.v;
    if (!Array.isArray(v) || (len !== undefined && v.length !== len)) {
      this.fail(
        f.field,
        `must be ${len !== undefined ? `a list of ${len} integers` : 'an integer or a list of integers'}, got ${JSON.stringify(f.v)}`,
      );
    }
    return v.map((x, i) => this.int({ v: x, field: `${f.field}[${i}]` }));
  }

  nums3(f: { v: unknown; field: string }, positive: boolean): [number, number, number] {
    if (!Array.isArray(f.v) || f.v.length !== 3)
      this.fail(f.field, `must be a list of 3 numbers, got ${JSON.stringify(f.v)}`);
    const out = f.v.map((x, i) => {
      if (typeof x !== 'number' || !Number.isFinite(x) || (positive && x <= 0))
        this.fail(`${f.field}[${i}]`, `must be a ${positive ? 'positive' : 'finite'} number, got ${JSON.stringify(x)}`);
      return x;
    });
    return out as [number, number, number];
  }

  /** An optional field: undefined when absent or null. */
  opt<T>(srcs: readonly Src[], key: string, conv: (f: { v: unknown; field: string }) => T): T | undefined {
    const f = find(srcs, key);
    return f ? conv(f) : undefined;
  }
}

function root(json: unknown, file: string): Obj {
  if (!isObj(json))
    throw new ConfigError(
      `${file}: must hold a JSON object, got ${Array.isArray(json) ? 'an array' : JSON.stringify(json)}`,
    );
  return json;
}

function nested(r: Reader, top: Obj, key: string, required: boolean): Obj | undefined {
  const v = top[key];
  if (v === undefined || v === null) {
    if (required) throw new ConfigError(`${r.file}: missing required field '${key}'`);
    return undefined;
  }
  if (!isObj(v)) r.fail(key, `must be an object, got ${JSON.stringify(v)}`);
  return v;
}

function parseText(r: Reader, top: Obj, tc: Obj | undefined): TextConfig {
  const T: Src[] = [...(tc ? [{ o: tc, at: 'text_config.' }] : []), { o: top, at: '' }];
  const get = (key: string, min = 1) => r.int(r.req(T, key), min);
  const hiddenSize = get('hidden_size');
  const numHeads = get('num_attention_heads');
  const numKvHeads = get('num_key_value_heads');
  if (hiddenSize % numHeads !== 0)
    r.fail(`${T[0].at}hidden_size`, `(${hiddenSize}) must be divisible by num_attention_heads (${numHeads})`);
  if (numHeads % numKvHeads !== 0)
    r.fail(`${T[0].at}num_attention_heads`, `(${numHeads}) must be divisible by num_key_value_heads (${numKvHeads})`);
  const headDim = r.opt(T, 'head_dim', (f) => r.int(f, 1)) ?? hiddenSize / numHeads;

  // Rope fields: directly in text_config / top level, or inside rope_parameters / rope_scaling of either.
  const R: Src[] = [];
  for (const s of T) {
    R.push(s);
    for (const k of ['rope_parameters', 'rope_scaling'])
      if (isObj(s.o[k])) R.push({ o: s.o[k] as Obj, at: `${s.at}${k}.` });
  }
  const ropeType = find(R, 'rope_type') ?? find(R, 'type');
  if (ropeType && ropeType.v !== 'default' && ropeType.v !== 'mrope')
    r.fail(ropeType.field, `is ${JSON.stringify(ropeType.v)}; only the default (M-)RoPE is supported`);
  const ropeTheta = r.opt(R, 'rope_theta', (f) => r.num(f, 0)) ?? 10000;
  const partialRotaryFactor = r.num(r.req(R, 'partial_rotary_factor'), 0, 1);
  const rotaryDim = headDim * partialRotaryFactor;
  if (!Number.isInteger(rotaryDim) || rotaryDim % 2 !== 0) {
    r.fail(
      find(R, 'partial_rotary_factor')!.field,
      `(${partialRotaryFactor}) times head_dim (${headDim}) must be an even integer, got ${rotaryDim}`,
    );
  }
  const ms = r.req(R, 'mrope_section');
  const mropeSection = r.ints(ms, 3) as [number, number, number];
  const sum = mropeSection[0] + mropeSection[1] + mropeSection[2];
  if (sum * 2 !== rotaryDim)
    r.fail(
      ms.field,
      `[${mropeSection.join(', ')}] sums to ${sum}, expected half the rotary dims (${rotaryDim}/2 = ${rotaryDim / 2})`,
    );
  return {
    vocabSize: get('vocab_size'),
    hiddenSize,
    intermediateSize: get('intermediate_size'),
    numLayers: get('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: r.num(r.req(T, 'rms_norm_eps'), 0, 1),
    maxPositionEmbeddings: get('max_position_embeddings'),
    ropeTheta,
    partialRotaryFactor,
    rotaryDim,
    mropeSection,
  };
}

function parseVision(r: Reader, vc: Obj): VisionConfig {
  const V: Src[] = [{ o: vc, at: 'vision_config.' }];
  const get = (key: string) => r.int(r.req(V, key), 1);
  const hiddenSize = get('hidden_size');
  const numHeads = get('num_heads');
  if (hiddenSize % numHeads !== 0)
    r.fail('vision_config.hidden_size', `(${hiddenSize}) must be divisible by vision_config.num_heads (${numHeads})`);
  const imageSize = get('image_size');
  const patchSize = get('patch_size');
  if (imageSize % patchSize !== 0)
    r.fail('vision_config.image_size', `(${imageSize}) must be a multiple of vision_config.patch_size (${patchSize})`);
  const spatialMergeSize = get('spatial_merge_size');
  // The downsample conv weight is permuted as 2×2 windows (docs/model.md#load-time-layout) and the patch order (#patchify) assumes them.
  if (spatialMergeSize !== 2)
    r.fail(
      'vision_config.spatial_merge_size',
      `must be 2 (the downsample runs on 2×2 windows), got ${spatialMergeSize}`,
    );
  return {
    depth: get('depth'),
    hiddenSize,
    numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize: get('intermediate_size'),
    outHiddenSize: get('out_hidden_size'),
    imageSize,
    patchSize,
    temporalPatchSize: get('temporal_patch_size'),
    spatialMergeSize,
    inChannels: get('in_channels'),
    rmsNormEps: r.num(r.req(V, 'rms_norm_eps'), 0, 1),
  };
}

const TOKEN_KEYS = {
  imageStart: 'image_start_token_id',
  imageEnd: 'image_end_token_id',
  videoStart: 'video_start_token_id',
  videoEnd: 'video_end_token_id',
  image: 'image_token_id',
  video: 'video_token_id',
} as const;

function parseTokens(r: Reader, top: Obj, tc: Obj | undefined, vocab: number): TokenIds {
  const S: Src[] = [{ o: top, at: '' }, ...(tc ? [{ o: tc, at: 'text_config.' }] : [])];
  const id = (f: { v: unknown; field: string }) => {
    const v = r.int(f);
    if (v >= vocab) r.fail(f.field, `(${v}) is outside the vocabulary of ${vocab} tokens`);
    return v;
  };
  const out: Partial<TokenIds> = {};
  for (const [k, key] of Object.entries(TOKEN_KEYS) as [keyof typeof TOKEN_KEYS, string][]) {
    out[k] = id(r.req(S, key));
    const other = tc && top[key] !== undefined && top[key] !== null ? tc[key] : undefined;
    if (other !== undefined && other !== null && other !== out[k])
      r.fail(`text_config.${key}`, `(${JSON.stringify(other)}) disagrees with the top-level '${key}' (${out[k]})`);
  }
  const eos = find(S, 'eos_token_id');
  return {
    ...(out as Omit<TokenIds, 'eos' | 'pad'>),
    pad: r.opt(S, 'pad_token_id', id),
    eos: eos ? r.ints(eos).map((v, i) => id({ v, field: `${eos.field}[${i}]` })) : [],
  };
}

/** config.json → Glm4vConfig. `eos` is empty when config.json names none (readConfigs then takes generation_config's). */
export function parseModelConfig(json: unknown, file: string): Glm4vConfig {
  const r = new Reader(file);
  const top = root(json, file);
  const tc = nested(r, top, 'text_config', false);
  const vc = nested(r, top, 'vision_config', true)!;
  const text = parseText(r, top, tc);
  const vision = parseVision(r, vc);
  if (vision.outHiddenSize !== text.hiddenSize) {
    // Image features overwrite rows of the text embeddings, so they must be as wide.
    const textField = find([...(tc ? [{ o: tc, at: 'text_config.' }] : []), { o: top, at: '' }], 'hidden_size')!.field;
    r.fail(
      'vision_config.out_hidden_size',
      `(${vision.outHiddenSize}) must equal '${textField}' (${text.hiddenSize}): image features replace text embedding rows`,
    );
  }
  const tie = r.opt([{ o: top, at: '' }, ...(tc ? [{ o: tc, at: 'text_config.' }] : [])], 'tie_word_embeddings', (f) =>
    r.bool(f),
  );
  return { text, vision, tokens: parseTokens(r, top, tc, text.vocabSize), tieWordEmbeddings: tie ?? false };
}

/** generation_config.json → GenerationConfig (do_sample defaults to false, as in transformers). */
export function parseGenerationConfig(json: unknown, file: string): GenerationConfig {
  const r = new Reader(file);
  const S: Src[] = [{ o: root(json, file), at: '' }];
  return {
    eosTokenIds: r.opt(S, 'eos_token_id', (f) => r.ints(f)) ?? [],
    padTokenId: r.opt(S, 'pad_token_id', (f) => r.int(f)),
    doSample: r.opt(S, 'do_sample', (f) => r.bool(f)) ?? false,
    temperature: r.opt(S, 'temperature', (f) => r.num(f, 0, Infinity, false)),
    topK: r.opt(S, 'top_k', (f) => r.int(f)),
    topP: r.opt(S, 'top_p', (f) => r.num(f, 0, 1)),
    repetitionPenalty: r.opt(S, 'repetition_penalty', (f) => r.num(f, 0)),
    maxNewTokens: r.opt(S, 'max_new_tokens', (f) => r.int(f, 1)),
  };
}

/** The processor class defaults (docs/model.md#preprocessor-config): `size` bounds are pixel counts. */
export const PREPROCESSOR_DEFAULTS: Readonly<Record<'image' | 'video', Readonly<PreprocessorConfig>>> = (() => {
  const common = {
    patchSize: 14,
    temporalPatchSize: 2,
    mergeSize: 2,
    imageMean: [0.48145466, 0.4578275, 0.40821073] as [number, number, number],
    imageStd: [0.26862954, 0.26130258, 0.27577711] as [number, number, number],
    rescaleFactor: 1 / 255,
    doResize: true,
    doRescale: true,
    doNormalize: true,
    doConvertRgb: true,
  };
  return Object.freeze({
    image: Object.freeze({ minPixels: 12544, maxPixels: 11760000, ...common }),
    video: Object.freeze({ minPixels: 12544, maxPixels: 47040000, ...common }),
  });
})();

/** preprocessor_config.json / video_preprocessor_config.json → PreprocessorConfig, class defaults for absent fields. */
export function parsePreprocessorConfig(json: unknown, file: string, kind: 'image' | 'video'): PreprocessorConfig {
  const r = new Reader(file);
  const top = root(json, file);
  const d = PREPROCESSOR_DEFAULTS[kind];
  const S: Src[] = [{ o: top, at: '' }];
  const size = nested(r, top, 'size', false);
  // Pixel bounds: size.{shortest,longest}_edge (Glm4v), or min_pixels/max_pixels (Qwen2-VL style) in size or at top.
  const P: Src[] = [...(size ? [{ o: size, at: 'size.' }] : []), { o: top, at: '' }];
  const minPixels =
    r.opt(P, 'shortest_edge', (f) => r.int(f, 1)) ?? r.opt(P, 'min_pixels', (f) => r.int(f, 1)) ?? d.minPixels;
  const maxPixels =
    r.opt(P, 'longest_edge', (f) => r.int(f, 1)) ?? r.opt(P, 'max_pixels', (f) => r.int(f, 1)) ?? d.maxPixels;
  if (minPixels > maxPixels)
    r.fail(size ? 'size' : 'min_pixels', `gives a minimum of ${minPixels} pixels above the maximum of ${maxPixels}`);
  const bool = (key: string, dflt: boolean) => r.opt(S, key, (f) => r.bool(f)) ?? dflt;
  return {
    minPixels,
    maxPixels,
    patchSize: r.opt(S, 'patch_size', (f) => r.int(f, 1)) ?? d.patchSize,
    temporalPatchSize: r.opt(S, 'temporal_patch_size', (f) => r.int(f, 1)) ?? d.temporalPatchSize,
    mergeSize: r.opt(S, 'merge_size', (f) => r.int(f, 1)) ?? d.mergeSize,
    imageMean: r.opt(S, 'image_mean', (f) => r.nums3(f, false)) ?? [...d.imageMean],
    imageStd: r.opt(S, 'image_std', (f) => r.nums3(f, true)) ?? [...d.imageStd],
    rescaleFactor: r.opt(S, 'rescale_factor', (f) => r.num(f, 0)) ?? d.rescaleFactor,
    doResize: bool('do_resize', d.doResize),
    doRescale: bool('do_rescale', d.doRescale),
    doNormalize: bool('do_normalize', d.doNormalize),
    doConvertRgb: bool('do_convert_rgb', d.doConvertRgb),
  };
}

/** The preprocessor must cut patches the way the vision tower was built for. */
function checkAgainstVision(p: PreprocessorConfig, v: VisionConfig, file: string): void {
  const pairs: [string, number, string, number][] = [
    ['patch_size', p.patchSize, 'vision_config.patch_size', v.patchSize],
    ['temporal_patch_size', p.temporalPatchSize, 'vision_config.temporal_patch_size', v.temporalPatchSize],
    ['merge_size', p.mergeSize, 'vision_config.spatial_merge_size', v.spatialMergeSize],
  ];
  for (const [k, got, vk, want] of pairs) {
    if (got !== want) throw new ConfigError(`${file}: '${k}' is ${got}, but config.json '${vk}' is ${want}`);
  }
}

/**
 * All configs of a model folder. config.json is required; generation_config.json, preprocessor_config.json and
 * video_preprocessor_config.json are optional (absent: eos/pad from config.json and do_sample false; the processor
 * class defaults). EOS ids missing from one of config.json / generation_config.json are taken from the other.
 */
export async function readConfigs(
  dir: string | ModelFolder,
): Promise<{ model: Glm4vConfig; generation: GenerationConfig; image: PreprocessorConfig; video: PreprocessorConfig }> {
  const folder = asFolder(dir);
  const names = {
    model: 'config.json',
    generation: 'generation_config.json',
    image: 'preprocessor_config.json',
    video: 'video_preprocessor_config.json',
  };
  const files = {
    model: folder.path(names.model),
    generation: folder.path(names.generation),
    image: folder.path(names.image),
    video: folder.path(names.video),
  };
  let model = parseModelConfig(await readJsonFile(folder, names.model, true), files.model);
  const genJson = await readJsonFile(folder, names.generation, false);
  let generation: GenerationConfig =
    genJson === undefined
      ? { eosTokenIds: [...model.tokens.eos], padTokenId: model.tokens.pad, doSample: false }
      : parseGenerationConfig(genJson, files.generation);
  if (model.tokens.eos.length === 0)
    model = { ...model, tokens: { ...model.tokens, eos: [...generation.eosTokenIds] } };
  if (generation.eosTokenIds.length === 0) generation = { ...generation, eosTokenIds: [...model.tokens.eos] };
  if (model.tokens.eos.length === 0)
    throw new ConfigError(`${files.model}: missing required field 'eos_token_id' (not in ${files.generation} either)`);
  const image = parsePreprocessorConfig((await readJsonFile(folder, names.image, false)) ?? {}, files.image, 'image');
  const video = parsePreprocessorConfig((await readJsonFile(folder, names.video, false)) ?? {}, files.video, 'video');
  checkAgainstVision(image, model.vision, files.image);
  checkAgainstVision(video, model.vision, files.video);
  return { model, generation, image, video };
}
