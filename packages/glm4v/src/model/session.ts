// Where conversations live on the GPU. A KvPool holds, for `slots` sequences of up to `capacity` tokens each, a KV
// cache per decoder layer ([slots, kv heads, capacity, head dim]), the sampler's per-slot state (options and seen
// tokens) and each slot's last chosen token (tokens [slots], which the next decode step reads on the GPU). A
// Session is one slot in use: how many tokens its cache holds, its rotary offset (ropeDelta, docs/model.md#decode-positions) and how
// many decode steps it has taken (the sampler's draw counter). A batch decodes several sessions of one pool in one
// step; disposing a session frees its slot at once for the next sequence. A conversation keeps its session across
// turns (generate/conversation.ts) and grows it when a turn needs more room.

import { type Device, Graph, InputError, Tensor } from '@glm4v/core';
import {
  type KvCache,
  type KvDType,
  type SamplerState,
  type SamplingMode,
  type SamplingOptions,
  createKvCache,
  createSamplerState,
  setSamplerOptions,
} from '@glm4v/kernels';
import type { TextConfig } from '../config.js';

export class KvPool {
  readonly slots: number;
  readonly capacity: number;
  readonly caches: readonly KvCache[];
  readonly sampler: SamplerState;
  /** u32 [slots]: each slot's last chosen token, not yet in its cache. */
  readonly tokens: Tensor;
  private readonly free: number[];
  private disposed = false;

  private constructor(
    readonly device: Device,
    readonly config: TextConfig,
    slots: number,
    capacity: number,
    caches: KvCache[],
    sampler: SamplerState,
    tokens: Tensor,
  ) {
    this.slots = slots;
    this.capacity = capacity;
    this.caches = caches;
    this.sampler = sampler;
    this.tokens = tokens;
    this.free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
  }

  static async create(
    device: Device,
    c: TextConfig,
    slots: number,
    capacity: number,
    cacheDType: KvDType = 'f32',
  ): Promise<KvPool> {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > c.maxPositionEmbeddings) {
      throw new InputError(
        `context of ${capacity} tokens: expected 1 to ${c.maxPositionEmbeddings} (max_position_embeddings)`,
      );
    }
    if (!Number.isInteger(slots) || slots < 1)
      throw new InputError(`a pool of ${slots} sequences: expected an integer ≥ 1`);
    const owned: { dispose(): void }[] = [];
    try {
      const caches: KvCache[] = [];
      for (let i = 0; i < c.numLayers; i++) {
        const kv = await createKvCache(device, c.numKvHeads, capacity, c.headDim, cacheDType, `kv.layers.${i}`, slots);
        owned.push(kv.k, kv.v);
        caches.push(kv);
      }
      const sampler = await createSamplerState(device, c.vocabSize, slots);
      owned.push(sampler);
      const tokens = await Tensor.empty(device, 'u32', [slots], 'pool.tokens');
      return new KvPool(device, c, slots, capacity, caches, sampler, tokens);
    } catch (e) {
      owned.forEach((o) => o.dispose());
      throw e;
    }
  }

  /** A free slot as a new empty session (greedy, nothing seen), or undefined when every slot is taken. */
  acquire(ownsPool = false): Session | undefined {
    if (this.disposed) throw new InputError('this KV pool has been disposed');
    const slot = this.free.pop();
    if (slot === undefined) return undefined;
    const s = new Session(this, slot, ownsPool);
    s.setSampling(undefined);
    return s;
  }

  /** Called by Session.dispose. */
  release(slot: number): void {
    if (!this.disposed && !this.free.includes(slot)) this.free.push(slot);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const kv of this.caches) {
      kv.k.dispose();
      kv.v.dispose();
    }
    this.sampler.dispose();
    this.tokens.dispose();
  }
}

export class Session {
  /** Tokens in the cache. */
  length = 0;
  /** Rotary position of cache index n is n + ropeDelta (≤ 0 after images). */
  ropeDelta = 0;
  /** Decode steps taken: the next one draws with counter steps + 1 (prefill's choice draws with 0). */
  steps = 0;
  /** How this session's tokens are chosen (setSampling). */
  mode: SamplingMode = 'greedy';
  private disposed = false;

  constructor(
    readonly pool: KvPool,
    readonly slot: number,
    private readonly ownsPool: boolean,
  ) {}

  get capacity(): number {
    return this.pool.capacity;
  }

  get caches(): readonly KvCache[] {
    return this.pool.caches;
  }

  /**
   * How the next reply's tokens are chosen (undefined: plain argmax): forgets the tokens seen so far, and counts the
   * draws from 0 again (a seed gives a reply the same tokens whatever the session held before).
   */
  setSampling(opts: SamplingOptions | undefined): void {
    this.mode = setSamplerOptions(this.pool.sampler, this.slot, opts);
    this.steps = 0;
  }

  /** The last token chosen for this session (by prefill or a decode step), once the GPU has written it. */
  async readToken(): Promise<number> {
    return (await this.pool.tokens.view([1], this.slot, `pool.tokens[${this.slot}]`).read())[0];
  }

  /**
   * This session's tokens in a session of its own of `capacity` tokens (a pool of one slot, freed with it): keys
   * and values copied on the GPU head by head (the caches are [slots, heads, capacity, head dim]), with the length
   * and rotary offset. This one is disposed.
   */
  async grow(capacity: number): Promise<Session> {
    const { device, config, caches } = this.pool;
    const k0 = caches[0].k;
    const next = (await KvPool.create(device, config, 1, capacity, k0.dtype as KvDType)).acquire(true)!;
    const g = new Graph(device, 'session.grow');
    try {
      const heads = k0.shape[1];
      const rowBytes = k0.byteSize / (this.pool.slots * heads * this.capacity);
      for (let l = 0; l < caches.length && this.length > 0; l++) {
        for (const kv of ['k', 'v'] as const) {
          for (let h = 0; h < heads; h++) {
            g.copy(
              caches[l][kv],
              next.caches[l][kv],
              this.length * rowBytes,
              (this.slot * heads + h) * this.capacity * rowBytes,
              h * capacity * rowBytes,
            );
          }
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

  /** Frees the slot (and the pool, for a session made on its own by Glm4vModel.createSession). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ownsPool) this.pool.dispose();
    else this.pool.release(this.slot);
  }
}
