// What a generation streams to its caller, and the stats it ends with.

import type { Phase } from './phases.js';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationStats {
  /** Tokens of the whole prompt (for a chat turn: the conversation so far and the new message). */
  promptTokens: number;
  /** Prompt tokens whose keys and values were already in the KV cache (earlier chat turns): not prefilled. */
  cachedTokens: number;
  /** Tokens the model produced, a final stop token included (which `token` events and `tokens` leave out). */
  generatedTokens: number;
  /** From the call until the first new token was read back: preprocessing, vision and prefill. */
  timeToFirstTokenMs: number;
  /** From the start of prefill (vision included) until the first new token was read back. */
  prefillMs: number;
  /** Prefilled tokens (promptTokens − cachedTokens) per second of prefillMs. */
  prefillTokensPerSecond: number;
  /** From the first new token read back to the last. */
  decodeMs: number;
  /** Tokens after the first, per second of decodeMs. */
  decodeTokensPerSecond: number;
  totalMs: number;
  seed: number;
}

export type GenerateEvent =
  | { type: 'token'; id: number }
  | { type: 'text'; text: string; phase: Phase }
  | { type: 'done'; finishReason: FinishReason; stats: GenerationStats };

export interface GenerateResult {
  thinking: string;
  answer: string;
  tokens: number[];
  finishReason: FinishReason;
  stats: GenerationStats;
}

/** Runs a stream of events to the end and collects the reply; `onEvent` sees every event as it comes. */
export async function collect(
  events: AsyncIterable<GenerateEvent>,
  onEvent?: (ev: GenerateEvent) => void,
): Promise<GenerateResult> {
  const out: GenerateResult = {
    thinking: '',
    answer: '',
    tokens: [],
    finishReason: 'length',
    stats: undefined as never,
  };
  for await (const ev of events) {
    onEvent?.(ev);
    if (ev.type === 'token') out.tokens.push(ev.id);
    else if (ev.type === 'text') out[ev.phase] += ev.text;
    else {
      out.finishReason = ev.finishReason;
      out.stats = ev.stats;
    }
  }
  return out;
}
