// A matrix split by rows into chunks that each fit one storage binding. The real lm_head and embedding table
// are 151552×4096 bf16 = 1.24 GB, ten times lavapipe's 128 MiB binding limit; kernels loop over the chunks.

import type { Device } from './device.js';
import { type DType, type HostArray, itemSize, numelOf } from './dtype.js';
import { InputError, LimitError } from './errors.js';
import { Tensor } from './tensor.js';

export interface RowChunk {
  tensor: Tensor;
  /** First row of the matrix held by this chunk. */
  rowStart: number;
  rows: number;
}

export class ChunkedTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly label: string;
  readonly chunks: readonly RowChunk[];

  constructor(dtype: DType, shape: readonly number[], chunks: readonly RowChunk[], label: string) {
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.chunks = chunks;
    this.label = label;
  }

  get rows(): number {
    return this.shape[0];
  }

  /** Elements per row (the product of the trailing dimensions). */
  get rowSize(): number {
    return numelOf(this.shape.slice(1));
  }

  get byteSize(): number {
    return this.chunks.reduce((s, c) => s + c.tensor.byteSize, 0);
  }

  /** The most rows one chunk may hold: its bytes fit `maxStorageBufferBindingSize` (or `maxBytes` when smaller). */
  static rowsPerChunk(device: Device, dtype: DType, shape: readonly number[], maxBytes = Infinity): number {
    const rowSize = numelOf(shape.slice(1));
    const limit = Math.min(device.limits.maxStorageBufferBindingSize, maxBytes);
    const rowBytes = rowSize * itemSize(dtype);
    const rows = Math.floor(limit / Math.max(1, rowBytes));
    if (rows < 1)
      throw new LimitError(
        `one row of ${rowSize} ${dtype} elements (${rowBytes} bytes) does not fit a storage binding of ${limit} bytes`,
      );
    return Math.min(rows, shape[0] || 1);
  }

  /** Uninitialised chunks in pooled buffers. */
  static async empty(
    device: Device,
    dtype: DType,
    shape: readonly number[],
    label = 'matrix',
    maxChunkBytes = Infinity,
  ): Promise<ChunkedTensor> {
    if (shape.length < 1) throw new InputError(`'${label}': a chunked tensor needs at least one dimension`);
    const per = ChunkedTensor.rowsPerChunk(device, dtype, shape, maxChunkBytes);
    const chunks: RowChunk[] = [];
    try {
      for (let r = 0; r === 0 || r < shape[0]; r += per) {
        const rows = Math.min(per, shape[0] - r);
        chunks.push({
          tensor: await Tensor.empty(device, dtype, [rows, ...shape.slice(1)], `${label}[${r}:${r + rows}]`),
          rowStart: r,
          rows,
        });
      }
    } catch (e) {
      for (const c of chunks) c.tensor.dispose();
      throw e;
    }
    return new ChunkedTensor(dtype, shape, chunks, label);
  }

  /** Chunks holding `data` (row-major, the whole matrix), for tests and small weights. */
  static async fromArray(
    device: Device,
    dtype: DType,
    shape: readonly number[],
    data: HostArray,
    label = 'matrix',
    maxChunkBytes = Infinity,
  ): Promise<ChunkedTensor> {
    const n = numelOf(shape);
    if (data.length !== n)
      throw new InputError(`'${label}': ${data.length} values given for shape [${shape.join(', ')}] (${n} elements)`);
    const m = await ChunkedTensor.empty(device, dtype, shape, label, maxChunkBytes);
    const rowSize = m.rowSize;
    for (const c of m.chunks) {
      const part =
        'subarray' in data
          ? data.subarray(c.rowStart * rowSize, (c.rowStart + c.rows) * rowSize)
          : data.slice(c.rowStart * rowSize, (c.rowStart + c.rows) * rowSize);
      c.tensor.write(part);
    }
    return m;
  }

  /** Wraps one tensor that already fits a binding as a single chunk. */
  static single(t: Tensor): ChunkedTensor {
    return new ChunkedTensor(t.dtype, t.shape, [{ tensor: t, rowStart: 0, rows: t.shape[0] }], t.label);
  }

  /** The whole matrix row-major as f32 (or i32/u32), for tests. */
  async read(): Promise<Float32Array | Int32Array | Uint32Array> {
    const parts = await Promise.all(this.chunks.map((c) => c.tensor.read()));
    const out =
      this.dtype === 'i32'
        ? new Int32Array(numelOf(this.shape))
        : this.dtype === 'u32'
          ? new Uint32Array(numelOf(this.shape))
          : new Float32Array(numelOf(this.shape));
    this.chunks.forEach((c, i) => out.set(parts[i] as never, c.rowStart * this.rowSize));
    return out;
  }

  dispose(): void {
    for (const c of this.chunks) c.tensor.dispose();
  }
}
