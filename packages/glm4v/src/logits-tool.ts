// The black-box entry point for checking the port against any reference (`glm4v-run logits`): reads the
// inputs from a safetensors file, runs the model, writes logits (and greedy tokens, taps) to another one, named
// and typed as in the conformance fixtures.

import { InputError } from '@glm4v/core';
import { SafetensorsFile, type TensorInfo, writeSafetensors } from './checkpoint/safetensors.js';
import type { SafetensorsDType } from './checkpoint/safetensors.js';
import type { KvDType } from '@glm4v/kernels';
import type { Glm4vConfig } from './config.js';
import type { Glm4vModel, PrefillInput, Taps, VisionInput } from './model/glm4v.js';
import type { Grid } from './media-plan.js';

export interface LogitsRequest {
  /** Greedy continuation length through the KV-cache decode path (0: none). */
  greedy?: number;
  /** Also return the intermediate activations. */
  taps?: boolean;
  /** KV-cache element type of the run (default f32). */
  kvCacheDType?: KvDType;
}

export interface LogitsResult {
  logits: Float32Array;
  /** [rows, V] */
  shape: [number, number];
  greedyTokens?: Int32Array;
  taps?: Taps;
  ropeDelta: number;
}

/** Reads `input_ids` and the optional pixel inputs of a logits request. */
export async function readLogitsInputs(path: string): Promise<PrefillInput> {
  const f = await SafetensorsFile.open(path);
  try {
    const get = (name: string) => f.tensors.get(name);
    const ids = get('input_ids');
    if (!ids) throw new InputError(`${path}: no 'input_ids' tensor`);
    if (ids.shape.length !== 1)
      throw new InputError(`${path}: 'input_ids' has shape [${ids.shape.join(', ')}]; expected [S]`);
    const input: PrefillInput = { ids: toInt32(await readInts(f, ids), path, ids) };
    const vision = async (pixels: string, grids: string): Promise<VisionInput | undefined> => {
      const p = get(pixels);
      const gr = get(grids);
      if (!p && !gr) return undefined;
      if (!p || !gr) throw new InputError(`${path}: '${pixels}' and '${grids}' must come together`);
      if (p.dtype !== 'F32' || p.shape.length !== 2)
        throw new InputError(`${path}: '${pixels}' must be F32 [N, patch]; got ${p.dtype} [${p.shape.join(', ')}]`);
      if (gr.shape.length !== 2 || gr.shape[1] !== 3)
        throw new InputError(`${path}: '${grids}' must be [n, 3]; got [${gr.shape.join(', ')}]`);
      const g = toInt32(await readInts(f, gr), path, gr);
      const list: Grid[] = [];
      for (let i = 0; i < gr.shape[0]; i++) list.push([g[3 * i], g[3 * i + 1], g[3 * i + 2]]);
      const bytes = await f.read(p);
      return {
        pixelValues: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)),
        grids: list,
      };
    };
    input.images = await vision('pixel_values', 'image_grid_thw');
    input.videos = await vision('pixel_values_videos', 'video_grid_thw');
    return input;
  } finally {
    await f.close();
  }
}

async function readInts(f: SafetensorsFile, info: TensorInfo): Promise<BigInt64Array | Int32Array> {
  const bytes = await f.read(info);
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  if (info.dtype === 'I64') return new BigInt64Array(buf);
  if (info.dtype === 'I32') return new Int32Array(buf);
  throw new InputError(`${f.path}: '${info.name}' has dtype ${info.dtype}; expected I32 or I64`);
}

function toInt32(v: BigInt64Array | Int32Array, path: string, info: TensorInfo): Int32Array {
  if (v instanceof Int32Array) return v;
  const out = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    if (v[i] < -(2n ** 31n) || v[i] >= 2n ** 31n)
      throw new InputError(`${path}: '${info.name}'[${i}] = ${v[i]} does not fit 32 bits`);
    out[i] = Number(v[i]);
  }
  return out;
}

/** Prefill with every position's logits, then (optionally) a greedy continuation through the decode path. */
export async function computeLogits(
  model: Glm4vModel,
  input: PrefillInput,
  req: LogitsRequest = {},
): Promise<LogitsResult> {
  const greedy = req.greedy ?? 0;
  const S = input.ids.length;
  const session = await model.createSession(S + Math.max(1, greedy), req.kvCacheDType);
  try {
    const pre = await model.prefill(session, input, { allLogits: true, taps: req.taps });
    const result: LogitsResult = {
      logits: pre.logits!,
      shape: [S, model.config.text.vocabSize],
      taps: pre.taps,
      ropeDelta: session.ropeDelta,
    };
    if (greedy > 0) {
      const tokens = new Int32Array(greedy);
      tokens[0] = await session.readToken();
      const step = await model.recordDecode(session.pool, 1);
      try {
        for (let i = 1; i < greedy; i++) {
          await step.run([session]);
          tokens[i] = await session.readToken();
        }
      } finally {
        step.dispose();
      }
      result.greedyTokens = tokens;
    }
    return result;
  } finally {
    session.dispose();
  }
}

/** Row width of a float tap: the vision tower's inner taps are vision-wide; its outputs and the decoder's model-wide. */
function tapWidth(name: string, c: Glm4vConfig): number {
  if (name === 'vision_downsample' || name === 'image_embeds' || name === 'video_embeds') return c.vision.outHiddenSize;
  return name.startsWith('vision_') ? c.vision.hiddenSize : c.text.hiddenSize;
}

/** Writes a LogitsResult with the fixtures' names and dtypes: float taps are [rows, width]. */
export async function writeLogitsResult(path: string, r: LogitsResult, config: Glm4vConfig): Promise<void> {
  const i64 = (v: ArrayLike<number>) => BigInt64Array.from(Array.from(v, (x) => BigInt(x)));
  const entries: { name: string; dtype: SafetensorsDType; shape: number[]; data: ArrayBufferView }[] = [
    { name: 'logits', dtype: 'F32', shape: [...r.shape], data: r.logits },
  ];
  if (r.greedyTokens)
    entries.push({ name: 'greedy_tokens', dtype: 'I64', shape: [r.greedyTokens.length], data: i64(r.greedyTokens) });
  if (r.taps) {
    for (const [name, v] of Object.entries(r.taps)) {
      if (name === 'position_ids') entries.push({ name, dtype: 'I64', shape: [3, v.length / 3], data: i64(v) });
      else
        entries.push({
          name,
          dtype: 'F32',
          shape: [v.length / tapWidth(name, config), tapWidth(name, config)],
          data: v,
        });
    }
    entries.push({ name: 'rope_delta', dtype: 'I64', shape: [1], data: i64([r.ropeDelta]) });
  }
  await writeSafetensors(path, entries, { producer: '@glm4v/runtime glm4v-run logits' });
}
