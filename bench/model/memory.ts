// GPU memory of the model, computed from its allocations (the buffers' sizes: pool size classes included), so the
// figures for the full 40-layer model hold on a machine that can only build two layers: every decoder layer (and
// every vision block) allocates exactly what layer 0 (block 0) does, and a KV cache allocates per layer.

import { ChunkedTensor, Tensor } from '@glm4v/core';
import { QuantizedMatrix } from '@glm4v/kernels';
import type { Glm4vModel, Session } from '@glm4v/runtime/internal';

type Weight = Tensor | ChunkedTensor | QuantizedMatrix;

function tensorsOf(w: Weight): Tensor[] {
  if (w instanceof ChunkedTensor) return w.chunks.map((c) => c.tensor);
  if (w instanceof QuantizedMatrix) return w.chunks.flatMap((c) => [c.data, c.scales]);
  return [w];
}

/** Bytes of the buffers holding `ws` (each buffer once). */
export function allocatedBytes(ws: readonly Weight[]): number {
  const buffers = new Set(ws.flatMap(tensorsOf).map((t) => t.buffer));
  return [...buffers].reduce((n, b) => n + b.size, 0);
}

/** Bytes of the data itself (codes and scales for a quantised weight). */
export function dataBytes(ws: readonly Weight[]): number {
  return ws.flatMap(tensorsOf).reduce((n, t) => n + t.byteSize, 0);
}

export interface ModelMemory {
  /** Weight buffers of one decoder layer, of one vision block. */
  layerBytes: number;
  visionBlockBytes: number;
  /** Bytes a decode step reads from weights: every decoder layer, the final norm, lm_head, one embedding row. */
  readPerToken: (layers: number) => number;
}

export function modelMemory(model: Glm4vModel): ModelMemory {
  const t = model.text;
  const layer = t.layers[0].weights();
  const embedRow = dataBytes([t.embedTokens]) / t.embedTokens.shape[0];
  return {
    layerBytes: allocatedBytes(layer),
    visionBlockBytes: model.vision.blocks.length ? allocatedBytes(model.vision.blocks[0].weights()) : 0,
    readPerToken: (layers) => layers * dataBytes(layer) + dataBytes([t.norm, t.lmHead]) + embedRow,
  };
}

/** KV-cache buffers per decoder layer of a session. */
export function kvBytesPerLayer(s: Session): number {
  return allocatedBytes(s.caches.flatMap((kv) => [kv.k, kv.v])) / s.caches.length;
}
