// Every tensor a GLM-4.1V checkpoint holds for a given config, with its shape (docs/model.md#tensors), and which are the
// weights that may be quantised, by group (the linear layers', the embedding table). Used to write synthetic checkpoints (the
// demo, load benchmarks) and quantised ones; a test checks it against what the model's load asks for.

import type { Glm4vConfig } from '../config.js';
import type { QuantGroup } from './weight-source.js';

export interface TensorShape {
  name: string;
  shape: number[];
  /** Set for a weight that may be quantised (linear layers, the embedding table): the group whose format it takes. */
  quant?: QuantGroup;
}

export function decoderLayerShapes(c: Glm4vConfig, i: number): TensorShape[] {
  const t = c.text;
  const D = t.hiddenSize;
  const q = t.numHeads * t.headDim;
  const kv = t.numKvHeads * t.headDim;
  const p = `model.language_model.layers.${i}`;
  return [
    { name: `${p}.input_layernorm.weight`, shape: [D] },
    { name: `${p}.self_attn.q_proj.weight`, shape: [q, D], quant: 'text' },
    { name: `${p}.self_attn.q_proj.bias`, shape: [q] },
    { name: `${p}.self_attn.k_proj.weight`, shape: [kv, D], quant: 'text' },
    { name: `${p}.self_attn.k_proj.bias`, shape: [kv] },
    { name: `${p}.self_attn.v_proj.weight`, shape: [kv, D], quant: 'text' },
    { name: `${p}.self_attn.v_proj.bias`, shape: [kv] },
    { name: `${p}.self_attn.o_proj.weight`, shape: [D, q], quant: 'text' },
    { name: `${p}.post_self_attn_layernorm.weight`, shape: [D] },
    { name: `${p}.post_attention_layernorm.weight`, shape: [D] },
    { name: `${p}.mlp.gate_up_proj.weight`, shape: [2 * t.intermediateSize, D], quant: 'text' },
    { name: `${p}.mlp.down_proj.weight`, shape: [D, t.intermediateSize], quant: 'text' },
    { name: `${p}.post_mlp_layernorm.weight`, shape: [D] },
  ];
}

export function visionBlockShapes(c: Glm4vConfig, j: number): TensorShape[] {
  const v = c.vision;
  const D = v.hiddenSize;
  const F = v.outHiddenSize;
  const p = `model.visual.blocks.${j}`;
  return [
    { name: `${p}.norm1.weight`, shape: [D] },
    { name: `${p}.attn.qkv.weight`, shape: [3 * D, D], quant: 'vision' },
    { name: `${p}.attn.proj.weight`, shape: [D, D], quant: 'vision' },
    { name: `${p}.norm2.weight`, shape: [D] },
    { name: `${p}.mlp.gate_proj.weight`, shape: [F, D], quant: 'vision' },
    { name: `${p}.mlp.up_proj.weight`, shape: [F, D], quant: 'vision' },
    { name: `${p}.mlp.down_proj.weight`, shape: [D, F], quant: 'vision' },
  ];
}

/** The tensors outside the repeated blocks: embeddings, final norm, lm_head, the vision stem, downsample and merger. */
export function globalShapes(c: Glm4vConfig): TensorShape[] {
  const t = c.text;
  const v = c.vision;
  const D = v.hiddenSize;
  const O = v.outHiddenSize;
  const P = v.patchSize;
  const grid = v.imageSize / P;
  const m = v.spatialMergeSize;
  return [
    { name: 'model.language_model.embed_tokens.weight', shape: [t.vocabSize, t.hiddenSize], quant: 'text' },
    { name: 'model.language_model.norm.weight', shape: [t.hiddenSize] },
    { name: 'lm_head.weight', shape: [t.vocabSize, t.hiddenSize], quant: 'text' },
    { name: 'model.visual.patch_embed.proj.weight', shape: [D, v.inChannels, v.temporalPatchSize, P, P] },
    { name: 'model.visual.patch_embed.proj.bias', shape: [D] },
    { name: 'model.visual.post_conv_layernorm.weight', shape: [D] },
    { name: 'model.visual.embeddings.position_embedding.weight', shape: [grid * grid, D] },
    { name: 'model.visual.post_layernorm.weight', shape: [D] },
    { name: 'model.visual.downsample.weight', shape: [O, D, m, m] },
    { name: 'model.visual.downsample.bias', shape: [O] },
    { name: 'model.visual.merger.proj.weight', shape: [O, O], quant: 'vision' },
    { name: 'model.visual.merger.post_projection_norm.weight', shape: [O] },
    { name: 'model.visual.merger.post_projection_norm.bias', shape: [O] },
    { name: 'model.visual.merger.gate_proj.weight', shape: [v.intermediateSize, O], quant: 'vision' },
    { name: 'model.visual.merger.up_proj.weight', shape: [v.intermediateSize, O], quant: 'vision' },
    { name: 'model.visual.merger.down_proj.weight', shape: [O, v.intermediateSize], quant: 'vision' },
  ];
}

/** All tensors of the checkpoint, in a stable order. */
export function checkpointShapes(c: Glm4vConfig): TensorShape[] {
  const out = globalShapes(c);
  for (let i = 0; i < c.text.numLayers; i++) out.push(...decoderLayerShapes(c, i));
  for (let j = 0; j < c.vision.depth; j++) out.push(...visionBlockShapes(c, j));
  return out;
}
