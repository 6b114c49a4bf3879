// One reply on a session: the prompt's new tokens prefilled after whatever the session already holds, then one
// recorded decode step replayed per token (model/decode-loop.ts) until a stop token or string, the token limit or
// an abort. The times behind the stats are taken when the GPU work they measure is over: the first token when
// its id has been read back (prefill and vision submit their work and return long before it has run), the last
// likewise; the step still in flight at a stop is waited for, whatever ends the reply.

import { AbortError, Graph, Tensor } from '@glm4v/core';
import { createSamplerState, markPresent } from '@glm4v/kernels';
import type { DecodeStep, Glm4vModel, NextToken, PrefillInput } from '../model/glm4v.js';
import { DecodeLoop } from '../model/decode-loop.js';
import type { Session } from '../model/session.js';
import type { Tokenizer } from '../prompt/tokenizer.js';
import type { FinishReason, GenerateEvent, GenerationStats } from './events.js';
import type { ResolvedOptions } from './options.js';
import { ReplyText } from './reply.js';

/** What a turn did, filled in as it goes (so it is there when the turn ends by an error or an abort). */
export class TurnRecord {
  /** Every token read back, a final stop token included. */
  readonly tokens: number[] = [];
  finish: FinishReason = 'abort';
  promptTokens = 0;
  cachedTokens = 0;
  seed = 0;
  prefillStart: number | undefined;
  first: number | undefined;
  last: number | undefined;
  /** When the caller asked (preprocessing counts toward the time to first token). */
  readonly t0 = performance.now();

  stats(): GenerationStats {
    const { promptTokens, cachedTokens, seed } = this;
    const end = performance.now();
    const first = this.first ?? end;
    const prefillMs = this.prefillStart === undefined ? 0 : first - this.prefillStart;
    const decodeMs = (this.last ?? first) - first;
    const generated = this.tokens.length;
    return {
      promptTokens,
      cachedTokens,
      generatedTokens: generated,
      timeToFirstTokenMs: first - this.t0,
      prefillMs,
      prefillTokensPerSecond: prefillMs > 0 ? (promptTokens - cachedTokens) / (prefillMs / 1000) : 0,
      decodeMs,
      decodeTokensPerSecond: generated > 1 && decodeMs > 0 ? (generated - 1) / (decodeMs / 1000) : 0,
      totalMs: end - this.t0,
      seed,
    };
  }
}

export interface TurnInputs {
  model: Glm4vModel;
  tokenizer: Tokenizer;
  eos: ReadonlySet<number>;
  session: Session;
  /** The new tokens (and their images or videos), appended to what the session holds. */
  input: PrefillInput;
  /** The whole prompt, cached part included: the repetition penalty counts all of it as seen. */
  promptIds: Int32Array;
  opt: ResolvedOptions;
  signal: AbortSignal;
}

/** Prefills, then streams token and text events; the outcome goes into `record`. */
export async function* runTurn(t: TurnInputs, record: TurnRecord): AsyncGenerator<GenerateEvent> {
  const owned: { dispose(): void }[] = [];
  try {
    if (t.signal.aborted) return;
    const next = await nextToken(t.model, t.opt, t.promptIds, owned);
    record.prefillStart = performance.now();
    try {
      await t.model.prefill(t.session, t.input, { next, signal: t.signal });
    } catch (e) {
      if (!(e instanceof AbortError)) throw e;
      await t.model.device.sync(); // aborted between passes: the passes already submitted finish first
      return;
    }
    yield* decode(t, next, owned, record);
  } finally {
    owned.reverse().forEach((o) => o.dispose());
  }
}

/** How the next token is chosen: argmax, or sampling with a fresh sampler state that has seen the prompt. */
async function nextToken(model: Glm4vModel, opt: ResolvedOptions, ids: Int32Array, owned: { dispose(): void }[]): Promise<NextToken> {
  if (!opt.sampling) return { kind: 'argmax' };
  const device = model.device;
  const state = await createSamplerState(device, model.config.text.vocabSize);
  owned.push(state.presence);
  // the repetition penalty counts the prompt's tokens as seen, as transformers does
  const t = await Tensor.fromArray(device, 'i32', [ids.length], ids, 'prompt_ids');
  const g = new Graph(device, 'mark-prompt');
  try {
    markPresent(g, state, t);
    await g.run();
  } finally {
    g.dispose();
    t.dispose();
  }
  return { kind: 'sample', options: opt.sampling, state };
}

/** Streams tokens from session.token (chosen by prefill) until a stop; the step in flight is always waited for. */
async function* decode(t: TurnInputs, next: NextToken, owned: { dispose(): void }[], record: TurnRecord): AsyncGenerator<GenerateEvent> {
  const reply = new ReplyText(t.tokenizer, t.opt);
  let step: DecodeStep | undefined;
  const loop = new DecodeLoop(t.session, () => {
    if (!step) owned.push((step = t.model.recordDecode(t.session, { next })));
    return step;
  });
  record.finish = 'length';
  try {
    for (;;) {
      const aborted = t.signal.aborted;
      const more = !aborted && record.tokens.length + 1 < t.opt.maxNewTokens && loop.canStep;
      const token = await loop.next(more);
      record.last = performance.now();
      record.first ??= record.last;
      record.tokens.push(token);
      if (t.eos.has(token)) {
        record.finish = 'stop';
        break;
      }
      yield { type: 'token', id: token };
      for (const piece of reply.push(token)) yield { type: 'text', ...piece };
      if (reply.stopped || !more) {
        if (reply.stopped) record.finish = 'stop';
        else if (aborted) record.finish = 'abort';
        break;
      }
    }
  } finally {
    await loop.settle();
  }
  for (const piece of reply.flush()) yield { type: 'text', ...piece };
}
