import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@glm4v/core';
import {
  PREPROCESSOR_DEFAULTS,
  parseGenerationConfig,
  parseModelConfig,
  parsePreprocessorConfig,
  readConfigs,
} from './config.js';

const FIXTURES = fileURLToPath(new URL('../../../conformance/fixtures/', import.meta.url));

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-config-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

// The real text/vision values (docs/model.md#config), in the July-2025 layout: text fields repeated at top level, rope fields
// inside text_config with rope_scaling.
const TEXT = {
  vocab_size: 151552,
  hidden_size: 4096,
  intermediate_size: 13696,
  num_hidden_layers: 40,
  num_attention_heads: 32,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 65536,
  hidden_act: 'silu',
  attention_bias: true,
};
const VISION = {
  depth: 24,
  hidden_size: 1536,
  num_heads: 12,
  attention_bias: false,
  hidden_act: 'silu',
  intermediate_size: 13696,
  out_hidden_size: 4096,
  image_size: 336,
  patch_size: 14,
  temporal_patch_size: 2,
  spatial_merge_size: 2,
  in_channels: 3,
  rms_norm_eps: 1e-5,
};
const TOKENS = {
  image_start_token_id: 151339,
  image_end_token_id: 151340,
  video_start_token_id: 151341,
  video_end_token_id: 151342,
  image_token_id: 151343,
  video_token_id: 151344,
};
const EOS = [151329, 151336, 151338, 151348];
const july = () => ({
  architectures: ['Glm4vForConditionalGeneration'],
  model_type: 'glm4v',
  ...TEXT,
  ...TOKENS,
  tie_word_embeddings: false,
  text_config: {
    ...TEXT,
    partial_rotary_factor: 0.5,
    rope_theta: 10000,
    rope_scaling: { type: 'default', mrope_section: [8, 12, 12] },
    eos_token_id: EOS,
    pad_token_id: 151329,
  },
  vision_config: { ...VISION },
});
// The v5 layout: only token ids at top level; rope fields in text_config.rope_parameters.
const v5 = () => ({
  model_type: 'glm4v',
  ...TOKENS,
  text_config: {
    ...TEXT,
    rope_parameters: {
      rope_type: 'default',
      rope_theta: 10000,
      partial_rotary_factor: 0.5,
      mrope_section: [8, 12, 12],
    },
    eos_token_id: EOS,
  },
  vision_config: { ...VISION },
});

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseModelConfig', () => {
  it('reads the real values from both hub layouts identically', () => {
    const a = parseModelConfig(july(), 'config.json');
    const b = parseModelConfig(v5(), 'config.json');
    expect(a.text).toEqual({
      vocabSize: 151552,
      hiddenSize: 4096,
      intermediateSize: 13696,
      numLayers: 40,
      numHeads: 32,
      numKvHeads: 2,
      headDim: 128,
      rmsNormEps: 1e-5,
      maxPositionEmbeddings: 65536,
      ropeTheta: 10000,
      partialRotaryFactor: 0.5,
      rotaryDim: 64,
      mropeSection: [8, 12, 12],
    });
    expect(a.vision).toEqual({
      depth: 24,
      hiddenSize: 1536,
      numHeads: 12,
      headDim: 128,
      intermediateSize: 13696,
      outHiddenSize: 4096,
      imageSize: 336,
      patchSize: 14,
      temporalPatchSize: 2,
      spatialMergeSize: 2,
      inChannels: 3,
      rmsNormEps: 1e-5,
    });
    expect(a.tokens).toEqual({
      imageStart: 151339,
      imageEnd: 151340,
      videoStart: 151341,
      videoEnd: 151342,
      image: 151343,
      video: 151344,
      pad: 151329,
      eos: EOS,
    });
    expect(a.tieWordEmbeddings).toBe(false);
    expect(b.text).toEqual(a.text);
    expect(b.vision).toEqual(a.vision);
    expect(b.tokens).toEqual({ ...a.tokens, pad: undefined });
  });

  it('finds rope fields in any of their places, with rope_theta defaulting to 10000', () => {
    const c = v5();
    const rp = c.text_config.rope_parameters as Record<string, unknown>;
    delete rp.rope_theta;
    (c as Record<string, unknown>).rope_scaling = { mrope_section: [8, 12, 12] };
    expect(parseModelConfig(c, 'c.json').text.ropeTheta).toBe(10000);
    const d = july();
    delete (d.text_config as Record<string, unknown>).partial_rotary_factor;
    (d.text_config.rope_scaling as Record<string, unknown>).partial_rotary_factor = 0.25;
    (d.text_config.rope_scaling as Record<string, unknown>).mrope_section = [4, 6, 6];
    expect(parseModelConfig(d, 'c.json').text).toMatchObject({
      partialRotaryFactor: 0.25,
      rotaryDim: 32,
      mropeSection: [4, 6, 6],
    });
  });

  it('refuses a config without partial_rotary_factor instead of defaulting it', () => {
    const c = v5();
    delete (c.text_config.rope_parameters as Record<string, unknown>).partial_rotary_factor;
    expect(configError(() => parseModelConfig(c, '/m/config.json')).message).toBe(
      "/m/config.json: missing required field 'text_config.partial_rotary_factor' or 'text_config.rope_parameters.partial_rotary_factor' or 'partial_rotary_factor'",
    );
  });

  const bad: [string, (c: ReturnType<typeof july>) => void, RegExp][] = [
    [
      'hidden size not divisible by the heads',
      (c) => (c.text_config.num_attention_heads = 30),
      /'text_config.hidden_size' \(4096\) must be divisible by num_attention_heads \(30\)/,
    ],
    [
      'heads not divisible by the kv heads',
      (c) => (c.text_config.num_key_value_heads = 3),
      /'text_config.num_attention_heads' \(32\) must be divisible by num_key_value_heads \(3\)/,
    ],
    [
      'mrope sections not summing to half the rotary dims',
      (c) => (c.text_config.rope_scaling.mrope_section = [8, 12, 16]),
      /'text_config.rope_scaling.mrope_section' \[8, 12, 16\] sums to 36, expected half the rotary dims \(64\/2 = 32\)/,
    ],
    [
      'mrope sections of the wrong length',
      (c) => (c.text_config.rope_scaling.mrope_section = [16, 16]),
      /'text_config.rope_scaling.mrope_section' must be a list of 3 integers/,
    ],
    [
      'a rotary dim that is not an even integer',
      (c) => (c.text_config.partial_rotary_factor = 0.3),
      /'text_config.partial_rotary_factor' \(0.3\) times head_dim \(128\) must be an even integer/,
    ],
    [
      'an unsupported rope type',
      (c) => (c.text_config.rope_scaling.type = 'yarn'),
      /'text_config.rope_scaling.type' is "yarn"; only the default \(M-\)RoPE is supported/,
    ],
    [
      'a missing token id',
      (c) => delete (c as Record<string, unknown>).image_token_id,
      /missing required field 'image_token_id' or 'text_config.image_token_id'/,
    ],
    [
      'a token id outside the vocabulary',
      (c) => (c.video_end_token_id = 151552),
      /'video_end_token_id' \(151552\) is outside the vocabulary of 151552 tokens/,
    ],
    [
      'token ids that disagree between layouts',
      (c) => ((c.text_config as Record<string, unknown>).image_token_id = 5),
      /'text_config.image_token_id' \(5\) disagrees with the top-level 'image_token_id' \(151343\)/,
    ],
    [
      'a fractional size',
      (c) => (c.text_config.intermediate_size = 13696.5),
      /'text_config.intermediate_size' must be an integer ≥ 1, got 13696.5/,
    ],
    ['a negative size', (c) => (c.vision_config.depth = -1), /'vision_config.depth' must be an integer ≥ 1, got -1/],
    [
      'a size given as a string',
      (c) => ((c.text_config as Record<string, unknown>).num_hidden_layers = '40'),
      /'text_config.num_hidden_layers' must be an integer ≥ 1, got "40"/,
    ],
    [
      'a missing text field',
      (c) => {
        delete (c.text_config as Record<string, unknown>).max_position_embeddings;
        delete (c as Record<string, unknown>).max_position_embeddings;
      },
      /missing required field 'text_config.max_position_embeddings' or 'max_position_embeddings'/,
    ],
    [
      'a missing vision field',
      (c) => delete (c.vision_config as Record<string, unknown>).out_hidden_size,
      /missing required field 'vision_config.out_hidden_size'/,
    ],
    [
      'no vision_config',
      (c) => delete (c as Record<string, unknown>).vision_config,
      /missing required field 'vision_config'/,
    ],
    [
      'vision width not divisible by its heads',
      (c) => (c.vision_config.num_heads = 10),
      /'vision_config.hidden_size' \(1536\) must be divisible by vision_config.num_heads \(10\)/,
    ],
    [
      'image features narrower than the text rows',
      (c) => (c.vision_config.out_hidden_size = 2048),
      /'vision_config.out_hidden_size' \(2048\) must equal 'text_config.hidden_size' \(4096\): image features replace text embedding rows/,
    ],
    [
      'a spatial merge other than 2×2',
      (c) => (c.vision_config.spatial_merge_size = 3),
      /'vision_config.spatial_merge_size' must be 2 \(the downsample runs on 2×2 windows\), got 3/,
    ],
    [
      'an image size not a multiple of the patch',
      (c) => (c.vision_config.image_size = 330),
      /'vision_config.image_size' \(330\) must be a multiple of vision_config.patch_size \(14\)/,
    ],
    [
      'a bad eps',
      (c) => (c.text_config.rms_norm_eps = 0),
      /'text_config.rms_norm_eps' must be a number in \(0, 1\], got 0/,
    ],
    [
      'a bad eos list',
      (c) => (c.text_config.eos_token_id = [1, -2] as number[]),
      /'text_config.eos_token_id\[1\]' must be an integer ≥ 0, got -2/,
    ],
    [
      'a tie flag that is not boolean',
      (c) => ((c as Record<string, unknown>).tie_word_embeddings = 'no'),
      /'tie_word_embeddings' must be true or false/,
    ],
  ];
  for (const [what, mutate, message] of bad) {
    it(`refuses ${what}`, () => {
      const c = july();
      mutate(c);
      const e = configError(() => parseModelConfig(c, '/m/config.json'));
      expect(e.message.startsWith('/m/config.json: ')).toBe(true);
      expect(e.message).toMatch(message);
    });
  }

  it('names the top-level hidden_size when there is no text_config', () => {
    const { text_config: tc, ...flat } = july();
    const c = {
      ...flat,
      partial_rotary_factor: 0.5,
      rope_scaling: tc.rope_scaling,
      eos_token_id: EOS,
      vision_config: { ...VISION, out_hidden_size: 1024 },
    };
    expect(configError(() => parseModelConfig(c, 'c.json')).message).toBe(
      "c.json: 'vision_config.out_hidden_size' (1024) must equal 'hidden_size' (4096): image features replace text embedding rows",
    );
    c.vision_config.out_hidden_size = 4096;
    expect(parseModelConfig(c, 'c.json').vision.outHiddenSize).toBe(4096);
  });

  it('refuses JSON that is not an object', () => {
    expect(configError(() => parseModelConfig([1], 'x.json')).message).toMatch(
      /x.json: must hold a JSON object, got an array/,
    );
  });
});

