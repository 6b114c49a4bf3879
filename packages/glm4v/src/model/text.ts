// The GLM-4 decoder, module by module as in the checkpoint (`model.language_model.*`, `lm_head`, docs/model.md#decoder):
// token embeddings, layers with four "sandwich" RMSNorms, grouped-query attention with partial 3-D rotary, the
// fused gate/up SwiGLU, the final norm and the untied lm_head.

import type { Graph, Params, Tensor } from '@glm4v/core';
import {
  type KvCache,
  type LinearWeight,
  attentionDecode,
  attentionPrefill,
  concatRows,
  concatVectors,
  linear,
  rmsNorm,
  rmsNormResidual,
  ropeText,
} from '@glm4v/kernels';
import type { TextConfig } from '../config.js';
import type { WeightSource } from './weight-source.js';

/**
 * Where a step's tokens sit: a prefill chunk of one sequence (host positions, its cache slot), or one replayed
 * decode token for each sequence of a batch (the rows table: each row's slot, cache index and rotary position).
 */
export type StepPositions =
  | {
      kind: 'prefill';
      /** i32 [3, S] (t, h, w) */ positions: Tensor;
      /** cache index of the chunk's first token */ start: number;
      slot: number;
    }
  | {
      kind: 'decode';
      /** i32 [M, ROW_FIELDS] (kernels' rows.ts) */ rows: Tensor;
      /** the most keys of any row in a run */ maxKeys: (p: Params) => number;
    };

interface Projection {
  weight: LinearWeight;
  bias?: Tensor;
}

/**
 * self_attn.q_proj, k_proj and v_proj as one weight [(Hq + 2·Hkv)·d, D] with one bias, stacked at load: one
 * matvec per token reads all three (the checkpoint stores them apart). Quantised parts keep their codes.
 */
async function loadQkv(attn: WeightSource, c: TextConfig): Promise<Projection> {
  const D = c.hiddenSize;
  const rows = [c.numHeads * c.headDim, c.numKvHeads * c.headDim, c.numKvHeads * c.headDim];
  const parts: Projection[] = [];
  try {
    for (const [i, name] of ['q_proj', 'k_proj', 'v_proj'].entries()) {
      // q/k/v always carry biases, o_proj never (docs/model.md#pitfalls, 6)
      parts.push({
        weight: (await attn.quantizable(`${name}.weight`, [rows[i], D], 'text'))[0],
        bias: await attn.get(`${name}.bias`, [rows[i]]),
      });
    }
    const weight = await concatRows(
      parts.map((p) => p.weight),
      'self_attn.qkv_proj.weight',
    );
    try {
      return {
        weight,
        bias: await concatVectors(
          parts.map((p) => p.bias!),
          'self_attn.qkv_proj.bias',
        ),
      };
    } catch (e) {
      weight.dispose();
      throw e;
    }
  } finally {
    for (const p of parts) {
      p.weight.dispose();
      p.bias?.dispose();
    }
  }
}

/** model.language_model.layers.N */
export class DecoderLayer {
  constructor(
    readonly inputLayernorm: Tensor,
    /** q_proj | k_proj | v_proj, stacked (loadQkv) */
    readonly qkvProj: Projection,
    readonly oProj: Projection,
    readonly postSelfAttnLayernorm: Tensor,
    readonly postAttentionLayernorm: Tensor,
    readonly gateUpProj: LinearWeight,
    readonly downProj: LinearWeight,
    readonly postMlpLayernorm: Tensor,
  ) {}

  static async load(w: WeightSource, c: TextConfig): Promise<DecoderLayer> {
    const D = c.hiddenSize;
    const attn = w.scope('self_attn');
    const inputLayernorm = await w.get('input_layernorm.weight', [D]);
    const qkv = await loadQkv(attn, c);
    try {
      return new DecoderLayer(
        inputLayernorm,
        qkv,
        { weight: (await attn.quantizable('o_proj.weight', [D, c.numHeads * c.headDim], 'text'))[0] },
        await w.get('post_self_attn_layernorm.weight', [D]),
        await w.get('post_attention_layernorm.weight', [D]),
        (await w.quantizable('mlp.gate_up_proj.weight', [2 * c.intermediateSize, D], 'text'))[0],
        (await w.quantizable('mlp.down_proj.weight', [D, c.intermediateSize], 'text'))[0],
        await w.get('post_mlp_layernorm.weight', [D]),
      );
    } catch (e) {
      qkv.weight.dispose(); // the model's own; the rest is the source's
      qkv.bias?.dispose();
      throw e;
    }
  }

