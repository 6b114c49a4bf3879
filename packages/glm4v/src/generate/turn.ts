// What one reply did, filled in as it goes by the Batcher's sequence (generate/sequence.ts), and the stats taken
// from it. The times behind the stats are taken when the GPU work they measure is over: the first token when its
// id has been read back (prefill and vision submit their work and return long before it has run), the last
// likewise.

import type { FinishReason, GenerationStats } from './events.js';

/** What a reply did, filled in as it goes (so it is there when the reply ends by an error or an abort). */
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
