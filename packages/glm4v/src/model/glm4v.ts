// Glm4vForConditionalGeneration on the GPU: the vision tower, the decoder and the two ways of running it —
// prefill (one pass over a sequence's prompt, in chunks so activation memory stays bounded, and so a scheduler can
// interleave them with decode steps) and decode (one recorded step for a batch of sequences, replayed per token).
// docs/model.md#one-request is the outline followed here.

import {
  AbortError,
  ContextOverflowError,
  type Device,
  Graph,
  InputError,
  type Params,
  type ProfileEntry,
  type ReplayStats,
  Tensor,
} from '@glm4v/core';
import { type KvDType, ROW_FIELDS, embedding, matmulWeightDType, rowsTable, sample } from '@glm4v/kernels';
import type { Glm4vConfig } from '../config.js';
import { type Grid, type MediaPlan, planMedia } from '../media-plan.js';
import { type RopeIndex, ropeIndex } from '../rope-index.js';
import { KvPool, type Session } from './session.js';
import { Glm4vTextModel } from './text.js';
import { Glm4vVisionModel, checkVisionFits, patchLength, visionBytesPerPatch } from './vision.js';
import { visionLayout } from './vision-layout.js';
import { F16Matrices, type WeightSource } from './weight-source.js';
import { concatFloat32 } from '../arrays.js';

/** [h, w] patches of one vision frame (media-plan.ts). */
type Frame = readonly [number, number];

/** Flattened patches of all images (or all videos) of a prompt, in prompt order, with their grids. */
export interface VisionInput {
  pixelValues: Float32Array;
  grids: readonly Grid[];
}

export interface PrefillInput {
  ids: Int32Array;
  images?: VisionInput;
  videos?: VisionInput;
}

export interface PrefillOptions {
  /** Logits of every position instead of the last one only (conformance checks). */
  allLogits?: boolean;
  /** Read back the named intermediate activations of the fixtures (image_embeds, inputs_embeds, ...). */
  taps?: boolean;
  /** Tokens per prefill pass; default from the device's binding limit. */
  chunkTokens?: number;
  signal?: AbortSignal;
}

export type Taps = Record<string, Float32Array | Int32Array>;

export interface PrefillResult {
  /** [S, V] f32 with allLogits. */
  logits?: Float32Array;
  taps?: Taps;
}

export interface DecodeOptions {
  /** Keep the step's logits [M, V] so they can be read (`step.logits`). */
  keepLogits?: boolean;
}

/**
 * A recorded decode step for `rows` sessions of one pool, replayed once per token with any sessions of that pool:
 * each appends its last token to its cache and chooses the next one (as its sampling options say) into
 * pool.tokens[slot]. Row r's result depends on its own session only (the kernels keep each row's arithmetic the
 * same whatever the batch), so a batch gives each session the tokens it would get alone.
 */
export class DecodeStep {
  constructor(
    private readonly graph: Graph,
    readonly pool: KvPool,
    private readonly rows: Tensor,
    readonly logits: Tensor | undefined,
  ) {}

  get size(): number {
    return this.rows.shape[0];
  }

  /** The last run's host-side work: dispatches encoded and bytes written per token (uniforms, and the rows table). */
  get lastRun(): ReplayStats & { rowsBytes: number } {
    return { ...this.graph.lastRun, rowsBytes: this.rows.byteSize };
  }

  /** Runs the step for `sessions` (as many as the step has rows): submitted, not waited for. */
  async run(sessions: readonly Session[]): Promise<void> {
    await this.graph.run(this.params(sessions));
    this.advance(sessions);
  }

  /** run() with a timestamped pass per dispatch: each dispatch's label and GPU time (bench:model --profile). */
  async profile(sessions: readonly Session[]): Promise<ProfileEntry[]> {
    const entries = await this.graph.profile(this.params(sessions));
    this.advance(sessions);
    return entries;
  }

  /** Checks the sessions, writes their rows table, and gives the graph's parameters. */
  private params(sessions: readonly Session[]): Params {
    if (sessions.length !== this.size)
      throw new InputError(`a decode step for ${this.size} sequences was given ${sessions.length}`);
    for (const s of sessions) {
      if (s.pool !== this.pool)
        throw new InputError(`session in slot ${s.slot} belongs to another KV pool than this decode step`);
      if (s.length >= s.capacity)
        throw new ContextOverflowError(`the context of ${s.capacity} tokens is full (slot ${s.slot})`);
    }
    this.rows.write(
      rowsTable(
        sessions.map((s) => ({ slot: s.slot, pos: s.length, ropePos: s.length + s.ropeDelta, step: s.steps + 1 })),
      ),
    );
    const has = (mode: string) => (sessions.some((s) => s.mode === mode) ? 1 : 0);
    return {
      maxKeys: Math.max(...sessions.map((s) => s.length)) + 1,
      greedy: has('greedy'),
      full: has('full'),
      top: has('top'),
    };
  }

