// A tensor is a dtype, a shape and a place in a GPU buffer. Tensors made by a graph get their place when the
// graph is planned; tensors made here own a pooled buffer until dispose().

import type { Device } from './device.js';
import { type DType, type HostArray, decode, encode, itemSize, numelOf, storageBytes } from './dtype.js';
import { DeviceError, InputError } from './errors.js';

export interface Storage {
  buffer: GPUBuffer;
  /** Byte offset of element 0 in the buffer. */
  offset: number;
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly device: Device;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly numel: number;
  readonly label: string;
  private storage: Storage | undefined;
  private owned = false;
  /** For views: the tensor whose storage this one shares, and the byte offset into it. */
  private base: Tensor | undefined;
  private baseOffset = 0;

  constructor(device: Device, dtype: DType, shape: readonly number[], label = 'tensor', storage?: Storage) {
    this.device = device;
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.numel = numelOf(shape);
    this.label = label;
    this.storage = storage;
  }

  /** Bytes this tensor occupies (16-bit types padded to whole u32 words). */
  get byteSize(): number {
    return storageBytes(this.dtype, this.numel);
  }

  /** The tensor that owns the storage (itself unless this is a view). */
  get root(): Tensor {
    return this.base ? this.base.root : this;
  }

  get buffer(): GPUBuffer {
    if (this.base) return this.base.buffer;
    if (!this.storage)
      throw new DeviceError(`tensor '${this.label}' has no storage yet (plan its graph first, or it was disposed)`);
    return this.storage.buffer;
  }

  get offset(): number {
    return this.base ? this.base.offset + this.baseOffset : (this.storage?.offset ?? 0);
  }

  /**
   * A view sharing this tensor's storage: a new shape over `numel(shape)` elements starting at `elementOffset`.
   * Works on graph intermediates before they are placed. A view bound to a kernel must start on the device's
   * storage offset alignment (256 bytes); the graph checks that when recording.
   */
  view(shape: readonly number[], elementOffset = 0, label = `${this.label}.view`): Tensor {
    const v = new Tensor(this.device, this.dtype, shape, label);
    const byteOffset = elementOffset * itemSize(this.dtype);
    if (
      !Number.isInteger(elementOffset) ||
      elementOffset < 0 ||
      elementOffset + v.numel > this.numel ||
      byteOffset % 4 !== 0
    ) {
      throw new InputError(
        `view of '${this.label}' [${this.shape.join(', ')}]: [${shape.join(', ')}] at element ${elementOffset} does not fit (or is not word-aligned)`,
      );
    }
    v.base = this;
    v.baseOffset = byteOffset;
    return v;
  }

  /** The same elements with another shape (a view at offset 0). */
  reshape(shape: readonly number[]): Tensor {
    const v = this.view(shape, 0, this.label);
    if (v.numel !== this.numel)
      throw new InputError(
        `reshape of '${this.label}' [${this.shape.join(', ')}] to [${shape.join(', ')}]: ${this.numel} vs ${v.numel} elements`,
      );
    return v;
  }

  /** Used by the graph planner to place an intermediate tensor. */
  bind(storage: Storage | undefined): void {
    if (this.base) throw new DeviceError(`tensor '${this.label}' is a view; place its root instead`);
    this.storage = storage;
  }

  /** An uninitialised tensor in a pooled buffer, owned by the caller. */
  static async empty(device: Device, dtype: DType, shape: readonly number[], label = 'tensor'): Promise<Tensor> {
    const t = new Tensor(device, dtype, shape, label);
    t.storage = { buffer: await device.pool.acquire(Math.max(4, t.byteSize), label), offset: 0 };
    t.owned = true;
    return t;
  }

  /** A tensor holding `data` (f16/bf16: Uint16Array taken as raw bits, other arrays rounded to nearest even). */
  static async fromArray(
    device: Device,
    dtype: DType,
    shape: readonly number[],
    data: HostArray,
    label = 'tensor',
  ): Promise<Tensor> {
    const n = numelOf(shape);
    if (data.length !== n)
      throw new InputError(`'${label}': ${data.length} values given for shape [${shape.join(', ')}] (${n} elements)`);
    const t = await Tensor.empty(device, dtype, shape, label);
    try {
      t.write(data);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  /** Overwrites the tensor's contents (queued; ordered before later submissions). */
  write(data: HostArray, elementOffset = 0): void {
    this.device.check();
    if (elementOffset + data.length > this.numel) {
      throw new InputError(
        `'${this.label}': writing ${data.length} values at ${elementOffset} overflows its ${this.numel} elements`,
      );
    }
    const size = itemSize(this.dtype);
    // 16-bit elements travel in whole u32 words: a write must not split the word of an element it does not own
    if (
      size === 2 &&
      (elementOffset % 2 !== 0 || (data.length % 2 !== 0 && elementOffset + data.length !== this.numel))
    ) {
      throw new InputError(
        `'${this.label}': a 16-bit write of ${data.length} values at ${elementOffset} must start at an even element and end at an even element or the tensor's end`,
      );
    }
    this.writeBytes(encode(this.dtype, data), elementOffset * size);
  }

  /** Writes raw bytes at a byte offset (a multiple of 4). */
  writeBytes(bytes: Uint8Array, byteOffset = 0): void {
    this.device.check();
    const padded = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
    this.device.gpu.queue.writeBuffer(
      this.buffer,
      this.offset + byteOffset,
      padded.buffer,
      padded.byteOffset,
      padded.byteLength,
    );
  }

  /** Reads the contents back: f32 for float types (16-bit widened exactly), i32/u32 as stored. */
  async read(): Promise<Float32Array | Int32Array | Uint32Array> {
    return decode(this.dtype, await this.readBytes(), this.numel);
  }

  /** Reads the stored bytes (16-bit types still packed). */
  async readBytes(): Promise<Uint8Array> {
    const device = this.device;
    device.check();
    const size = this.byteSize;
    if (size === 0) return new Uint8Array(0);
    const staging = device.gpu.createBuffer({
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label: `${this.label}:readback`,
    });
    try {
      const enc = device.gpu.createCommandEncoder();
      enc.copyBufferToBuffer(this.buffer, this.offset, staging, 0, size);
      device.gpu.queue.submit([enc.finish()]);
      await device.guard(staging.mapAsync(GPUMapMode.READ));
      device.check();
      return new Uint8Array(staging.getMappedRange().slice(0));
    } finally {
      staging.destroy();
    }
  }

  /** Returns an owned tensor's buffer to the pool. Graph tensors are released by their graph. */
  dispose(): void {
    if (this.owned && this.storage) this.device.pool.release(this.storage.buffer);
    if (this.owned) this.storage = undefined;
  }

  toString(): string {
    return `Tensor(${this.label}: ${this.dtype}[${this.shape.join(', ')}])`;
  }
}

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  out.set(bytes);
  return out;
}
