// Strict, scoped access to a checkpoint's tensors, uploading each to the GPU as the model asks for it.
//
//   const w = new WeightLoader(ckpt, device, { onProgress, signal });
//   const attn = w.scope('model.language_model.layers.3.self_attn');
//   const q = await attn.matrix('q_proj.weight', [4096, 4096]);
//   ...
//   w.finish();   // CheckpointError if a key the model asked for is missing or a checkpoint key went unused
//
// The shape (and, when asked, the dtype) is checked before anything is allocated. Weights keep the checkpoint's
// dtype: bf16 stays packed in u32 words, no conversion pass. A key counts as used as soon as it is asked for.

import {
  AbortError,
  ChunkedTensor,
  CheckpointError,
  type DType,
  type Device,
  InputError,
  LimitError,
  Tensor,
  numelOf,
  itemSize,
  storageBytes,
} from '@glm4v/core';
import {
  type LinearWeight,
  QUANT_FORMATS,
  type QuantLayout,
  QuantizedMatrix,
  type SourceDType,
  quantizeRows,
  quantizedSize,
  rowBytes,
  widenToF32,
} from '@glm4v/kernels';
import type { Checkpoint } from './checkpoint.js';
import type { GetOptions, MatrixOptions, QuantGroup, WeightSource } from '../model/weight-source.js';
import type { SafetensorsDType, TensorInfo } from './safetensors.js';
import { type LoadOptions, Uploader } from './upload.js';
import { FormatPolicy, type StoredWeight, storedWeight } from './quantized.js';

/** Checkpoint dtypes a GPU tensor can hold as stored. */
export const GPU_DTYPES: Partial<Record<SafetensorsDType, DType>> = {
  BF16: 'bf16',
  F16: 'f16',
  F32: 'f32',
  I32: 'i32',
};

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

function join(prefix: string, name: string): string {
  const p = prefix.replace(/\.+$/, '');
  const n = name.replace(/^\.+/, '');
  return p && n ? `${p}.${n}` : p || n;
}

export class WeightLoader {
  readonly ckpt: Checkpoint;
  readonly device: Device;
  private readonly up: Uploader;
  private readonly maxChunkBytes: number | undefined;
  private readonly used = new Set<string>();
  private readonly missing = new Set<string>();
  private readonly owned = new Set<Tensor>();
  private readonly formats: FormatPolicy;
  private disposed = false;

  constructor(ckpt: Checkpoint, device: Device, opts: LoadOptions = {}) {
    this.ckpt = ckpt;
    this.device = device;
    this.up = new Uploader(device, ckpt, opts);
    this.maxChunkBytes = opts.maxChunkBytes;
    this.formats = new FormatPolicy(opts.quantFormats);
  }

  scope(prefix: string): LoaderScope {
    return new LoaderScope(this, prefix);
  }

  /** Host staging memory allocated so far (bounded by maxStagingBytes). */
  get stagingBytes(): number {
    return this.up.stagingBytes;
  }

  /** Throws a CheckpointError listing every expected key that was missing and every checkpoint key left unused. */
  finish(): void {
    const unused = [...this.ckpt.tensors.values()].filter((t) => !this.used.has(t.name));
    if (this.missing.size === 0 && unused.length === 0) return;
    const list = (names: string[]) =>
      (names.length > 50 ? [...names.slice(0, 50), `… and ${names.length - 50} more`] : names)
        .map((s) => `\n    ${s}`)
        .join('');
    const parts: string[] = [];
    if (this.missing.size) parts.push(`\n  ${this.missing.size} expected key(s) missing:${list([...this.missing])}`);
    if (unused.length) {
      parts.push(
        `\n  ${unused.length} key(s) present but unused:${list(unused.map((t) => (t.sourceName ? `${t.name} (stored as ${t.sourceName})` : t.name) + ` in ${t.file}`))}`,
      );
    }
    throw new CheckpointError(`${this.ckpt.dir}: the checkpoint does not match the model:${parts.join('')}`);
  }

  /** Waits until every upload has reached the GPU (and surfaces any device error). */
  async flush(): Promise<void> {
    await this.up.exclusive(() => this.up.sync());
  }

