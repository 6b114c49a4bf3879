// The real GLM-4.1V-9B-Thinking config.json (docs/model.md#config), for building the model at its real shapes with random
// weights (bench/model) when no checkpoint is at hand. Parsed by the same code as a checkpoint's file.

import { type Glm4vConfig, parseModelConfig } from '../config.js';

/** The real checkpoint's special token ids (docs/model.md#token-ids, #special-tokens). */
export const GLM41V_TOKEN_IDS = {
  image_start_token_id: 151339,
  image_end_token_id: 151340,
  video_start_token_id: 151341,
  video_end_token_id: 151342,
  image_token_id: 151343,
  video_token_id: 151344,
  pad_token_id: 151329,
  eos_token_id: [151329, 151336, 151338, 151348],
};

export const GLM41V_9B_CONFIG_JSON = {
  architectures: ['Glm4vForConditionalGeneration'],
  model_type: 'glm4v',
  ...GLM41V_TOKEN_IDS,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  text_config: {
    model_type: 'glm4v_text',
    vocab_size: 151552,
    hidden_size: 4096,
    intermediate_size: 13696,
    num_hidden_layers: 40,
    num_attention_heads: 32,
    num_key_value_heads: 2,
    hidden_act: 'silu',
    attention_bias: true,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 65536,
    rope_theta: 10000,
    partial_rotary_factor: 0.5,
    rope_scaling: { rope_type: 'default', mrope_section: [8, 12, 12] },
    ...GLM41V_TOKEN_IDS,
  },
  vision_config: {
    model_type: 'glm4v',
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
  },
};

/** The real config, optionally with fewer decoder layers (and vision blocks) to fit a small machine. */
export function glm41v9bConfig(opts: { layers?: number; visionDepth?: number } = {}): Glm4vConfig {
  const json = structuredClone(GLM41V_9B_CONFIG_JSON);
  if (opts.layers !== undefined) json.text_config.num_hidden_layers = opts.layers;
  if (opts.visionDepth !== undefined) json.vision_config.depth = opts.visionDepth;
  return parseModelConfig(json, 'GLM-4.1V-9B-Thinking config.json (built in)');
}
