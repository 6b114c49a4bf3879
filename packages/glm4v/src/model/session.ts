// One conversation's state on the GPU: a KV cache per decoder layer (preallocated for the requested context),
// how many tokens it holds, the rotary offset (ropeDelta, spec §8.2), and the last chosen token, which the next
// decode step reads directly on the GPU.

import { type Device, Graph, InputError, Tensor } from '@glm4v/core';
import { type KvCache, type KvDType, createKvCache } from '@glm4v/kernels';
import type { TextConfig } from '../config.js';

export class Session {
  readonly capacity: number;
  readonly caches: readonly KvCache[];
  /** u32 [1]: the last token chosen (by prefill or a decode step), not yet in the cache. */
  readonly token: Tensor;
  /** Tokens in the cache. */
  length = 0;
  /** Rotary position of cache index n is n + ropeDelta (≤ 0 after images). */
  ropeDelta = 0;
  private disposed = false;

  private constructor(
    private readonly device: Device,
    private readonly config: TextConfig,
    capacity: number,
    caches: KvCache[],
    token: Tensor,
  ) {
    this.capacity = capacity;
    this.caches = caches;
    this.token = token;
  }

  static async create(device: Device, c: TextConfig, capacity: number, cacheDType: KvDType = 'f32'): Promise<Session> {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > c.maxPositionEmbeddings) {
      throw new InputError(`context of ${capacity} tokens: expected 1 to ${c.maxPositionEmbeddings} (max_position_embeddings)`);
    }
    const caches: KvCache[] = [];
    try {
      for (let i = 0; i < c.numLayers; i++) caches.push(await createKvCache(device, c.numKvHeads, capacity, c.headDim, cacheDType, `kv.layers.${i}`));
      return new Session(device, c, capacity, caches, await Tensor.empty(device, 'u32', [1], 'session.token'));
    } catch (e) {
      disposeCaches(caches);
      throw e;
    }
  }

  /**
   * A session of `capacity` tokens holding this one's cached tokens (keys and values copied on the GPU, head by
   * head: the caches are [heads, capacity, headDim]) and rotary offset. This one is disposed.
   */
  async grow(capacity: number): Promise<Session> {
    const k0 = this.caches[0].k;
    const next = await Session.create(this.device, this.config, capacity, k0.dtype as KvDType);
    const g = new Graph(this.device, 'session.grow');
    try {
      const rowBytes = k0.byteSize / (k0.shape[0] * this.capacity);
      for (let l = 0; l < this.caches.length && this.length > 0; l++) {
        for (const kv of ['k', 'v'] as const) {
          for (let h = 0; h < k0.shape[0]; h++) g.copy(this.caches[l][kv], next.caches[l][kv], this.length * rowBytes, h * this.capacity * rowBytes, h * capacity * rowBytes);
        }
      }
      await g.run();
    } catch (e) {
      next.dispose();
      throw e;
    } finally {
      g.dispose();
    }
    next.length = this.length;
    next.ropeDelta = this.ropeDelta;
    this.dispose();
    return next;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    disposeCaches(this.caches);
    this.token.dispose();
  }
}

function disposeCaches(caches: readonly KvCache[]): void {
  for (const kv of caches) {
    kv.k.dispose();
    kv.v.dispose();
  }
}
