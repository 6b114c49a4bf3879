// The safetensors format's element types and the checks shared by the reader and the writer.

export type SafetensorsDType = 'BF16' | 'F16' | 'F32' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each dtype we accept. */
export const DTYPE_SIZES: Readonly<Record<SafetensorsDType, number>> = Object.freeze({
  BF16: 2,
  F16: 2,
  F32: 4,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
});

export function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

export interface TensorInfo {
  /** The tensor's name (in a Checkpoint: after the rename table). */
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** The file holding the data. */
  file: string;
  /** Absolute byte offset of the first element in `file`. */
  offset: number;
  byteLength: number;
  /** The name as written in the file, when the rename table changed it. */
  sourceName?: string;
}

/** Headers above this are refused before any allocation (the real shards' headers are ~100 KB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** The element count of `shape`, or a description of what is wrong with it. */
export function checkedNumel(shape: unknown): number | string {
  if (!Array.isArray(shape)) return `shape must be an array of integers, got ${JSON.stringify(shape)}`;
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      return `shape [${shape.map((x) => JSON.stringify(x)).join(', ')}] has a dimension that is not a non-negative integer (${JSON.stringify(d)})`;
    }
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return `shape [${shape.join(', ')}] has more than 2^53 elements`;
  }
  return n;
}
