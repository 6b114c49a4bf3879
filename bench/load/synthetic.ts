// A synthetic GLM-4.1V-9B checkpoint: the real tensor names and shapes (docs/model.md#tensors) for a subset of the layers,
// random finite bf16 values, split into shards with a `model.safetensors.index.json`, plus a config.json whose
// layer counts match what was written. Data is generated piece by piece, so writing 6 GB needs ~64 MiB of memory.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rng } from '@glm4v/core/testing';
import {
  type TensorShape,
  type TensorStream,
  decoderLayerShapes,
  globalShapes,
  visionBlockShapes,
  writeSafetensors,
} from '@glm4v/runtime/internal';
import { GLM41V_9B_CONFIG_JSON, glm41v9bConfig } from '@glm4v/runtime/testing';

type Spec = TensorShape;

const REAL = glm41v9bConfig();
const bytes = (s: Spec) => s.shape.reduce((a, b) => a * b, 1) * 2;
const sum = (specs: Spec[]) => specs.reduce((a, s) => a + bytes(s), 0);

/**
 * The tensors of a checkpoint of about `target` bytes: the fixed parts when they fit (≥ 4 GB), then text layers,
 * then vision blocks, while each still fits. Never empty.
 */
export function plan(target: number): { specs: Spec[]; textLayers: number; visionBlocks: number } {
  const specs: Spec[] = [];
  if (target >= 4e9) specs.push(...globalShapes(REAL));
  let textLayers = 0;
  let visionBlocks = 0;
  while (sum(specs) + sum(decoderLayerShapes(REAL, textLayers)) <= target)
    specs.push(...decoderLayerShapes(REAL, textLayers++));
  while (sum(specs) + sum(visionBlockShapes(REAL, visionBlocks)) <= target)
    specs.push(...visionBlockShapes(REAL, visionBlocks++));
  if (specs.length === 0) specs.push(...visionBlockShapes(REAL, visionBlocks++));
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
    words[i] = (x & 0x8000) | ((118 + ((x >>> 16) % 9)) << 7) | (x & 0x7f);
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

/** The real config.json (docs/model.md#config) with the layer counts of this synthetic checkpoint. */
export function syntheticConfig(textLayers: number, visionBlocks: number): object {
  const json = structuredClone(GLM41V_9B_CONFIG_JSON);
  json.text_config.num_hidden_layers = Math.max(1, textLayers);
  json.vision_config.depth = Math.max(1, visionBlocks);
  return json;
}

export interface Synthetic {
  totalBytes: number;
  tensors: number;
  shards: string[];
  textLayers: number;
  visionBlocks: number;
}

/** Writes the synthetic checkpoint into `dir` (which must exist). */
export async function writeSynthetic(
  dir: string,
  target: number,
  maxShard: number,
  log: (s: string) => void = () => undefined,
): Promise<Synthetic> {
  const { specs, textLayers, visionBlocks } = plan(target);
  const shards = shard(specs, maxShard);
  const pool = randomPool(42);
  const names = shards.map(
    (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`,
  );
  const weightMap: Record<string, string> = {};
  let k = 0;
  for (let i = 0; i < shards.length; i++) {
    log(`  writing ${names[i]} (${(sum(shards[i]) / 1e9).toFixed(2)} GB, ${shards[i].length} tensors)`);
    await writeSafetensors(
      join(dir, names[i]),
      shards[i].map((s) => stream(s, pool, k++)),
      { format: 'pt' },
    );
    for (const s of shards[i]) weightMap[s.name] = names[i];
  }
  const totalBytes = sum(specs);
  await writeFile(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2),
  );
  await writeFile(join(dir, 'config.json'), JSON.stringify(syntheticConfig(textLayers, visionBlocks), null, 2));
  return { totalBytes, tensors: specs.length, shards: names, textLayers, visionBlocks };
}