  private advance(sessions: readonly Session[]): void {
    for (const s of sessions) {
      s.length++;
      s.steps++;
    }
  }

  dispose(): void {
    this.graph.dispose();
    this.rows.dispose();
  }
}

export class Glm4vModel {
  readonly device: Device;
  readonly config: Glm4vConfig;
  readonly vision: Glm4vVisionModel;
  readonly text: Glm4vTextModel;

  constructor(device: Device, config: Glm4vConfig, vision: Glm4vVisionModel, text: Glm4vTextModel) {
    this.device = device;
    this.config = config;
    this.vision = vision;
    this.text = text;
  }

  /**
   * Builds every module from a weight source whose root is the checkpoint root. With `f16Matrices` (default: where
   * the tensor-core matmul takes f16 operands, kernels' matmulWeightDType) the matrices are converted to f16 as
   * they load (F16Matrices).
   */
  static async build(
    device: Device,
    config: Glm4vConfig,
    w: WeightSource,
    opts: { f16Matrices?: boolean } = {},
  ): Promise<Glm4vModel> {
    const f16 = (opts.f16Matrices ?? matmulWeightDType(device) === 'f16') ? new F16Matrices(w, device) : undefined;
    const src = f16 ?? w;
    let vision: Glm4vVisionModel | undefined;
    try {
      vision = await Glm4vVisionModel.load(src.scope('model.visual'), config.vision);
      const text = await Glm4vTextModel.load(src.scope('model.language_model'), src.scope('lm_head'), config.text);
      return new Glm4vModel(device, config, vision, text);
    } catch (e) {
      vision?.dispose();
      f16?.dispose();
      throw e;
    }
  }

  /** KV caches, sampler state and last tokens for `slots` sequences of up to `capacity` tokens each. */
  async createPool(slots: number, capacity: number, cacheDType: KvDType = 'f32'): Promise<KvPool> {
    return KvPool.create(this.device, this.config.text, slots, capacity, cacheDType);
  }

  /** One sequence on its own: a pool of one slot, freed with the session. */
  async createSession(capacity: number, cacheDType: KvDType = 'f32'): Promise<Session> {
    return (await this.createPool(1, capacity, cacheDType)).acquire(true)!;
  }

  /**
   * Tokens per prefill pass such that the widest activation fits one storage binding: the fused gate/up output
   * [n, 2·intermediate] f32, or with `allLogits` the logits [n, vocab] f32.
   */
  defaultChunkTokens(allLogits = false): number {
    const t = this.config.text;
    const widest =
      Math.max(2 * t.intermediateSize, t.numHeads * t.headDim, t.hiddenSize, allLogits ? t.vocabSize : 0) * 4;
    return Math.max(1, Math.min(512, Math.floor(this.device.limits.maxStorageBufferBindingSize / widest)));
  }

  /**
   * Runs the vision tower over every image (or video temporal patch): embeddings [tokens, out_hidden], owned by the
   * caller. Images run in batches whose widest activation fits one storage binding; each image attends only to
   * itself, so batching changes nothing but memory. `maxBindingBytes` (default: the device's limit) is for tests;
   * `taps` receives the vision tower's inner taps over every patch.
   */
  async encodeVision(
    v: VisionInput,
    maxBindingBytes = this.device.limits.maxStorageBufferBindingSize,
    taps?: Taps,
  ): Promise<Tensor> {
    return this.encodeFrames(
      v.pixelValues,
      planMedia(v.grids, [], this.config.vision.spatialMergeSize, 'encodeVision'),
      maxBindingBytes,
      taps,
    );
  }

