// A tiny random-weight GLM-4.1V checkpoint in the real layout: config files, a small byte-level BPE tokenizer with
// the model's special tokens, our chat template, bf16 weights from a seeded generator, and a sample image. It is
// what `glm4v-run --demo` runs when no real checkpoint is at hand (the weights are random: the text is noise),
// and what tests use to exercise the whole pipeline.

import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { f32ToBf16 } from '@glm4v/core';
import { writeSafetensors } from './checkpoint/writer.js';
import { parseModelConfig } from './config.js';
import { GLM41V_9B_CONFIG_JSON, GLM41V_TOKEN_IDS } from './model/glm41v-9b.js';
import { checkpointShapes } from './model/tensor-shapes.js';
import { writeTinyTokenizer } from './prompt/tiny-tokenizer.js';

/** Bumped whenever the demo checkpoint's contents change, so cached copies are rebuilt. */
export const DEMO_VERSION = 1;
export const DEMO_QUESTION = 'What shapes and colours are in this picture?';

const VOCAB = 512;
// Special ids follow the conformance fixtures' rule: real id − 151552 + vocab (docs/model.md#special-tokens).
const id = (real: number) => real - GLM41V_9B_CONFIG_JSON.text_config.vocab_size + VOCAB;
const TOKENS = Object.fromEntries(
  Object.entries(GLM41V_TOKEN_IDS).map(([k, v]) => [k, Array.isArray(v) ? v.map(id) : id(v)]),
) as typeof GLM41V_TOKEN_IDS;

export const TINY_CONFIG_JSON = {
  architectures: ['Glm4vForConditionalGeneration'],
  model_type: 'glm4v',
  ...TOKENS,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  text_config: {
    vocab_size: VOCAB,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: 'silu',
    attention_bias: true,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 4096,
    rope_theta: 10000,
    partial_rotary_factor: 0.5,
    rope_scaling: { rope_type: 'default', mrope_section: [1, 2, 1] },
    ...TOKENS,
  },
  vision_config: {
    depth: 2,
    hidden_size: 32,
    num_heads: 4,
    attention_bias: false,
    hidden_act: 'silu',
    intermediate_size: 96,
    out_hidden_size: 64,
    image_size: 98,
    patch_size: 14,
    temporal_patch_size: 2,
    spatial_merge_size: 2,
    in_channels: 3,
    rms_norm_eps: 1e-5,
  },
};

const GENERATION_CONFIG = {
  eos_token_id: TOKENS.eos_token_id,
  pad_token_id: TOKENS.pad_token_id,
  do_sample: true,
  temperature: 0.8,
  top_k: 40,
  top_p: 0.95,
  repetition_penalty: 1.1,
  max_new_tokens: 48,
};

// The real processor's constants, with a lower pixel budget so a demo image stays a few hundred patches.
const PREPROCESSOR_CONFIG = {
  size: { shortest_edge: 12544, longest_edge: 200704 },
  do_resize: true,
  resample: 3,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
  do_convert_rgb: true,
  patch_size: 14,
  temporal_patch_size: 2,
  merge_size: 2,
  image_processor_type: 'Glm4vImageProcessor',
};

const SAMPLE_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">
<rect width="320" height="240" fill="#f4efe6"/><circle cx="100" cy="120" r="60" fill="#d33a2c"/>
<rect x="180" y="60" width="100" height="100" fill="#2c5fd3"/><polygon points="230,180 270,230 190,230" fill="#2f9e44"/></svg>`;

/** mulberry32 → normal(0, std) as bf16 bits: deterministic weights with no dependency on the GPU. */
function bf16Normal(n: number, seed: number, std: number): Uint16Array {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++)
    out[i] = f32ToBf16(Math.sqrt(-2 * Math.log(Math.max(next(), 1e-12))) * Math.cos(2 * Math.PI * next()) * std);
  return out;
}

export interface TinyCheckpointOptions {
  /** Seed of the random weights (default 1). Same seed, same bytes. */
  seed?: number;
  /** Chosen weights (bf16 bits) for the tensors it returns something for; the others are random. */
  weights?: (name: string, shape: readonly number[]) => Uint16Array | undefined;
}

/** Writes the tiny checkpoint into `dir` (created). */
export async function makeTinyCheckpoint(dir: string, opts: TinyCheckpointOptions = {}): Promise<void> {
  const seed = opts.seed ?? 1;
  await mkdir(dir, { recursive: true });
  const config = parseModelConfig(TINY_CONFIG_JSON, 'tiny config');
  const tensors = checkpointShapes(config).map(({ name, shape }, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    // norms start at 1 and biases at 0, as the reference initialises them; everything else N(0, 0.02²)
    const isNorm = /norm[^.]*\.weight$/.test(name) && shape.length === 1;
    const data =
      opts.weights?.(name, shape) ??
      (isNorm
        ? new Uint16Array(n).fill(f32ToBf16(1))
        : name.endsWith('.bias')
          ? new Uint16Array(n)
          : bf16Normal(n, seed * 1000 + i, 0.02));
    return { name, dtype: 'BF16' as const, shape, data };
  });
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, {
    format: 'pt',
    note: opts.weights ? 'chosen weights: glm4v-runtime tests' : 'random weights: glm4v-runtime demo',
  });
  const json = (o: unknown) => `${JSON.stringify(o, null, 2)}\n`;
  await writeFile(join(dir, 'config.json'), json(TINY_CONFIG_JSON));
  await writeFile(join(dir, 'generation_config.json'), json(GENERATION_CONFIG));
  await writeFile(join(dir, 'preprocessor_config.json'), json(PREPROCESSOR_CONFIG));
  await writeTinyTokenizer(dir, VOCAB);
  await sharp(Buffer.from(SAMPLE_SVG)).png().toFile(join(dir, 'sample.png'));
  await writeFile(
    join(dir, 'README.md'),
    `Tiny GLM-4.1V checkpoint with ${opts.weights ? 'CHOSEN' : 'RANDOM'} weights (glm4v-runtime demo v${DEMO_VERSION}, seed ${seed}).\n`,
  );
}

/** The demo checkpoint's folder ($GLM4V_CACHE or ~/.cache/glm4v-runtime), made once and reused. */
export async function demoCheckpoint(): Promise<string> {
  const root = process.env.GLM4V_CACHE ?? join(homedir() || tmpdir(), '.cache', 'glm4v-runtime');
  const dir = join(root, `demo-v${DEMO_VERSION}`);
  const exists = await stat(join(dir, 'README.md')).then(
    () => true,
    () => false,
  );
  if (exists) return dir;
  // Built beside and renamed into place, so an interrupted build never leaves a half checkpoint behind.
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await makeTinyCheckpoint(tmp);
  await rename(tmp, dir).catch(async (e) => {
    await rm(tmp, { recursive: true, force: true });
    if (
      !(await stat(join(dir, 'README.md')).then(
        () => true,
        () => false,
      ))
    )
      throw e; // lost a race only if the winner finished
  });
  return dir;
}
