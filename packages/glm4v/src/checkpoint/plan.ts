// Before any tensor byte is read: the GPU buffers the weights will take, from the shard headers alone, checked
// against the device's limits (a matrix row must fit one storage binding) and against its memory (every buffer
// is allocated, held, and freed again). A model that cannot fit is refused before its download starts, not
// 20 GB into it. Browsers tell nothing of free GPU memory, so asking for it is the only way to know. Weights held
// quantised (asked for, or stored so) are planned as their packed codes and scales, not as their float size.

import {
  ChunkedTensor,
  type Device,
  LimitError,
  OutOfMemoryError,
  itemSize,
  numelOf,
  sizeClass,
  storageBytes,
} from '@glm4v/core';
import { QUANT_FORMATS, type QuantFormat, QuantizedMatrix, rowBytes } from '@glm4v/kernels';
import type { Glm4vConfig } from '../config.js';
import { checkpointShapes } from '../model/tensor-shapes.js';
import type { Checkpoint } from './checkpoint.js';
import { QSCALES, QWEIGHT, storedWeight } from './quantized.js';
import { GPU_DTYPES } from './weight-loader.js';

export interface WeightPlan {
  /** GPU bytes of all weight buffers (size classes included). */
  bytes: number;
  /** One entry per buffer. */
  buffers: number[];
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

/** The weights that load quantised, by checkpoint key: their shape [N, K] and format. */
export type QuantizedWeights = ReadonlyMap<string, { shape: readonly [number, number]; format: QuantFormat }>;

export interface PlanOptions {
  /** As LoadOptions.maxChunkBytes. */
  maxChunkBytes?: number;
  /** From quantizedWeights(). */
  quantized?: QuantizedWeights;
}

/**
 * Which of `config`'s quantisable weights load quantised: those stored so, in their stored format, and the others
 * of each group `formats` names. A half-stored or unknown stored format is a CheckpointError naming the tensor.
 */
export function quantizedWeights(
  ckpt: Checkpoint,
  config: Glm4vConfig,
  formats: Readonly<Record<string, QuantFormat | undefined>> = {},
): QuantizedWeights {
  const out = new Map<string, { shape: [number, number]; format: QuantFormat }>();
  for (const t of checkpointShapes(config)) {
    if (!t.quant) continue;
    const shape = t.shape as [number, number];
    const stored = storedWeight(ckpt, t.name, shape);
    const format = stored?.kind === 'quant' ? stored.format : formats[t.quant];
    if (format) out.set(t.name, { shape, format });
  }
  return out;
}

/**
 * The buffers loading `ckpt` allocates: every tensor as row chunks of at most one storage binding (and at most
 * `maxChunkBytes`), as WeightLoader makes them, quantised ones as QuantizedMatrix makes them. LimitError naming the
 * tensor when one row cannot fit a binding.
 */
export function planWeights(ckpt: Checkpoint, device: Device, opts: PlanOptions = {}): WeightPlan {
  const buffers: number[] = [];
  const maxChunkBytes = opts.maxChunkBytes ?? Infinity;
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize, maxChunkBytes);
  for (const info of ckpt.tensors.values()) {
    const key = info.name.endsWith(QWEIGHT)
      ? info.name.slice(0, -QWEIGHT.length)
      : info.name.endsWith(QSCALES)
        ? info.name.slice(0, -QSCALES.length)
        : info.name;
    const q = opts.quantized?.get(key);
    if (q) {
      if (!info.name.endsWith(QSCALES)) buffers.push(...quantizedBuffers(device, q.format, q.shape, limit));
      continue;
    }
    const dtype = GPU_DTYPES[info.dtype];
    if (!dtype) continue; // refused by name when the model asks for it
    const dims = info.shape.length ? info.shape : [1];
    const rowBytes = numelOf(dims.slice(1)) * itemSize(dtype);
    if (rowBytes > limit) {
      const which = limit === maxChunkBytes ? 'the maxChunkBytes option' : "this device's maxStorageBufferBindingSize";
      throw new LimitError(
        `${info.file}: tensor '${info.name}' [${info.shape.join(', ')}]: one row of ${rowBytes} bytes does not fit a storage ` +
          `binding of ${limit} bytes (${which}); the model cannot run on this device`,
      );
    }
    const per = ChunkedTensor.rowsPerChunk(device, dtype, dims, limit);
    for (let r = 0; r === 0 || r < dims[0]; r += per)
      buffers.push(sizeClass(storageBytes(dtype, Math.min(per, dims[0] - r) * numelOf(dims.slice(1)))));
  }
  return { bytes: buffers.reduce((a, b) => a + b, 0), buffers };
}

/** The codes and scales buffers of a quantised [N, K] weight, chunk by chunk as QuantizedMatrix.empty makes them. */
function quantizedBuffers(
  device: Device,
  format: QuantFormat,
  [N, K]: readonly [number, number],
  limit: number,
): number[] {
  const layout = QUANT_FORMATS[format];
  const per = QuantizedMatrix.rowsPerChunk(device, layout, [N, K], limit);
  const b = rowBytes(layout, K);
  const out: number[] = [];
  for (let r = 0; r < N; r += per) {
    const rows = Math.min(per, N - r);
    out.push(
      sizeClass(storageBytes('u32', (rows * b.data) / 4)),
      sizeClass(storageBytes('f16', (rows * b.scales) / 2)),
    );
  }
  return out;
}

/** Refuses `ckpt` when its weights cannot be held by `device`: LimitError or OutOfMemoryError, before any data is read. */
export async function checkWeightsFit(ckpt: Checkpoint, device: Device, opts: PlanOptions = {}): Promise<WeightPlan> {
  const plan = planWeights(ckpt, device, opts);
  const held = await device.pool.probe(plan.buffers);
  if (held < plan.bytes) {
    throw new OutOfMemoryError(
      `${ckpt.dir}: the weights need ${gib(plan.bytes)} of GPU memory; this device ran out after ${gib(held)} ` +
        `(${device.adapter.description || device.adapter.vendor || 'GPU'}). Free GPU memory or use a GPU with more of it`,
    );
  }
  return plan;
}