  /** encodeVision() of the frames of a media plan. */
  private async encodeFrames(
    pixels: Float32Array,
    plan: MediaPlan,
    maxBindingBytes: number,
    taps?: Taps,
  ): Promise<Tensor> {
    const c = this.config.vision;
    const patchLen = patchLength(c);
    if (pixels.length !== plan.patches * patchLen) {
      throw new InputError(
        `pixel values hold ${pixels.length / patchLen} patches of ${patchLen}; the grids describe ${plan.patches}`,
      );
    }
    const merge = plan.mergeSize;
    const out = await Tensor.empty(this.device, 'f32', [plan.tokens, c.outHiddenSize], 'image_embeds');
    try {
      let first = 0;
      for (const batch of this.visionBatches(plan.frames, maxBindingBytes)) {
        const n = batch.reduce((k, [h, w]) => k + h * w, 0);
        await this.encodeBatch(
          pixels.subarray(first * patchLen, (first + n) * patchLen),
          batch,
          out,
          first / (merge * merge),
          maxBindingBytes,
          taps,
        );
        first += n;
      }
      return out;
    } catch (e) {
      out.dispose();
      throw e;
    }
  }

  /** Consecutive frames grouped so the widest vision activation of a group fits one storage binding. */
  private visionBatches(frames: readonly Frame[], limit: number): Frame[][] {
    const c = this.config.vision;
    checkVisionFits(
      frames.map(([h, w]): Grid => [1, h, w]),
      c,
      limit,
    );
    const perPatch = visionBytesPerPatch(c);
    const batches: Frame[][] = [];
    let size = 0;
    for (const f of frames) {
      const n = f[0] * f[1];
      if (batches.length === 0 || (size + n) * perPatch > limit) {
        batches.push([]);
        size = 0;
      }
      batches[batches.length - 1].push(f);
      size += n;
    }
    return batches;
  }

  /** One vision pass over `frames`, its embeddings written into `out` from row `row`, its taps appended to `taps`. */
  private async encodeBatch(
    pixels: Float32Array,
    frames: readonly Frame[],
    out: Tensor,
    row: number,
    maxBindingBytes: number,
    taps?: Taps,
  ): Promise<void> {
    const c = this.config.vision;
    const layout = visionLayout(frames, c.spatialMergeSize);
    const d = this.device;
    const inputs: Tensor[] = [];
    const g = new Graph(d, 'vision');
    const kept: Record<string, Tensor> = {};
    const tap = (name: string, x: Tensor) => {
      kept[name] = g.keep(g.tensor('f32', x.shape, name));
      g.copy(x, kept[name]);
    };
    try {
      inputs.push(
        await Tensor.fromArray(d, 'f32', [layout.patches, pixels.length / layout.patches], pixels, 'pixel_values'),
      );
      inputs.push(await Tensor.fromArray(d, 'i32', [layout.patches, 4], layout.patchInfo, 'patch_info'));
      inputs.push(await Tensor.fromArray(d, 'i32', [layout.patches, 2], layout.coords, 'patch_coords'));
      const embeds = this.vision.forward(
        g,
        { pixels: inputs[0], patchInfo: inputs[1], coords: inputs[2], segments: layout.segments, maxBindingBytes },
        taps && tap,
      );
      g.copy(embeds, out, embeds.byteSize, 0, row * c.outHiddenSize * 4);
      await g.run();
      for (const [k, t] of Object.entries(kept))
        taps![k] = concatFloat32([
          (taps![k] as Float32Array | undefined) ?? new Float32Array(0),
          (await t.read()) as Float32Array,
        ]);
    } finally {
      g.dispose();
      inputs.forEach((t) => t.dispose());
    }
  }

  /**
   * Runs the prompt through the decoder, appending it to the session's cache, and chooses the next token (as the
   * session's sampling options say) into pool.tokens[slot]. Positions follow get_rope_index (docs/model.md#rope-index), offset for
   * a session that already holds tokens.
   */
  async prefill(session: Session, input: PrefillInput, opts: PrefillOptions = {}): Promise<PrefillResult> {
    const passes = this.prefillPasses(session, input, opts);
    for (;;) {
      const r = await passes.next();
      if (r.done) return r.value;
    }
  }