  /**
   * Frees every tensor this loader uploaded. Requests still queued or in flight (e.g. the rest of a Promise.all
   * whose first member failed) then fail with AbortError and free what they allocated.
   */
  dispose(): void {
    this.disposed = true;
    for (const t of this.owned) t.dispose();
    this.owned.clear();
  }

  has(key: string): boolean {
    return this.ckpt.tensors.has(key);
  }

  private throwIfDisposed(): void {
    if (this.disposed)
      throw new AbortError(`loading from ${this.ckpt.dir} was cancelled: the weight loader was disposed`);
  }

  /** The tensor's entry after checking its shape and dtype; marks it used. */
  private lookup(
    key: string,
    shape: readonly number[],
    opts: GetOptions | undefined,
  ): { info: TensorInfo; dtype: DType; dims: readonly number[] } {
    const info = this.ckpt.tensors.get(key);
    if (!info) {
      this.missing.add(key);
      throw new CheckpointError(`${this.ckpt.dir}: tensor '${key}' not found (expected shape ${fmt(shape)})`);
    }
    this.used.add(key);
    const where = `${info.file}: tensor '${key}'`;
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(`${where}: expected shape ${fmt(shape)}, found ${fmt(info.shape)}`);
    }
    const dtype = GPU_DTYPES[info.dtype];
    if (!dtype)
      throw new CheckpointError(
        `${where}: dtype ${info.dtype} cannot be used on the GPU (expected BF16, F16, F32 or I32)`,
      );
    if (opts?.dtype && opts.dtype !== dtype)
      throw new CheckpointError(`${where}: expected dtype ${opts.dtype}, found ${info.dtype}`);
    const dims = opts?.as ?? shape;
    if (opts?.as && numelOf(opts.as) !== numelOf(shape)) {
      throw new InputError(
        `tensor '${key}': cannot view ${fmt(shape)} (${numelOf(shape)} elements) as ${fmt(opts.as)} (${numelOf(opts.as)} elements)`,
      );
    }
    return { info, dtype, dims };
  }

  /** Allocates, fills from the checkpoint, and tracks a tensor; frees it again if filling fails. */
  private async fill<T extends Tensor | ChunkedTensor | QuantizedMatrix>(
    make: () => Promise<T>,
    copy: (t: T) => Promise<void>,
  ): Promise<T> {
    this.throwIfDisposed();
    this.up.throwIfAborted();
    const t = await make();
    const parts =
      t instanceof ChunkedTensor
        ? t.chunks.map((c) => c.tensor)
        : t instanceof QuantizedMatrix
          ? t.chunks.flatMap((c) => [c.data, c.scales])
          : [t as Tensor];
    for (const p of parts) this.owned.add(p);
    try {
      this.throwIfDisposed();
      await copy(t);
      this.throwIfDisposed();
    } catch (e) {
      for (const p of parts) {
        this.owned.delete(p);
        p.dispose();
      }
      throw e;
    }
    return t;
  }

  async getKey(key: string, shape: readonly number[], opts?: GetOptions): Promise<Tensor> {
    const { info, dtype, dims } = this.lookup(key, shape, opts);
    const bytes = storageBytes(dtype, info.byteLength / itemSize(dtype));
    const limit = this.device.limits.maxStorageBufferBindingSize;
    if (bytes > limit)
      throw new LimitError(
        `${info.file}: tensor '${key}' ${fmt(shape)} needs ${bytes} bytes, above the ${limit}-byte storage binding limit: load it with matrix()`,
      );
    return this.up.exclusive(async () => {
      const t = await this.fill(
        () => Tensor.empty(this.device, dtype, dims, key),
        (t) => this.up.copy(info, 0, info.byteLength, t, 0),
      );
      this.up.complete(info);
      return t;
    });
  }

  async matrixKey(key: string, shape: readonly number[], opts?: MatrixOptions): Promise<ChunkedTensor> {
    const { info, dtype, dims } = this.lookup(key, shape, opts);
    if (dims.length < 1)
      throw new InputError(`tensor '${key}': a matrix needs at least one dimension, got ${fmt(dims)}`);
    return this.up.exclusive(async () => {
      const m = await this.chunked(info, dtype, dims, 0, key, opts?.maxChunkBytes);
      this.up.complete(info);
      return m;
    });
  }

  async rowsKey(
    key: string,
    shape: readonly number[],
    ranges: readonly (readonly [number, number])[],
    opts?: Omit<MatrixOptions, 'as'>,
  ): Promise<ChunkedTensor[]> {
    const { info, dtype } = this.lookup(key, shape, opts);
    if (shape.length < 1)
      throw new InputError(`tensor '${key}': row ranges need at least one dimension, got ${fmt(shape)}`);
    checkRanges(key, shape[0], ranges);
    return this.up.exclusive(async () => {
      const out: ChunkedTensor[] = [];
      try {
        for (const [a, b] of ranges)
          out.push(
            await this.chunked(
              info,
              dtype,
              [b - a, ...shape.slice(1)],
              a,
              ranges.length > 1 ? `${key}[${a}:${b}]` : key,
              opts?.maxChunkBytes,
            ),
          );
      } catch (e) {
        for (const m of out) for (const c of m.chunks) this.owned.delete(c.tensor);
        for (const m of out) m.dispose();
        throw e;
      }
      this.up.complete(info);
      return out;
    });
  }

  async quantizableKey(
    key: string,
    shape: readonly [number, number],
    group: string,
    ranges: readonly (readonly [number, number])[] = [[0, shape[0]]],
  ): Promise<LinearWeight[]> {
    const stored = storedWeight(this.ckpt, key, shape);
    if (!stored) {
      this.missing.add(key);
      throw new CheckpointError(
        `${this.ckpt.dir}: tensor '${key}' not found, neither as floats nor quantised (expected shape ${fmt(shape)})`,
      );
    }
    const format = this.formats.decide(key, group, stored);
    if (stored.kind === 'float' && !format) return this.rowsKey(key, shape, ranges);
    checkRanges(key, shape[0], ranges);
    const infos = stored.kind === 'float' ? [this.lookup(key, shape, undefined).info] : [stored.codes, stored.scales];
    for (const info of infos) this.used.add(info.name);
    const layout = QUANT_FORMATS[format!];
    return this.up.exclusive(async () => {
      const out: QuantizedMatrix[] = [];
      try {
        for (const [a, b] of ranges)
          out.push(
            await this.quantized(
              stored,
              key,
              layout,
              shape[1],
              a,
              b - a,
              ranges.length > 1 ? `${key}[${a}:${b}]` : key,
            ),
          );
      } catch (e) {
        for (const m of out) for (const c of m.chunks) [c.data, c.scales].forEach((t) => this.owned.delete(t));
        for (const m of out) m.dispose();
        throw e;
      }
      for (const info of infos) this.up.complete(info);
      return out;
    });
  }

  /** Rows [firstRow, firstRow + rows) of a weight in `layout`: copied when stored so, else quantised as they stream. */
  private quantized(
    stored: StoredWeight,
    key: string,
    layout: QuantLayout,
    K: number,
    firstRow: number,
    rows: number,
    label: string,
  ): Promise<QuantizedMatrix> {
    return this.fill(
      () => QuantizedMatrix.empty(this.device, layout, [rows, K], label, this.maxChunkBytes),
      async (m) => {
        if (stored.kind === 'float') return this.quantizeFloats(stored.info, key, m, firstRow);
        const b = rowBytes(layout, K);
        for (const c of m.chunks) {
          await this.up.copy(stored.codes, (firstRow + c.rowStart) * b.data, c.rows * b.data, c.data, 0);
          await this.up.copy(stored.scales, (firstRow + c.rowStart) * b.scales, c.rows * b.scales, c.scales, 0);
        }
      },
    );
  }

  /** Streams rows of a float tensor through the host quantiser into `m`, a piece of whole rows at a time. */
  private async quantizeFloats(info: TensorInfo, key: string, m: QuantizedMatrix, firstRow: number): Promise<void> {
    const dtype = GPU_DTYPES[info.dtype];
    if (dtype !== 'bf16' && dtype !== 'f16' && dtype !== 'f32')
      throw new CheckpointError(
        `${info.file}: tensor '${key}': dtype ${info.dtype} cannot be quantised (expected BF16, F16 or F32)`,
      );
    const K = m.shape[1];
    const rowBytes = K * itemSize(dtype);
    const per = Math.floor(this.up.pieceBytes / rowBytes);
    if (per < 1)
      throw new LimitError(
        `${info.file}: tensor '${key}': one row of ${rowBytes} bytes is larger than a staging piece of ${this.up.pieceBytes} bytes (raise maxStagingBytes)`,
      );
    const f32 = new Float32Array(per * K);
    const size = quantizedSize(m.layout, per, K);
    const out = { data: new Uint32Array(size.words), scales: new Uint16Array(size.halves) };
    await this.up.stream(info, firstRow * rowBytes, m.rows * rowBytes, per * rowBytes, (buf, len, offset) => {
      const rows = len / rowBytes;
      const row0 = offset / rowBytes;
      try {
        quantizeRows(
          m.layout,
          widenToF32(dtype as SourceDType, buf.subarray(0, len), f32),
          rows,
          K,
          key,
          firstRow + row0,
          out,
        );
      } catch (e) {
        throw e instanceof InputError ? new CheckpointError(`${info.file}: ${e.message}`, { cause: e }) : e;
      }
      const n = quantizedSize(m.layout, rows, K);
      m.writeRows(row0, { data: out.data.subarray(0, n.words), scales: out.scales.subarray(0, n.halves) });
      return 4 * (n.words + n.halves / 2);
    });
  }

  /** A chunked matrix of `dims` filled from the rows of `info` starting at row `firstRow`. */
  private chunked(
    info: TensorInfo,
    dtype: DType,
    dims: readonly number[],
    firstRow: number,
    label: string,
    maxChunkBytes?: number,
  ): Promise<ChunkedTensor> {
    const rowBytes = numelOf(dims.slice(1)) * itemSize(dtype);
    const limit = Math.min(
      this.device.limits.maxStorageBufferBindingSize,
      maxChunkBytes ?? this.maxChunkBytes ?? Infinity,
    );
    if (rowBytes > limit)
      throw new LimitError(
        `${info.file}: tensor '${info.name}' ${fmt(dims)}: one row of ${rowBytes} bytes does not fit a chunk of at most ${limit} bytes`,
      );
    return this.fill(
      () => ChunkedTensor.empty(this.device, dtype, dims, label, maxChunkBytes ?? this.maxChunkBytes),
      async (m) => {
        for (const c of m.chunks)
          await this.up.copy(info, (firstRow + c.rowStart) * rowBytes, c.rows * rowBytes, c.tensor, 0);
      },
    );
  }
}