  /**
   * x [S, D] (the residual stream) updated in place, `a` = input_layernorm(x) given; keys and values of these
   * tokens written to `cache`. Each residual add is fused with the norm after it: returns next(x) [S, D], where
   * `next` is the next layer's input_layernorm, or the final norm after the last layer.  (Glm4vTextDecoderLayer.forward)
   */
  forward(g: Graph, x: Tensor, a: Tensor, next: Tensor, at: StepPositions, cache: KvCache, c: TextConfig): Tensor {
    const eps = c.rmsNormEps;
    const heads = { numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim };
    const qkv = linear(g, a, this.qkvProj.weight, { bias: this.qkvProj.bias }); //                 [S, (Hq + 2·Hkv)·d]  (q_proj | k_proj | v_proj)
    let o: Tensor; //                                                                              [S, Hq·d]  (self_attn, causal GQA)
    if (at.kind === 'prefill') {
      const rope = {
        headDim: c.headDim,
        rotaryDim: c.rotaryDim,
        sections: c.mropeSection,
        theta: c.ropeTheta,
        positions: at.positions,
      };
      ropeText(g, qkv, { ...rope, numHeads: c.numHeads + c.numKvHeads, rowWidth: qkv.shape[1] }); // q and k heads turn, v's do not
      o = attentionPrefill(g, qkv, cache, { ...heads, start: at.start, slot: at.slot });
    } else {
      // RoPE, the cache store and attention in one dispatch (decode: one position on the t, h and w streams)
      o = attentionDecode(g, qkv, cache, {
        ...heads,
        rows: at.rows,
        maxKeys: at.maxKeys,
        rope: { rotaryDim: c.rotaryDim, theta: c.ropeTheta },
      });
    }
    // x += post_self_attn_layernorm(o_proj(o)); m = post_attention_layernorm(x), the pre-MLP norm (docs/model.md#pitfalls, 4)
    const m = rmsNormResidual(
      g,
      x,
      linear(g, o, this.oProj.weight),
      this.postSelfAttnLayernorm,
      this.postAttentionLayernorm,
      eps,
    );
    const gateUp = linear(g, m, this.gateUpProj); //                                                [S, 2I]  (mlp: gate | up halves)
    const down = linear(g, gateUp, this.downProj, { swiglu: true }); //                             [S, D]  down(silu(gate) · up), in down's x loads when decoding
    return rmsNormResidual(g, x, down, this.postMlpLayernorm, next, eps); //                        x += post_mlp_layernorm(down); next(x)
  }

  /** Every weight of the layer (all of them are read once per decode step). */
  weights(): (Tensor | LinearWeight)[] {
    const projections = [this.qkvProj, this.oProj].flatMap((p) => (p.bias ? [p.weight, p.bias] : [p.weight]));
    return [
      this.inputLayernorm,
      ...projections,
      this.postSelfAttnLayernorm,
      this.postAttentionLayernorm,
      this.gateUpProj,
      this.downProj,
      this.postMlpLayernorm,
    ];
  }

  dispose(): void {
    for (const t of this.weights()) t.dispose();
  }
}

/** model.language_model + lm_head */
export class Glm4vTextModel {
  constructor(
    readonly config: TextConfig,
    readonly embedTokens: LinearWeight,
    readonly layers: DecoderLayer[],
    readonly norm: Tensor,
    readonly lmHead: LinearWeight,
  ) {}

  /** `w` is scoped at `model.language_model`, `head` at `lm_head`. */
  static async load(w: WeightSource, head: WeightSource, c: TextConfig): Promise<Glm4vTextModel> {
    const [embed] = await w.quantizable('embed_tokens.weight', [c.vocabSize, c.hiddenSize], 'text'); // one row read per token
    const layers: DecoderLayer[] = [];
    try {
      for (let i = 0; i < c.numLayers; i++) layers.push(await DecoderLayer.load(w.scope(`layers.${i}`), c));
      const norm = await w.get('norm.weight', [c.hiddenSize]);
      const [lmHead] = await head.quantizable('weight', [c.vocabSize, c.hiddenSize], 'text'); // untied (docs/model.md#lm-head)
      return new Glm4vTextModel(c, embed, layers, norm, lmHead);
    } catch (e) {
      for (const l of layers) l.dispose(); // their stacked q|k|v weights are the model's own; the rest is the source's
      throw e;
    }
  }

  /**
   * Every layer over the embeddings x [n, D], updated in place into the residual stream after the last layer;
   * returns norm(x) [n, D] (model.language_model.norm), fused with the last layer's residual add. `afterLayer(i)`
   * runs once layer i has written x (the taps read the residual stream there).
   */
  forward(
    g: Graph,
    x: Tensor,
    at: StepPositions,
    caches: readonly KvCache[],
    afterLayer?: (i: number) => void,
  ): Tensor {
    const c = this.config;
    let a = rmsNorm(g, x, this.layers[0].inputLayernorm, c.rmsNormEps); //                         layer 0's input_layernorm
    this.layers.forEach((layer, i) => {
      a = layer.forward(g, x, a, this.layers[i + 1]?.inputLayernorm ?? this.norm, at, caches[i], c);
      afterLayer?.(i);
    });
    return a;
  }

  /** [n, D] -> logits [n, V]  (lm_head) */
  lmHeadOf(g: Graph, normed: Tensor): Tensor {
    return linear(g, normed, this.lmHead);
  }

  dispose(): void {
    this.embedTokens.dispose();
    for (const l of this.layers) l.dispose();
    this.norm.dispose();
    this.lmHead.dispose();
  }
}