  /**
   * prefill() one pass at a time: the vision tower (when the prompt has images or videos), then one decoder pass
   * per chunk, each submitted to the GPU and yielded before the next, so that a scheduler can run other work
   * (decode steps of other sequences) in between. The session's length and rope offset change after the last.
   */
  async *prefillPasses(
    session: Session,
    input: PrefillInput,
    opts: PrefillOptions = {},
  ): AsyncGenerator<void, PrefillResult> {
    const ids = input.ids;
    const S = ids.length;
    const positions = this.prefillPositions(session, input);
    const mm = input.images ?? input.videos;
    const visionTaps: Taps = {};
    const maxBinding = this.device.limits.maxStorageBufferBindingSize;
    const vision = mm
      ? await this.encodeFrames(mm.pixelValues, positions.plan, maxBinding, opts.taps ? visionTaps : undefined)
      : undefined;
    try {
      if (vision) yield;
      const C = opts.chunkTokens ?? this.defaultChunkTokens(opts.allLogits);
      const tapParts: Record<string, Float32Array[]> = {
        inputs_embeds: [],
        hidden_states_layer0: [],
        last_hidden_state: [],
        logits: [],
      };
      let imageRow = 0;
      for (let s0 = 0; s0 < S; s0 += C) {
        if (opts.signal?.aborted) throw new AbortError('prefill aborted');
        if (s0 > 0) yield;
        const chunk = await this.prefillChunk(session, ids, positions, s0, Math.min(S, s0 + C), vision, imageRow, opts);
        imageRow += chunk.imageRows;
        for (const [k, v] of Object.entries(chunk.taps)) tapParts[k].push(v);
      }
      const result: PrefillResult = {};
      if (opts.allLogits) result.logits = concatFloat32(tapParts.logits);
      if (opts.taps) {
        result.taps = { ...visionTaps, position_ids: positions.positions };
        for (const k of ['inputs_embeds', 'hidden_states_layer0', 'last_hidden_state'])
          result.taps[k] = concatFloat32(tapParts[k]);
        if (vision) result.taps[input.videos ? 'video_embeds' : 'image_embeds'] = (await vision.read()) as Float32Array; // (Glm4vModel.forward)
      }
      session.length += S;
      session.ropeDelta += positions.ropeDelta; // next position = running max + 1 = (length + L) + old delta + new delta
      return result;
    } finally {
      vision?.dispose();
    }
  }

  /**
   * Checks a prompt against the session and the model; its media plan, and its positions
   * (docs/model.md#decode-positions) after what the session holds.
   */
  private prefillPositions(session: Session, input: PrefillInput): RopeIndex & { plan: MediaPlan } {
    const ids = input.ids;
    const S = ids.length;
    if (S === 0) throw new InputError('prefill: the prompt has no tokens');
    if (session.length + S > session.capacity) {
      throw new ContextOverflowError(
        `the prompt has ${S} tokens; the session holds ${session.length} of ${session.capacity}`,
      );
    }
    const tok = this.config.tokens;
    const plan = planMedia(
      input.images?.grids ?? [],
      input.videos?.grids ?? [],
      this.config.vision.spatialMergeSize,
      'prefill',
    );
    const placeholders = ids.reduce((n, id) => n + (id === tok.image ? 1 : 0), 0);
    if (placeholders !== plan.tokens) {
      throw new InputError(
        `the prompt has ${placeholders} image placeholder tokens (id ${tok.image}); the images/videos give ${plan.tokens} embeddings`,
      );
    }
    for (let i = 0; i < S; i++) {
      if (ids[i] < 0 || ids[i] >= this.config.text.vocabSize)
        throw new InputError(`token id ${ids[i]} at ${i} is outside the vocabulary of ${this.config.text.vocabSize}`);
    }
    const rope = ropeIndex(ids, plan, tok);
    const offset = session.length + session.ropeDelta; // base of the first new run: running max + 1 (docs/model.md#decode-positions)
    return { ...rope, positions: offset === 0 ? rope.positions : rope.positions.map((p) => p + offset), plan };
  }

