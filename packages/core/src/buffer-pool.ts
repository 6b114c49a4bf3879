// Storage buffers, reused by size class. Sizes are rounded up to one of eight steps per power of two (at most
// 12.5% waste), so a released buffer serves any later request of the same class. Users read the figures
// through `stats`; bytes in use count whole classes, which is what the GPU really holds.

import type { Device } from './device.js';
import { LimitError, OutOfMemoryError } from './errors.js';

export interface PoolStats {
  /** Bytes of buffers handed out and not yet released. */
  bytesInUse: number;
  peakBytesInUse: number;
  /** Bytes of all buffers the pool holds, in use or free. */
  bytesAllocated: number;
  peakBytesAllocated: number;
  /** Acquisitions served by a released buffer instead of a new allocation. */
  reused: number;
  created: number;
}

const USAGE = 0x80 /* STORAGE */ | 0x04 /* COPY_SRC */ | 0x08; /* COPY_DST */

/** The size class a request of `bytes` is served from. */
export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 4096) return b;
  const step = 2 ** (Math.ceil(Math.log2(b)) - 4); // eight steps between 2^(k-1) and 2^k
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private readonly device: Device;
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly sizes = new Map<GPUBuffer, number>();
  private readonly inUse = new Set<GPUBuffer>();
  /** Buffers handed out since the last trimIdle(). */
  private readonly taken = new Set<GPUBuffer>();
  private s: PoolStats = {
    bytesInUse: 0,
    peakBytesInUse: 0,
    bytesAllocated: 0,
    peakBytesAllocated: 0,
    reused: 0,
    created: 0,
  };

  constructor(device: Device) {
    this.device = device;
  }

  get stats(): Readonly<PoolStats> {
    return { ...this.s };
  }

  /** Restarts the peak figures from the current ones (e.g. before measuring one phase). */
  resetPeaks(): void {
    this.s.peakBytesInUse = this.s.bytesInUse;
    this.s.peakBytesAllocated = this.s.bytesAllocated;
  }

  /** A storage buffer of at least `bytes` (usage STORAGE | COPY_SRC | COPY_DST). */
  async acquire(bytes: number, label = 'buffer'): Promise<GPUBuffer> {
    this.device.check();
    const maxBuffer = this.device.limits.maxBufferSize;
    if (bytes > maxBuffer) {
      throw new LimitError(
        `'${label}' needs a buffer of ${bytes} bytes, above this device's maxBufferSize of ${maxBuffer}`,
      );
    }
    let size = sizeClass(bytes);
    if (size > maxBuffer) size = Math.ceil(bytes / 4) * 4;
    const cached = this.free.get(size)?.pop();
    const buffer = cached ?? (await this.create(size, label));
    if (cached) this.s.reused++;
    this.inUse.add(buffer);
    this.taken.add(buffer);
    this.s.bytesInUse += size;
    this.s.peakBytesInUse = Math.max(this.s.peakBytesInUse, this.s.bytesInUse);
    return buffer;
  }

  /** Returns a buffer to the pool for reuse. */
  release(buffer: GPUBuffer): void {
    if (!this.inUse.delete(buffer)) return;
    const size = this.sizes.get(buffer)!;
    this.s.bytesInUse -= size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buffer);
  }

  /**
   * How many of `sizes`' bytes the device can hold at once beside what is in use: the free buffers are trimmed,
   * then every buffer is created and held until one fails, then all are destroyed. Returns the bytes held before
   * the first failure (the sum of `sizes` when all fit). Used before a long download to know it will fit.
   */
  async probe(sizes: readonly number[]): Promise<number> {
    this.device.check();
    this.trim();
    const held: GPUBuffer[] = [];
    let bytes = 0;
    try {
      for (const size of sizes) {
        if (size > this.device.limits.maxBufferSize) break; // a validation error, not a lack of memory: it cannot be held
        const b = await this.tryCreate(size, 'memory probe');
        if (!b) break;
        held.push(b);
        bytes += size;
      }
    } finally {
      for (const b of held) b.destroy();
    }
    return bytes;
  }

  /** Destroys the free buffers, returning their memory to the device. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) this.destroy(b);
    this.free.clear();
  }

  /**
   * Destroys the free buffers that no acquire() has taken since the last call: called after each piece of work
   * (a reply), it keeps cached what that work used and gives back what it did not, so the memory held stays that
   * of the work in progress instead of growing with every new mix of sizes.
   */
  trimIdle(): void {
    for (const [size, list] of this.free) {
      const keep = list.filter((b) => this.taken.has(b));
      for (const b of list) if (!this.taken.has(b)) this.destroy(b);
      if (keep.length > 0) this.free.set(size, keep);
      else this.free.delete(size);
    }
    this.taken.clear();
  }

  destroyAll(): void {
    this.trim();
    for (const b of this.inUse) this.destroy(b);
    this.inUse.clear();
    this.s.bytesInUse = 0;
  }

  private destroy(buffer: GPUBuffer): void {
    this.s.bytesAllocated -= this.sizes.get(buffer) ?? 0;
    this.sizes.delete(buffer);
    this.taken.delete(buffer);
    buffer.destroy();
  }

  private async create(size: number, label: string): Promise<GPUBuffer> {
    let buffer = await this.tryCreate(size, label);
    if (!buffer) {
      this.trim(); // free cached buffers and try once more before giving up
      buffer = await this.tryCreate(size, label);
    }
    if (!buffer) {
      throw new OutOfMemoryError(
        `could not allocate ${size} bytes for '${label}' (${this.s.bytesInUse} bytes already in use on ${this.device.adapter.description || 'the device'})`,
      );
    }
    this.sizes.set(buffer, size);
    this.s.created++;
    this.s.bytesAllocated += size;
    this.s.peakBytesAllocated = Math.max(this.s.peakBytesAllocated, this.s.bytesAllocated);
    return buffer;
  }

  private async tryCreate(size: number, label: string): Promise<GPUBuffer | undefined> {
    const gpu = this.device.gpu;
    gpu.pushErrorScope('out-of-memory');
    const buffer = gpu.createBuffer({ size, usage: USAGE, label });
    const err = await gpu.popErrorScope();
    if (!err) return buffer;
    buffer.destroy();
    return undefined;
  }
}
