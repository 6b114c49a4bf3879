// The vision tower, module by module as in the checkpoint (`model.visual.*`, docs/model.md#vision-tower): patch embedding,
// post-conv RMSNorm, the learned position table resampled to each grid, 2-D rotary attention blocks restricted
// to each image, post RMSNorm, the 2×2 downsample conv and the merger MLP.

import { Graph, LimitError, Tensor } from '@glm4v/core';
import {
  type LinearWeight,
  addInPlace,
  attentionSegments,
  downsample,
  gelu,
  layerNorm,
  linear,
  patchEmbed,
  permuteDownsampleWeight,
  posEmbedBicubic,
  rmsNorm,
  ropeVision,
  siluMul,
} from '@glm4v/kernels';
import type { VisionConfig } from '../config.js';
import type { WeightSource } from './weight-source.js';
import { rowBlocks, rowsView } from './row-blocks.js';

const ROPE_THETA = 10000;
const MERGER_LAYERNORM_EPS = 1e-5;

/** Elements of one flattened patch: channels × temporal patch × patch × patch (3·2·14·14 = 1176). */
export function patchLength(c: VisionConfig): number {
  return c.inChannels * c.temporalPatchSize * c.patchSize * c.patchSize;
}

/**
 * f32 bytes per patch of the widest vision activations bound whole: the patches [S, C·T·P·P], the residual stream
 * and q/k/v [S, D], the downsample output [S/4, O] (the MLP and the merger run in row blocks: row-blocks.ts).
 */
export function visionBytesPerPatch(c: VisionConfig): number {
  return 4 * Math.max(patchLength(c), c.hiddenSize, c.outHiddenSize / c.spatialMergeSize ** 2);
}

/**
 * LimitError unless each image (or video temporal patch) of `grids` fits the vision tower on a device whose
 * storage bindings hold `limit` bytes (one image's residual stream is bound whole). Needs no weights, so a request
 * is checked before they load.
 */
export function checkVisionFits(
  grids: readonly (readonly [number, number, number])[],
  c: VisionConfig,
  limit: number,
): void {
  const perPatch = visionBytesPerPatch(c);
  for (const [, h, w] of grids) {
    if (h * w * perPatch <= limit) continue;
    throw new LimitError(
      `an image of ${h * c.patchSize}×${w * c.patchSize} pixels (${h * w} patches) needs ${h * w * perPatch} bytes in one storage binding ` +
        `for the vision tower; this device allows ${limit}. Lower the pixel budget (maxPixels, --max-pixels) or use a device with larger bindings`,
    );
  }
}

/** model.visual.blocks.N */
export class VisionBlock {
  constructor(
    readonly norm1: Tensor,
    readonly q: LinearWeight,
    readonly k: LinearWeight,
    readonly v: LinearWeight,
    readonly proj: LinearWeight,
    readonly norm2: Tensor,
    readonly gateProj: LinearWeight,
    readonly upProj: LinearWeight,
    readonly downProj: LinearWeight,
  ) {}

  static async load(w: WeightSource, c: VisionConfig): Promise<VisionBlock> {
    const D = c.hiddenSize;
    const F = c.outHiddenSize; // the ViT MLP is out_hidden_size wide (docs/model.md#vision-block)
    const linear = async (name: string, rows: number, cols: number) =>
      (await w.quantizable(name, [rows, cols], 'vision'))[0];
    const [q, k, v] = await w.quantizable('attn.qkv.weight', [3 * D, D], 'vision', [
      [0, D],
      [D, 2 * D],
      [2 * D, 3 * D],
    ]);
    return new VisionBlock(
      await w.get('norm1.weight', [D]),
      q,
      k,
      v,
      await linear('attn.proj.weight', D, D),
      await w.get('norm2.weight', [D]),
      await linear('mlp.gate_proj.weight', F, D),
      await linear('mlp.up_proj.weight', F, D),
      await linear('mlp.down_proj.weight', D, F),
    );
  }