function checkRanges(key: string, rows: number, ranges: readonly (readonly [number, number])[]): void {
  for (const [a, b] of ranges) {
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b <= a || b > rows) {
      throw new InputError(`tensor '${key}': row range [${a}, ${b}) is not a non-empty range inside [0, ${rows})`);
    }
  }
}

/**
 * The loader's WeightSource under a key prefix. A quantisable weight is quantised on the fly when the load asked for
 * a format for its group (LoadOptions.quantFormats), loaded as stored when the checkpoint holds it quantised (see
 * quantized.ts). Beyond WeightSource: the key prefix, has(), and rows() (row ranges as separate matrices).
 */
export class LoaderScope implements WeightSource {
  constructor(
    private readonly loader: WeightLoader,
    readonly prefix: string,
  ) {}

  scope(prefix: string): LoaderScope {
    return new LoaderScope(this.loader, join(this.prefix, prefix));
  }

  get(name: string, shape: readonly number[], opts?: GetOptions): Promise<Tensor> {
    return this.loader.getKey(join(this.prefix, name), shape, opts);
  }

  matrix(name: string, shape: readonly number[], opts?: MatrixOptions): Promise<ChunkedTensor> {
    return this.loader.matrixKey(join(this.prefix, name), shape, opts);
  }

  rows(
    name: string,
    shape: readonly number[],
    ranges: readonly (readonly [number, number])[],
    opts?: Omit<MatrixOptions, 'as'>,
  ): Promise<ChunkedTensor[]> {
    return this.loader.rowsKey(join(this.prefix, name), shape, ranges, opts);
  }

  quantizable(
    name: string,
    shape: readonly [number, number],
    group: QuantGroup,
    ranges?: readonly (readonly [number, number])[],
  ): Promise<LinearWeight[]> {
    return this.loader.quantizableKey(join(this.prefix, name), shape, group, ranges);
  }

  has(name: string): boolean {
    return this.loader.has(join(this.prefix, name));
  }
}
