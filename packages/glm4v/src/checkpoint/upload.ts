// Streams tensor bytes from the checkpoint's files to GPU buffers through bounded staging memory.
//
// A copy is cut into pieces (a multiple of 4 bytes, as writeBuffer requires). Up to `depth` positioned reads are
// in flight at once, each into its own reused staging array, so disk reads overlap the writeBuffer copies; the
// staging arrays total at most `maxStagingBytes`. writeBuffer copies into Dawn's own staging, which Dawn frees only
// once the GPU has passed the copy, so after every `maxStagingBytes` written we wait for
// `queue.onSubmittedWorkDone()`: host memory stays bounded by about twice the staging budget. Copies run one at
// a time (a loader-wide queue), so concurrent requests from the model share the same budget.
//
// Pieces are at most 4 MiB, 4 in flight (16 MiB of staging by default): Dawn stages writeBuffer data in a 4 MiB
// upload ring, and a larger write gets a staging allocation of its own each time, i.e. fresh memory to fault in.
// Measured with bench/load on lavapipe, warm GPU buffers: 16 MiB pieces reached ~0.5× a plain 16 MiB
// read-and-writeBuffer loop, 4 MiB pieces ~1.3×; smaller pieces or deeper queues gained nothing.

import { AbortError, type Device, InputError, type Tensor } from '@glm4v/core';
import type { QuantFormat } from '@glm4v/kernels';
import type { Checkpoint } from './checkpoint.js';
import type { TensorInfo } from './safetensors.js';

export interface LoadProgress {
  bytesDone: number;
  bytesTotal: number;
  /** The tensor being uploaded (its name after renames). */
  tensor: string;
}

export interface LoadOptions {
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** Host staging memory in flight, in bytes (default 64 MiB, at least 1 KiB). */
  maxStagingBytes?: number;
  /** Cap on one row chunk of a matrix, below the device's storage binding limit (mostly for tests). */
  maxChunkBytes?: number;
  /** Load the quantisable weights of these groups in these formats (e.g. { text: 'q4' }), quantising as they stream; see quantized.ts. */
  quantFormats?: Readonly<Record<string, QuantFormat | undefined>>;
}

export const DEFAULT_STAGING_BYTES = 64 * 2 ** 20;
const MAX_PIECE = 4 * 2 ** 20;
const MAX_DEPTH = 4;

export class Uploader {
  readonly pieceBytes: number;
  readonly depth: number;
  private readonly syncEvery: number;
  private readonly free: Uint8Array[] = [];
  private allocated = 0;
  private bytesDone = 0;
  private sinceSync = 0;
  private readonly perKey = new Map<string, number>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly device: Device,
    private readonly ckpt: Checkpoint,
    private readonly opts: LoadOptions,
  ) {
    const staging = opts.maxStagingBytes ?? DEFAULT_STAGING_BYTES;
    if (!Number.isSafeInteger(staging) || staging < 1024)
      throw new InputError(`maxStagingBytes must be an integer ≥ 1024, got ${staging}`);
    this.pieceBytes = Math.min(MAX_PIECE, Math.floor(staging / MAX_DEPTH / 4) * 4);
    this.depth = Math.min(MAX_DEPTH, Math.floor(staging / this.pieceBytes));
    this.syncEvery = staging;
  }

  /** Bytes of host staging arrays allocated so far (never above maxStagingBytes). */
  get stagingBytes(): number {
    return this.allocated * this.pieceBytes;
  }

  /** Runs `fn` after every earlier exclusive call has finished (one upload at a time). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  throwIfAborted(): void {
    if (this.opts.signal?.aborted) throw new AbortError(`checkpoint load from ${this.ckpt.dir} aborted`);
  }

  /** Copies `length` bytes of `info`, from byte `start`, into `dst` at byte `dstOffset` (a multiple of 4). */
  copy(info: TensorInfo, start: number, length: number, dst: Tensor, dstOffset: number): Promise<void> {
    return this.stream(info, start, length, this.pieceBytes, (buf, len, off) =>
      this.write(buf, len, dst, dstOffset + off),
    );
  }

  /**
   * Streams `length` bytes of `info` from byte `start` through `sink` in pieces of at most `pieceBytes` (at most
   * the uploader's piece size; a multiple of 4), each with its offset from `start`. The sink queues its GPU writes
   * and reports their bytes, so that Dawn's staging is waited for as in copy().
   */
  async stream(
    info: TensorInfo,
    start: number,
    length: number,
    pieceBytes: number,
    sink: (buf: Uint8Array, len: number, offset: number) => number,
  ): Promise<void> {
    this.throwIfAborted();
    const piece = pieceBytes;
    const n = Math.ceil(length / piece);
    const pending: Promise<Uint8Array>[] = [];
    let issued = 0;
    const issue = () => {
      const off = issued++ * piece;
      const buf = this.take();
      const read = this.ckpt.readInto(info, start + off, buf.subarray(0, Math.min(piece, length - off))).then(
        () => buf,
        (e) => {
          this.free.push(buf);
          throw e;
        },
      );
      read.catch(() => undefined); // observed below; avoids an unhandled rejection while earlier pieces are written
      pending.push(read);
    };
    try {
      while (issued < n && pending.length < this.depth) issue();
      for (let i = 0; i < n; i++) {
        const buf = await pending.shift()!;
        const len = Math.min(piece, length - i * piece);
        this.sinceSync += sink(buf, len, i * piece);
        this.free.push(buf);
        this.throwIfAborted();
        if (issued < n) issue();
        this.advance(info.name, len, info.byteLength);
        if (this.sinceSync >= this.syncEvery) await this.sync();
      }
    } finally {
      // On failure, let reads still in flight land before their staging arrays are reused.
      for (const p of await Promise.allSettled(pending)) if (p.status === 'fulfilled') this.free.push(p.value);
    }
  }

  private take(): Uint8Array {
    const buf = this.free.pop();
    if (buf) return buf;
    this.allocated++;
    return new Uint8Array(this.pieceBytes);
  }

  private write(buf: Uint8Array, len: number, dst: Tensor, dstOffset: number): number {
    const size = Math.ceil(len / 4) * 4; // bf16 with an odd count: the tensor's storage is padded to whole words
    if (size > len) buf.fill(0, len, size);
    this.device.gpu.queue.writeBuffer(dst.buffer, dst.offset + dstOffset, buf.buffer, buf.byteOffset, size);
    return size;
  }

  /** Waits for the GPU to pass every queued write, so Dawn can free its staging; surfaces device errors. */
  async sync(): Promise<void> {
    this.sinceSync = 0;
    await this.device.sync();
  }

  /** Progress of `key`, counted at most once per tensor so the total ends at the checkpoint's size. */
  private advance(key: string, bytes: number, cap: number): void {
    const done = this.perKey.get(key) ?? 0;
    const add = Math.min(bytes, cap - done);
    if (add <= 0) return;
    this.perKey.set(key, done + add);
    this.bytesDone += add;
    this.opts.onProgress?.({ bytesDone: this.bytesDone, bytesTotal: this.ckpt.totalBytes, tensor: key });
  }

  /** Marks `key` fully loaded (a tensor taken in row ranges that skip some rows still counts whole). */
  complete(info: TensorInfo): void {
    this.advance(info.name, info.byteLength, info.byteLength);
    if (info.byteLength === 0)
      this.opts.onProgress?.({ bytesDone: this.bytesDone, bytesTotal: this.ckpt.totalBytes, tensor: info.name });
  }
}