  /** x [S, D] updated in place; the MLP runs in row blocks that fit `maxBindingBytes`.  (Glm4vVisionBlock.forward) */
  forward(g: Graph, x: Tensor, inp: VisionInputs, c: VisionConfig): void {
    const { coords, segments } = inp;
    const heads = { numHeads: c.numHeads, headDim: c.headDim };
    const h = rmsNorm(g, x, this.norm1, c.rmsNormEps); //                        [S, D]   (norm1)
    const q = ropeVision(g, linear(g, h, this.q), coords, { ...heads, theta: ROPE_THETA }); // (attn.qkv, apply_rotary_pos_emb_vision)
    const k = ropeVision(g, linear(g, h, this.k), coords, { ...heads, theta: ROPE_THETA });
    const v = linear(g, h, this.v);
    const o = attentionSegments(g, q, k, v, segments, heads); //                  [S, D]   (Glm4vVisionAttention, per-image segments)
    addInPlace(g, x, linear(g, o, this.proj)); //                                   x += proj(o)
    const m = rmsNorm(g, x, this.norm2, c.rmsNormEps); //                          (norm2)
    for (const [r0, r1] of rowBlocks(inp.maxBindingBytes, x.shape[0], c.outHiddenSize)) {
      const mb = rowsView(m, r0, r1);
      const act = siluMul(g, linear(g, mb, this.gateProj), linear(g, mb, this.upProj)); // [rows, F]  (Glm4VisionMlp)
      addInPlace(g, rowsView(x, r0, r1), linear(g, act, this.downProj)); //                  x += down(act)
    }
  }

  weights(): (Tensor | LinearWeight)[] {
    return [this.norm1, this.q, this.k, this.v, this.proj, this.norm2, this.gateProj, this.upProj, this.downProj];
  }

  dispose(): void {
    for (const t of this.weights()) t.dispose();
  }
}

/** model.visual.merger */
export class PatchMerger {
  constructor(
    readonly proj: LinearWeight,
    readonly normWeight: Tensor,
    readonly normBias: Tensor,
    readonly gateProj: LinearWeight,
    readonly upProj: LinearWeight,
    readonly downProj: LinearWeight,
  ) {}

  static async load(w: WeightSource, c: VisionConfig): Promise<PatchMerger> {
    const O = c.outHiddenSize;
    const I = c.intermediateSize; // the merger's width (docs/model.md#merger)
    const linear = async (name: string, rows: number, cols: number) =>
      (await w.quantizable(name, [rows, cols], 'vision'))[0];
    return new PatchMerger(
      await linear('proj.weight', O, O),
      await w.get('post_projection_norm.weight', [O]),
      await w.get('post_projection_norm.bias', [O]),
      await linear('gate_proj.weight', I, O),
      await linear('up_proj.weight', I, O),
      await linear('down_proj.weight', O, I),
    );
  }

  /** [n, O] -> [n, O]: proj → LayerNorm → exact GELU → SwiGLU MLP, no residual.  (Glm4vVisionPatchMerger) */
  forward(g: Graph, y: Tensor, maxBindingBytes: number): Tensor {
    const [n, O] = y.shape;
    const out = g.tensor('f32', [n, O], 'merger_out');
    for (const [r0, r1] of rowBlocks(maxBindingBytes, n, this.gateProj.shape[0])) {
      const yb = rowsView(y, r0, r1);
      const z = gelu(g, layerNorm(g, linear(g, yb, this.proj), this.normWeight, this.normBias, MERGER_LAYERNORM_EPS));
      linear(g, siluMul(g, linear(g, z, this.gateProj), linear(g, z, this.upProj)), this.downProj, {
        out: rowsView(out, r0, r1),
      });
    }
    return out;
  }

  dispose(): void {
    for (const t of [this.proj, this.normWeight, this.normBias, this.gateProj, this.upProj, this.downProj]) t.dispose();
  }
}

/** Receives a named activation at its point in the graph (the callee records a copy of what it keeps). */
export type VisionTap = (name: string, x: Tensor) => void;

/** Inputs of one vision forward pass, already on the GPU. */
export interface VisionInputs {
  /** f32 [S, C·T·P·P] flattened patches in merge-window order. */
  pixels: Tensor;
  /** i32 [S, 4] (row, col, gh, gw) per patch. */
  patchInfo: Tensor;
  /** i32 [S, 2] (row, col) per patch. */
  coords: Tensor;
  segments: readonly number[];
  /** Row-wise layers run in blocks whose widest activation fits this (the device's binding limit). */
  maxBindingBytes: number;
}

