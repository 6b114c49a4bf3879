// A tiny checkpoint whose reply is known in advance, for tests of how generation ends (test scaffolding, exported
// from internal.ts only). It is the demo checkpoint with chosen weights:
//   - token embeddings one-hot: each token of the reply chain (and '\n', which ends every generation prompt) gets
//     its own dimension; every other token embeds to zero;
//   - every residual write zeroed (post_self_attn_layernorm and post_mlp_layernorm weights 0), so the decoder
//     passes each position's embedding through unchanged, whatever the prompt, images or cache hold;
//   - lm_head a lookup: the row of token b has LOGIT_SCALE in the column of token a when b follows a.
// After the final norm the last position is sqrt(hidden)·one-hot, so the next token's logit is ~8·LOGIT_SCALE and
// every other logit 0: the reply is the chain, greedy or sampled, then the stop token.

import { f32ToBf16 } from '@glm4v/core';
import { TINY_CONFIG_JSON, makeTinyCheckpoint } from './demo.js';
import { tinySpecialIds } from './prompt/tiny-tokenizer.js';

const LOGIT_SCALE = 16;

/** Bytes of a string as token ids: the tiny tokenizer's ids 0–255 are the bytes themselves. */
const bytes = (s: string): number[] => [...Buffer.from(s, 'utf8')];

/**
 * The reply, token by token: every byte of 你 and 猫 is its own token (a character split across three tokens),
 * special tokens ([MASK], and an image placeholder, which a chat history must not take for an image) and box
 * markers inside the answer. No token repeats, so each has one successor.
 */
export const FIXED_REPLY_TOKENS: readonly (string | number)[] = [
  '<think>',
  ...bytes('Why 你?'),
  '</think>',
  '<answer>',
  ...bytes('Yes,'),
  '[MASK]',
  '<|image|>',
  '<|begin_of_box|>',
  ...bytes('猫'),
  '<|end_of_box|>',
  ...bytes('!'),
  '</answer>',
];

/** What the reply reads as: thinking and answer without tags, special tokens or box markers. */
export const FIXED_REPLY = { thinking: 'Why 你?', answer: 'Yes,猫!' };

/**
 * The reply chain as ids, from '\n' (the generation prompt's last token) on: the reply then `<|endoftext|>`, or
 * with `stop` the reply with `stop` in place of its `</answer>`.
 */
export function fixedChain(stop?: string): number[] {
  const special = tinySpecialIds(TINY_CONFIG_JSON.text_config.vocab_size);
  const id = (t: string | number) => (typeof t === 'number' ? t : special.get(t)!);
  const reply =
    stop === undefined ? [...FIXED_REPLY_TOKENS, '<|endoftext|>'] : [...FIXED_REPLY_TOKENS.slice(0, -1), stop];
  return [10, ...reply.map(id)];
}

/**
 * Writes the fixed-reply checkpoint into `dir` (chain as fixedChain(stop)). Both `</answer>` and `<|endoftext|>`
 * are EOS ids of generation_config.json, as in the real model: by default generation stops at `</answer>`.
 */
export async function makeFixedCheckpoint(dir: string, opts: { stop?: string } = {}): Promise<void> {
  const chain = fixedChain(opts.stop);
  const { vocab_size: V, hidden_size: D } = TINY_CONFIG_JSON.text_config;
  const slot = new Map(chain.slice(0, -1).map((t, i) => [t, i]));
  if (slot.size !== chain.length - 1 || slot.size > D)
    throw new Error('fixed reply: tokens must be distinct and fit the hidden size');
  const one = f32ToBf16(1);
  await makeTinyCheckpoint(dir, {
    weights: (name) => {
      if (name === 'model.language_model.embed_tokens.weight') {
        const w = new Uint16Array(V * D);
        for (const [t, s] of slot) w[t * D + s] = one;
        return w;
      }
      if (name === 'lm_head.weight') {
        const w = new Uint16Array(V * D);
        for (let i = 0; i + 1 < chain.length; i++) w[chain[i + 1] * D + i] = f32ToBf16(LOGIT_SCALE);
        return w;
      }
      if (/post_(self_attn|mlp)_layernorm\.weight$/.test(name)) return new Uint16Array(D);
      return undefined;
    },
  });
}
