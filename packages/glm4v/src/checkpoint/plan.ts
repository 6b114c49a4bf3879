// Before any tensor byte is read: the GPU buffers the weights will take, from the shard headers alone, checked
// against the device's limits (a matrix row must fit one storage binding) and against its memory (every buffer
// is allocated, held, and freed again). A model that cannot fit is refused before its download starts, not
// 20 GB into it. Browsers tell nothing of free GPU memory, so asking for it is the only way to know.

import { ChunkedTensor, type Device, LimitError, OutOfMemoryError, itemSize, numelOf, sizeClass, storageBytes } from '@glm4v/core';
import type { Checkpoint } from './checkpoint.js';
import { GPU_DTYPES } from './weights.js';

export interface WeightPlan {
  /** GPU bytes of all weight buffers (size classes included). */
  bytes: number;
  /** One entry per buffer. */
  buffers: number[];
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

/**
 * The buffers loading `ckpt` allocates: every tensor as row chunks of at most one storage binding (and at most
 * `maxChunkBytes`), as WeightLoader makes them. LimitError naming the tensor when one row cannot fit a binding.
 */
export function planWeights(ckpt: Checkpoint, device: Device, maxChunkBytes = Infinity): WeightPlan {
  const buffers: number[] = [];
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize, maxChunkBytes);
  for (const info of ckpt.tensors.values()) {
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
    for (let r = 0; r === 0 || r < dims[0]; r += per) buffers.push(sizeClass(storageBytes(dtype, Math.min(per, dims[0] - r) * numelOf(dims.slice(1)))));
  }
  return { bytes: buffers.reduce((a, b) => a + b, 0), buffers };
}

/** Refuses `ckpt` when its weights cannot be held by `device`: LimitError or OutOfMemoryError, before any data is read. */
export async function checkWeightsFit(ckpt: Checkpoint, device: Device, maxChunkBytes?: number): Promise<WeightPlan> {
  const plan = planWeights(ckpt, device, maxChunkBytes);
  const held = await device.pool.probe(plan.buffers);
  if (held < plan.bytes) {
    throw new OutOfMemoryError(
      `${ckpt.dir}: the weights need ${gib(plan.bytes)} of GPU memory; this device ran out after ${gib(held)} ` +
        `(${device.adapter.description || device.adapter.vendor || 'GPU'}). Free GPU memory or use a GPU with more of it`,
    );
  }
  return plan;
}
