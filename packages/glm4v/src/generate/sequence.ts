// One request inside the batcher: its prepared prompt and options, its session (a slot of the KV pool) once
// admitted, the reply text built token by token (ReplyText: stop strings, thinking/answer), its event stream, and
// the times behind its stats. The times are taken when the tokens have been read back, not when the work was
// submitted, so time to first token and tok/s are what the caller sees.

import type { FinishReason, GenerateEvent, GenerationStats } from '../glm4v.js';
import type { PrefillInput, PrefillResult } from '../model/glm4v.js';
import type { Session } from '../model/session.js';
import type { Tokenizer } from '../prompt/tokenizer.js';
import { EventQueue } from './event-queue.js';
import type { ResolvedOptions } from './options.js';
import { ReplyText } from './reply.js';

export type SequenceState = 'waiting' | 'prefilling' | 'running' | 'done';

export class Sequence {
  state: SequenceState = 'waiting';
  session: Session | undefined;
  /** The prefill still to run, one pass per call (Glm4vModel.prefillPasses). */
  passes: AsyncGenerator<void, PrefillResult> | undefined;
  /** Undoes what tied the sequence to its caller (a signal listener); called when it leaves the batcher. */
  detach: (() => void) | undefined;
  /** Tokens whose choice has been submitted to the GPU (prefill's included). */
  submitted = 0;
  /** Tokens read back, a final stop token included. */
  readonly tokens: number[] = [];
  finish: FinishReason = 'abort';
  readonly events: EventQueue<GenerateEvent>;
  private readonly reply: ReplyText;
  private readonly times: { t0: number; prefill?: number; first?: number; last?: number };

  constructor(
    readonly input: PrefillInput,
    readonly opt: ResolvedOptions,
    tokenizer: Tokenizer,
    private readonly eos: ReadonlySet<number>,
    t0: number,
    onCancel: (s: Sequence) => void,
  ) {
    this.reply = new ReplyText(tokenizer, opt);
    this.times = { t0 };
    this.events = new EventQueue<GenerateEvent>(() => onCancel(this));
  }

  get promptTokens(): number {
    return this.input.ids.length;
  }

  get done(): boolean {
    return this.state === 'done';
  }

  /** Marks the start of its prefill. */
  startPrefill(): void {
    this.times.prefill ??= performance.now();
  }

  /** Whether a decode step may be submitted for it: a token still wanted, room in its cache. */
  get wantsStep(): boolean {
    const s = this.session;
    return this.state === 'running' && s !== undefined && this.submitted < this.opt.maxNewTokens && s.length < s.capacity;
  }

  /** A token read back; ends the sequence on a stop token or string, or at its limit. */
  deliver(token: number): void {
    if (this.done) return;
    this.times.last = performance.now();
    this.times.first ??= this.times.last;
    this.tokens.push(token);
    if (this.eos.has(token) && !this.opt.ignoreEos) return this.end('stop');
    this.events.push({ type: 'token', id: token });
    for (const piece of this.reply.push(token)) this.events.push({ type: 'text', ...piece });
    if (this.reply.stopped) return this.end('stop');
    // every submitted token is in and no step can follow: the token limit or the context
    if (this.tokens.length === this.submitted && !this.wantsStep) this.end('length');
  }

  /** Ends the sequence: the held text, then the done event with the stats. Safe to call more than once. */
  end(reason: FinishReason): void {
    if (this.done) return;
    this.state = 'done';
    this.finish = reason;
    for (const piece of this.reply.flush()) this.events.push({ type: 'text', ...piece });
    this.events.push({ type: 'done', finishReason: reason, stats: this.stats() });
    this.events.end();
  }

  /** Ends the sequence with an error, which its consumer receives. */
  fail(error: unknown): void {
    if (this.done) return;
    this.state = 'done';
    this.events.fail(error);
  }

  stats(): GenerationStats {
    const end = performance.now();
    const t = this.times;
    const first = t.first ?? end;
    const prefillMs = t.prefill === undefined ? 0 : first - t.prefill;
    const decodeMs = (t.last ?? first) - first;
    const generated = this.tokens.length;
    return {
      promptTokens: this.promptTokens,
      generatedTokens: generated,
      timeToFirstTokenMs: first - t.t0,
      prefillMs,
      prefillTokensPerSecond: prefillMs > 0 ? this.promptTokens / (prefillMs / 1000) : 0,
      decodeMs,
      decodeTokensPerSecond: generated > 1 && decodeMs > 0 ? (generated - 1) / (decodeMs / 1000) : 0,
      totalMs: end - t.t0,
      seed: this.opt.seed,
    };
  }
}

/** The stats of a request that ended before it started. */
export function abortedStats(promptTokens: number, t0: number, seed: number): GenerationStats {
  const ms = performance.now() - t0;
  return { promptTokens, generatedTokens: 0, timeToFirstTokenMs: ms, prefillMs: 0, prefillTokensPerSecond: 0, decodeMs: 0, decodeTokensPerSecond: 0, totalMs: ms, seed };
}