  /** One prefill pass over tokens [s0, s1): embeddings, image rows, every layer; logits and the choice on the last. */
  private async prefillChunk(
    session: Session,
    ids: Int32Array,
    { positions, spans }: RopeIndex,
    s0: number,
    s1: number,
    imageEmbeds: Tensor | undefined,
    imageRow: number,
    opts: PrefillOptions,
  ): Promise<{ imageRows: number; taps: Record<string, Float32Array> }> {
    const d = this.device;
    const t = this.config.text;
    const n = s1 - s0;
    const S = ids.length;
    const last = s1 === S;
    const rowBytes = t.hiddenSize * 4;
    const pos = new Int32Array(3 * n);
    for (let r = 0; r < 3; r++) pos.set(positions.subarray(r * S + s0, r * S + s1), r * n);
    const g = new Graph(d, `prefill[${s0}:${s1}]`);
    const inputs: Tensor[] = [];
    const kept: Record<string, Tensor> = {};
    const tap = (name: string, x: Tensor) => {
      if (!opts.taps && !(name === 'logits' && opts.allLogits)) return;
      kept[name] = g.keep(g.tensor('f32', x.shape, name));
      g.copy(x, kept[name]);
    };
    try {
      inputs.push(await Tensor.fromArray(d, 'i32', [n], ids.subarray(s0, s1), 'input_ids'));
      inputs.push(await Tensor.fromArray(d, 'i32', [3, n], pos, 'position_ids'));
      const x = embedding(g, this.text.embedTokens, inputs[0]); //                                  [n, D]  (embed_tokens)
      let imageRows = 0;
      for (const [a, b] of clipSpans(spans, s0, s1)) {
        // rows of image placeholders take the next image embeddings, in order (docs/model.md#placeholders)
        g.copy(imageEmbeds!, x, (b - a) * rowBytes, (imageRow + imageRows) * rowBytes, (a - s0) * rowBytes);
        imageRows += b - a;
      }
      tap('inputs_embeds', x);
      const at = { kind: 'prefill' as const, positions: inputs[1], start: session.length + s0, slot: session.slot };
      const normed = this.text.forward(g, x, at, session.caches, (i) => {
        if (i === 0) tap('hidden_states_layer0', x); // the residual stream after layer 0, before layer 1 adds to it
      }); //                                                                                          [n, D]  (norm)
      tap('last_hidden_state', normed);
      if (opts.allLogits) tap('logits', this.text.lmHeadOf(g, normed)); //                           [n, V]  (lm_head)
      if (last) {
        const lastRow = g.tensor('f32', [1, t.hiddenSize], 'last_row');
        g.copy(normed, lastRow, rowBytes, (n - 1) * rowBytes);
        const lastLogits = this.text.lmHeadOf(g, lastRow); //                                         [1, V]
        // the choice draws with counter 0 (decode steps count from 1)
        const row = rowsTable([{ slot: session.slot, pos: session.length + S - 1, ropePos: 0, step: 0 }]);
        inputs.push(await Tensor.fromArray(d, 'i32', [1, ROW_FIELDS], row, 'prefill_row'));
        sample(g, lastLogits, session.pool.sampler, inputs[inputs.length - 1], session.pool.tokens);
      }
      await g.run();
      const taps: Record<string, Float32Array> = {};
      for (const [k, v] of Object.entries(kept)) taps[k] = (await v.read()) as Float32Array;
      return { imageRows, taps };
    } finally {
      g.dispose();
      inputs.forEach((i) => i.dispose());
    }
  }

  /**
   * Records the decode step for `rows` sequences of `pool`: embed each one's last token, every layer (attention
   * over each sequence's own cache slot and length), lm_head, and choose each one's next token.
   */
  async recordDecode(pool: KvPool, rows: number, opts: DecodeOptions = {}): Promise<DecodeStep> {
    if (!Number.isInteger(rows) || rows < 1 || rows > pool.slots)
      throw new InputError(`a decode step for ${rows} sequences: expected 1 to ${pool.slots} (the pool's slots)`);
    const table = await Tensor.empty(this.device, 'i32', [rows, ROW_FIELDS], 'decode_rows');
    const g = new Graph(this.device, `decode[${rows}]`);
    const x = embedding(g, this.text.embedTokens, pool.tokens, { rows: table }); //                 [M, D]
    const at = { kind: 'decode' as const, rows: table, maxKeys: (p: Params) => p.maxKeys };
    const logits = this.text.lmHeadOf(g, this.text.forward(g, x, at, pool.caches)); //               [M, V]
    if (opts.keepLogits) g.keep(logits);
    sample(g, logits, pool.sampler, table, pool.tokens, (p) => ({
      greedy: p.greedy === 1,
      full: p.full === 1,
      top: p.top === 1,
    }));
    return new DecodeStep(g, pool, table, opts.keepLogits ? logits : undefined);
  }

  dispose(): void {
    this.vision.dispose();
    this.text.dispose();
  }
}

/** The parts of the placeholder runs `spans` that fall within [s0, s1), in order. */
function clipSpans(spans: readonly (readonly [number, number])[], s0: number, s1: number): [number, number][] {
  return spans.filter(([a, b]) => a < s1 && b > s0).map(([a, b]) => [Math.max(a, s0), Math.min(b, s1)]);
}