/** model.visual */
export class Glm4vVisionModel {
  constructor(
    readonly config: VisionConfig,
    readonly patchEmbedWeight: Tensor,
    readonly patchEmbedBias: Tensor,
    readonly postConvLayernorm: Tensor,
    readonly positionEmbedding: Tensor,
    readonly blocks: VisionBlock[],
    readonly postLayernorm: Tensor,
    readonly downsampleWeight: Tensor,
    readonly downsampleBias: Tensor,
    readonly merger: PatchMerger,
  ) {}

  static async load(w: WeightSource, c: VisionConfig): Promise<Glm4vVisionModel> {
    const D = c.hiddenSize;
    const O = c.outHiddenSize;
    const P = c.patchSize;
    const patchLen = patchLength(c);
    const grid = c.imageSize / P;
    const blocks: VisionBlock[] = [];
    const patchEmbedWeight = await w.get('patch_embed.proj.weight', [D, c.inChannels, c.temporalPatchSize, P, P], {
      as: [D, patchLen],
    });
    const patchEmbedBias = await w.get('patch_embed.proj.bias', [D]);
    const postConv = await w.get('post_conv_layernorm.weight', [D]);
    const posTable = await w.get('embeddings.position_embedding.weight', [grid * grid, D]);
    for (let j = 0; j < c.depth; j++) blocks.push(await VisionBlock.load(w.scope(`blocks.${j}`), c));
    const postLayernorm = await w.get('post_layernorm.weight', [D]);
    const ds = await w.get('downsample.weight', [O, D, c.spatialMergeSize, c.spatialMergeSize]);
    const downsampleBias = await w.get('downsample.bias', [O]);
    const merger = await PatchMerger.load(w.scope('merger'), c);
    // last, so that no later load failure can strand the one tensor the weight source does not own
    const downsampleWeight = await permuteOnce(ds);
    return new Glm4vVisionModel(
      c,
      patchEmbedWeight,
      patchEmbedBias,
      postConv,
      posTable,
      blocks,
      postLayernorm,
      downsampleWeight,
      downsampleBias,
      merger,
    );
  }

  /**
   * Patches [S, C·T·P·P] -> image embeddings [S/4, O] in placeholder order.  (Glm4vVisionModel.forward)
   * `tap` sees the conformance taps inside the tower (docs/model.md#conformance-taps) as they are computed.
   */
  forward(g: Graph, inp: VisionInputs, tap?: VisionTap): Tensor {
    const c = this.config;
    const x = patchEmbed(g, inp.pixels, this.patchEmbedWeight, this.patchEmbedBias); //  [S, D]  (patch_embed)
    tap?.('vision_patch_embed', x);
    const h = rmsNorm(g, x, this.postConvLayernorm, c.rmsNormEps); //                         (post_conv_layernorm)
    posEmbedBicubic(g, this.positionEmbedding, inp.patchInfo, {
      gridSize: c.imageSize / c.patchSize,
      out: h,
      accumulate: true,
    }); // (embeddings)
    tap?.('vision_embeddings', h);
    this.blocks.forEach((block, j) => {
      block.forward(g, h, inp, c);
      if (j === 0) tap?.('vision_block0', h);
    });
    const n = rmsNorm(g, h, this.postLayernorm, c.rmsNormEps); //                             (post_layernorm)
    const y = downsample(g, n, this.downsampleWeight, this.downsampleBias); //                [S/4, O] (downsample)
    tap?.('vision_downsample', y);
    return this.merger.forward(g, y, inp.maxBindingBytes); //                                                      [S/4, O] (merger)
  }

  dispose(): void {
    for (const t of [
      this.patchEmbedWeight,
      this.patchEmbedBias,
      this.postConvLayernorm,
      this.positionEmbedding,
      this.postLayernorm,
      this.downsampleWeight,
      this.downsampleBias,
    ])
      t.dispose();
    for (const b of this.blocks) b.dispose();
    this.merger.dispose();
  }
}

/** Conv weight [O, C, 2, 2] -> GEMM layout [O, 4C], once at load (docs/model.md#load-time-layout); the original is freed. */
async function permuteOnce(w: Tensor): Promise<Tensor> {
  const [O, C] = w.shape;
  const g = new Graph(w.device, 'permute-downsample');
  const out = await Tensor.empty(w.device, w.dtype, [O, 4 * C], 'model.visual.downsample.weight (permuted)');
  try {
    g.copy(permuteDownsampleWeight(g, w), out);
    await g.run();
    await w.device.sync();
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    g.dispose();
  }
  w.dispose();
  return out;
}
