// How a quantised weight is stored in a checkpoint, and which format each quantisable weight loads in.
//
// A weight `K` [N, K] (a linear layer's, or the embedding table) quantised to a format of @glm4v/kernels' quant.ts is stored as two tensors and one
// metadata entry of the file holding them (what `glm4v-run quantize` writes):
//   K.qweight  U8  [N, bytes of codes per row]   the code words of the format's layout, little-endian
//   K.qscales  F16 [N, scales per row]           its scales (and mins)
//   __metadata__["quant.K"] = "q4"               the format's name
// The rest of such a checkpoint is as the original (bf16 embeddings, norms, biases, the vision stem).
//
// Quantisable weights come in groups (the decoder's, the vision tower's); every weight of a group loads in one format:
// the one asked for, else the one the checkpoint stores. A stored format other than the one asked for, a group
// with two formats, an unknown format or a weight missing half of its pair is a CheckpointError naming the tensor.

import { CheckpointError } from '@glm4v/core';
import { QUANT_FORMATS, type QuantFormat, isQuantFormat, rowBytes } from '@glm4v/kernels';
import type { Checkpoint } from './checkpoint.js';
import type { TensorInfo } from './safetensors.js';

export const QWEIGHT = '.qweight';
export const QSCALES = '.qscales';

/** The metadata key naming the format of weight `key` (its name as stored). */
export function formatKey(key: string): string {
  return `quant.${key}`;
}

/** A quantisable weight as the checkpoint stores it: plain floats, or codes and scales in a known format. */
export type StoredWeight =
  { kind: 'float'; info: TensorInfo } | { kind: 'quant'; format: QuantFormat; codes: TensorInfo; scales: TensorInfo };

/** How `key` [N, K] is stored; undefined when neither form is present. Checks the quantised pair's format and shapes. */
export function storedWeight(ckpt: Checkpoint, key: string, shape: readonly number[]): StoredWeight | undefined {
  const info = ckpt.tensors.get(key);
  const codes = ckpt.tensors.get(key + QWEIGHT);
  if (info && codes)
    throw new CheckpointError(
      `${codes.file}: tensor '${key}' is stored twice, as floats (${info.file}) and quantised ('${key}${QWEIGHT}')`,
    );
  if (info) return { kind: 'float', info };
  if (!codes) return undefined;
  const scales = ckpt.tensors.get(key + QSCALES);
  if (!scales)
    throw new CheckpointError(`${codes.file}: tensor '${key}${QWEIGHT}' has no '${key}${QSCALES}' beside it`);
  const stored = (codes.sourceName ?? codes.name).slice(0, -QWEIGHT.length);
  const format = ckpt.file(codes).metadata[formatKey(stored)];
  if (format === undefined)
    throw new CheckpointError(
      `${codes.file}: tensor '${key}${QWEIGHT}' has no format in the file's metadata (expected "${formatKey(stored)}": one of ${Object.keys(QUANT_FORMATS).join(', ')})`,
    );
  if (!isQuantFormat(format))
    throw new CheckpointError(
      `${codes.file}: tensor '${key}${QWEIGHT}' is in quantisation format '${format}', which this runtime does not know (known: ${Object.keys(QUANT_FORMATS).join(', ')})`,
    );
  const b = rowBytes(QUANT_FORMATS[format], shape[1]);
  checkStored(codes, 'U8', [shape[0], b.data]);
  checkStored(scales, 'F16', [shape[0], b.scales / 2]);
  return { kind: 'quant', format, codes, scales };
}

function checkStored(info: TensorInfo, dtype: string, shape: number[]): void {
  if (info.dtype !== dtype || info.shape.length !== 2 || info.shape[0] !== shape[0] || info.shape[1] !== shape[1]) {
    throw new CheckpointError(
      `${info.file}: tensor '${info.name}': expected ${dtype} [${shape.join(', ')}], found ${info.dtype} [${info.shape.join(', ')}]`,
    );
  }
}

/** The format each quantisable weight loads in (see the top of this file). */
export class FormatPolicy {
  private readonly seen = new Map<string, { format: QuantFormat | 'float'; key: string }>();

  /** `requested`: the format asked for, by group (absent: as stored). */
  constructor(private readonly requested: Readonly<Record<string, QuantFormat | undefined>> = {}) {}

  /** The format to load `key` of `group` in (undefined: as floats). */
  decide(key: string, group: string, stored: StoredWeight): QuantFormat | undefined {
    const want = this.requested[group];
    const file = stored.kind === 'float' ? stored.info.file : stored.codes.file;
    if (stored.kind === 'quant' && want && stored.format !== want) {
      throw new CheckpointError(
        `${file}: tensor '${key}' is stored as ${stored.format}; it cannot be loaded as ${want} (quantise the original checkpoint instead, or load without asking for ${want})`,
      );
    }
    const format = stored.kind === 'quant' ? stored.format : (want ?? 'float');
    const prev = this.seen.get(group);
    if (prev && prev.format !== format) {
      const as = (f: string) => (f === 'float' ? 'unquantised' : f);
      throw new CheckpointError(
        `${file}: tensor '${key}' is ${as(format)} but '${prev.key}' is ${as(prev.format)}: the ${group} weights of a checkpoint must share one format`,
      );
    }
    if (!prev) this.seen.set(group, { format, key });
    return format === 'float' ? undefined : format;
  }
}