describe('generation and preprocessor configs', () => {
  it('parses generation settings and checks their ranges', () => {
    expect(
      parseGenerationConfig(
        {
          eos_token_id: 7,
          pad_token_id: null,
          do_sample: true,
          temperature: 0.1,
          top_k: 2,
          top_p: 1e-5,
          repetition_penalty: 1.1,
          max_new_tokens: 8192,
        },
        'g.json',
      ),
    ).toEqual({
      eosTokenIds: [7],
      padTokenId: undefined,
      doSample: true,
      temperature: 0.1,
      topK: 2,
      topP: 1e-5,
      repetitionPenalty: 1.1,
      maxNewTokens: 8192,
    });
    expect(parseGenerationConfig({}, 'g.json')).toMatchObject({ eosTokenIds: [], doSample: false });
    expect(configError(() => parseGenerationConfig({ top_p: 1.5 }, 'g.json')).message).toMatch(
      /g.json: 'top_p' must be a number in \(0, 1\], got 1.5/,
    );
    expect(configError(() => parseGenerationConfig({ do_sample: 'yes' }, 'g.json')).message).toMatch(
      /'do_sample' must be true or false/,
    );
  });

  it('reads pixel bounds from size.{shortest,longest}_edge or min/max_pixels, defaults per kind', () => {
    expect(parsePreprocessorConfig({}, 'p.json', 'image')).toEqual(PREPROCESSOR_DEFAULTS.image);
    expect(parsePreprocessorConfig({}, 'p.json', 'video')).toMatchObject({ minPixels: 12544, maxPixels: 47040000 });
    expect(PREPROCESSOR_DEFAULTS.image).toMatchObject({
      minPixels: 12544,
      maxPixels: 11760000,
      rescaleFactor: 1 / 255,
      patchSize: 14,
      mergeSize: 2,
      temporalPatchSize: 2,
    });
    expect(
      parsePreprocessorConfig({ size: { shortest_edge: 12544, longest_edge: 9633792 } }, 'p.json', 'image'),
    ).toMatchObject({ minPixels: 12544, maxPixels: 9633792 });
    expect(parsePreprocessorConfig({ min_pixels: 3136, max_pixels: 12845056 }, 'p.json', 'image')).toMatchObject({
      minPixels: 3136,
      maxPixels: 12845056,
    });
    expect(
      configError(() => parsePreprocessorConfig({ size: { shortest_edge: 100, longest_edge: 50 } }, 'p.json', 'image'))
        .message,
    ).toMatch(/p.json: 'size' gives a minimum of 100 pixels above the maximum of 50/);
    expect(configError(() => parsePreprocessorConfig({ image_std: [0.2, 0, 0.3] }, 'p.json', 'image')).message).toMatch(
      /'image_std\[1\]' must be a positive number, got 0/,
    );
    expect(configError(() => parsePreprocessorConfig({ image_mean: [0.5, 0.5] }, 'p.json', 'image')).message).toMatch(
      /'image_mean' must be a list of 3 numbers/,
    );
    expect(configError(() => parsePreprocessorConfig({ size: 224 }, 'p.json', 'image')).message).toMatch(
      /'size' must be an object, got 224/,
    );
  });
});

