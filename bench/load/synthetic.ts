// A synthetic GLM-4.1V-9B checkpoint: the real tensor names and shapes (spec §3.4) for a subset of the layers,
// random finite bf16 values, split into shards with a `model.safetensors.index.json`, plus a config.json whose
// layer counts match what was written. Data is generated piece by piece, so writing 6 GB needs ~64 MiB of memory.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rng } from '@glm4v/core/testing';
import { writeSafetensors, type TensorStream } from '@glm4v/runtime/internal';

export interface Spec {
  name: string;
  shape: number[];
}

const bytes = (s: Spec) => s.shape.reduce((a, b) => a * b, 1) * 2;
const sum = (specs: Spec[]) => specs.reduce((a, s) => a + bytes(s), 0);

export function textLayer(i: number): Spec[] {
  const p = `model.language_model.layers.${i}`;
  return [
    { name: `${p}.input_layernorm.weight`, shape: [4096] },
    { name: `${p}.self_attn.q_proj.weight`, shape: [4096, 4096] },
    { name: `${p}.self_attn.q_proj.bias`, shape: [4096] },
    { name: `${p}.self_attn.k_proj.weight`, shape: [256, 4096] },
    { name: `${p}.self_attn.k_proj.bias`, shape: [256] },
    { name: `${p}.self_attn.v_proj.weight`, shape: [256, 4096] },
    { name: `${p}.self_attn.v_proj.bias`, shape: [256] },
    { name: `${p}.self_attn.o_proj.weight`, shape: [4096, 4096] },
    { name: `${p}.post_self_attn_layernorm.weight`, shape: [4096] },
    { name: `${p}.post_attention_layernorm.weight`, shape: [4096] },
    { name: `${p}.mlp.gate_up_proj.weight`, shape: [27392, 4096] },
    { name: `${p}.mlp.down_proj.weight`, shape: [4096, 13696] },
    { name: `${p}.post_mlp_layernorm.weight`, shape: [4096] },
  ];
}

export function visionBlock(j: number): Spec[] {
  const p = `model.visual.blocks.${j}`;
  return [
    { name: `${p}.norm1.weight`, shape: [1536] },
    { name: `${p}.norm2.weight`, shape: [1536] },
    { name: `${p}.attn.qkv.weight`, shape: [4608, 1536] },
    { name: `${p}.attn.proj.weight`, shape: [1536, 1536] },
    { name: `${p}.mlp.gate_proj.weight`, shape: [4096, 1536] },
    { name: `${p}.mlp.up_proj.weight`, shape: [4096, 1536] },
    { name: `${p}.mlp.down_proj.weight`, shape: [1536, 4096] },
  ];
}

/** Everything outside the repeated layers: embeddings, lm_head, the vision stem and the merger. */
export function fixedParts(): Spec[] {
  return [
    { name: 'model.language_model.embed_tokens.weight', shape: [151552, 4096] },
    { name: 'model.language_model.norm.weight', shape: [4096] },
    { name: 'lm_head.weight', shape: [151552, 4096] },
    { name: 'model.visual.patch_embed.proj.weight', shape: [1536, 3, 2, 14, 14] },
    { name: 'model.visual.patch_embed.proj.bias', shape: [1536] },
    { name: 'model.visual.post_conv_layernorm.weight', shape: [1536] },
    { name: 'model.visual.embeddings.position_embedding.weight', shape: [576, 1536] },
    { name: 'model.visual.post_layernorm.weight', shape: [1536] },
    { name: 'model.visual.downsample.weight', shape: [4096, 1536, 2, 2] },
    { name: 'model.visual.downsample.bias', shape: [4096] },
    { name: 'model.visual.merger.proj.weight', shape: [4096, 4096] },
    { name: 'model.visual.merger.post_projection_norm.weight', shape: [4096] },
    { name: 'model.visual.merger.post_projection_norm.bias', shape: [4096] },
    { name: 'model.visual.merger.gate_proj.weight', shape: [13696, 4096] },
    { name: 'model.visual.merger.up_proj.weight', shape: [13696, 4096] },
    { name: 'model.visual.merger.down_proj.weight', shape: [4096, 13696] },
  ];
}

/**
 * The tensors of a checkpoint of about `target` bytes: the fixed parts when they fit (≥ 4 GB), then text layers,
 * then vision blocks, while each still fits. Never empty.
 */