describe('readConfigs', () => {
  for (const kind of ['f32', 'bf16']) {
    it(`reads the tiny-glm4v-${kind} fixture`, async () => {
      const c = await readConfigs(join(FIXTURES, `tiny-glm4v-${kind}`));
      expect(c.model.text).toEqual({
        vocabSize: 512,
        hiddenSize: 64,
        intermediateSize: 96,
        numLayers: 3,
        numHeads: 4,
        numKvHeads: 2,
        headDim: 16,
        rmsNormEps: 1e-5,
        maxPositionEmbeddings: 4096,
        ropeTheta: 10000,
        partialRotaryFactor: 0.5,
        rotaryDim: 8,
        mropeSection: [1, 2, 1],
      });
      expect(c.model.vision).toMatchObject({
        depth: 2,
        hiddenSize: 32,
        numHeads: 4,
        headDim: 8,
        intermediateSize: 96,
        outHiddenSize: 64,
        imageSize: 98,
      });
      expect(c.model.tokens).toEqual({
        imageStart: 299,
        imageEnd: 300,
        videoStart: 301,
        videoEnd: 302,
        image: 303,
        video: 304,
        pad: 289,
        eos: [289, 296, 298, 308],
      });
      expect(c.generation).toMatchObject({ eosTokenIds: [289, 296, 298, 308], padTokenId: 289, doSample: false });
      expect(c.image).toMatchObject({
        minPixels: 1568,
        maxPixels: 9633792,
        doConvertRgb: true,
        rescaleFactor: 0.00392156862745098,
      });
      expect(c.video).toEqual(PREPROCESSOR_DEFAULTS.video); // no video_preprocessor_config.json: the class defaults
    });
  }

  let nth = 0;
  async function folder(files: Record<string, unknown>): Promise<string> {
    const dir = join(tmp, `c${nth++}`);
    await mkdir(dir);
    for (const [name, v] of Object.entries(files))
      await writeFile(join(dir, name), typeof v === 'string' ? v : JSON.stringify(v));
    return dir;
  }

  it('fills EOS ids and generation defaults from whichever file has them', async () => {
    const c = v5();
    delete (c.text_config as Record<string, unknown>).eos_token_id;
    const dir = await folder({ 'config.json': c, 'generation_config.json': { eos_token_id: EOS, do_sample: true } });
    const r = await readConfigs(dir);
    expect(r.model.tokens.eos).toEqual(EOS);
    expect(r.generation.doSample).toBe(true);
    const only = await readConfigs(await folder({ 'config.json': july() }));
    expect(only.generation).toEqual({ eosTokenIds: EOS, padTokenId: 151329, doSample: false });
    expect(only.image).toEqual(PREPROCESSOR_DEFAULTS.image);
    await expect(readConfigs(await folder({ 'config.json': c }))).rejects.toThrow(
      /config.json: missing required field 'eos_token_id' \(not in .*generation_config.json either\)/,
    );
  });

  it('names the file that is missing, not JSON, or disagrees with the vision tower', async () => {
    const none = await folder({});
    await expect(readConfigs(none)).rejects.toThrow(new RegExp(`${join(none, 'config.json')}: cannot read`));
    const broken = await folder({ 'config.json': '{"text_config": ' });
    const e = await readConfigs(broken).catch((x) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(/config.json: invalid JSON/);
    const fixture = JSON.parse(await readFile(join(FIXTURES, 'tiny-glm4v-f32', 'preprocessor_config.json'), 'utf8'));
    const mism = await folder({
      'config.json': july(),
      'video_preprocessor_config.json': { ...fixture, patch_size: 16 },
    });
    await expect(readConfigs(mism)).rejects.toThrow(
      /video_preprocessor_config.json: 'patch_size' is 16, but config.json 'vision_config.patch_size' is 14/,
    );
    const badGen = await folder({ 'config.json': july(), 'generation_config.json': '{' });
    await expect(readConfigs(badGen)).rejects.toThrow(/generation_config.json: invalid JSON/);
  });
});