export function plan(target: number): { specs: Spec[]; textLayers: number; visionBlocks: number } {
  const specs: Spec[] = [];
  if (target >= 4e9) specs.push(...fixedParts());
  let textLayers = 0;
  let visionBlocks = 0;
  while (sum(specs) + sum(textLayer(textLayers)) <= target) specs.push(...textLayer(textLayers++));
  while (sum(specs) + sum(visionBlock(visionBlocks)) <= target) specs.push(...visionBlock(visionBlocks++));
  if (specs.length === 0) specs.push(...visionBlock(visionBlocks++));
  return { specs, textLayers, visionBlocks };
}

/** Cuts `specs` in order into shards of at most `maxShard` bytes (a bigger tensor gets a shard of its own). */
export function shard(specs: Spec[], maxShard: number): Spec[][] {
  const shards: Spec[][] = [[]];
  let size = 0;
  for (const s of specs) {
    if (size > 0 && size + bytes(s) > maxShard) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(s);
    size += bytes(s);
  }
  return shards;
}

/** 64 MiB of random finite bf16 values (|x| in [2^-9, 1), random sign), reused at varying offsets. */
function randomPool(seed: number): Uint8Array {
  const words = new Uint16Array(32 * 2 ** 20);
  const r = rng(seed);
  for (let i = 0; i < words.length; i++) {
    const x = (r() * 2 ** 32) >>> 0;
    words[i] = (x & 0x8000) | ((118 + (x >>> 16) % 9) << 7) | (x & 0x7f);
  }
  return new Uint8Array(words.buffer);
}

function stream(spec: Spec, pool: Uint8Array, k: number): TensorStream {
  const start = (k * 7919 * 4096) % pool.byteLength; // even, so bf16 values stay whole
  return {
    name: spec.name,
    dtype: 'BF16',
    shape: spec.shape,
    fill(out, off) {
      let done = 0;
      while (done < out.byteLength) {
        const at = (start + off + done) % pool.byteLength;
        const n = Math.min(out.byteLength - done, pool.byteLength - at);
        out.set(pool.subarray(at, at + n), done);
        done += n;
      }
    },
  };
}

/** The real config.json (spec §2) with the layer counts of this synthetic checkpoint. */
export function syntheticConfig(textLayers: number, visionBlocks: number): object {
  const tokens = {
    image_start_token_id: 151339, image_end_token_id: 151340, video_start_token_id: 151341, video_end_token_id: 151342,
    image_token_id: 151343, video_token_id: 151344,
  };
  return {
    architectures: ['Glm4vForConditionalGeneration'], model_type: 'glm4v', ...tokens, tie_word_embeddings: false,
    text_config: {
      vocab_size: 151552, hidden_size: 4096, intermediate_size: 13696, num_hidden_layers: Math.max(1, textLayers),
      num_attention_heads: 32, num_key_value_heads: 2, rms_norm_eps: 1e-5, max_position_embeddings: 65536,
      partial_rotary_factor: 0.5, rope_theta: 10000, rope_scaling: { rope_type: 'default', mrope_section: [8, 12, 12] },
      eos_token_id: [151329, 151336, 151338, 151348], pad_token_id: 151329,
    },
    vision_config: {
      depth: Math.max(1, visionBlocks), hidden_size: 1536, num_heads: 12, intermediate_size: 13696, out_hidden_size: 4096,
      image_size: 336, patch_size: 14, temporal_patch_size: 2, spatial_merge_size: 2, in_channels: 3, rms_norm_eps: 1e-5,
    },
  };
}

export interface Synthetic {
  totalBytes: number;
  tensors: number;
  shards: string[];
  textLayers: number;
  visionBlocks: number;
}

/** Writes the synthetic checkpoint into `dir` (which must exist). */
export async function writeSynthetic(dir: string, target: number, maxShard: number, log: (s: string) => void = () => undefined): Promise<Synthetic> {
  const { specs, textLayers, visionBlocks } = plan(target);
  const shards = shard(specs, maxShard);
  const pool = randomPool(42);
  const names = shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  let k = 0;
  for (let i = 0; i < shards.length; i++) {
    log(`  writing ${names[i]} (${(sum(shards[i]) / 1e9).toFixed(2)} GB, ${shards[i].length} tensors)`);
    await writeSafetensors(join(dir, names[i]), shards[i].map((s) => stream(s, pool, k++)), { format: 'pt' });
    for (const s of shards[i]) weightMap[s.name] = names[i];
  }
  const totalBytes = sum(specs);
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2));
  await writeFile(join(dir, 'config.json'), JSON.stringify(syntheticConfig(textLayers, visionBlocks), null, 2));
  return { totalBytes, tensors: specs.length, shards: names, textLayers, visionBlocks };
}
