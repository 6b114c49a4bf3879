// One request inside the batcher: what it prefills and its options, its session (a slot of the KV pool) once
// admitted, the reply text built token by token (ReplyText: stop strings, special tokens and box markers, thinking
// and answer), its event stream, and its record (turn.ts: tokens, finish reason, the times behind the stats, taken
// when the tokens have been read back, not when the work was submitted).

import type { FinishReason, GenerateEvent } from './events.js';
import type { PrefillInput, PrefillResult } from '../model/glm4v.js';
import type { Session } from '../model/session.js';
import type { Tokenizer } from '../prompt/tokenizer.js';
import { EventQueue } from './event-queue.js';
import type { ResolvedOptions } from './options.js';
import { ReplyText } from './reply.js';
import type { TurnRecord } from './turn.js';

export type SequenceState = 'waiting' | 'prefilling' | 'running' | 'done';

/** A request as the batcher takes it. */
export interface Job {
  /** The tokens to prefill (and their images or videos), appended to what the session holds. */
  input: PrefillInput;
  /** The whole prompt, a kept session's part included: the repetition penalty counts all of it as seen. */
  promptIds: Int32Array;
  opt: ResolvedOptions;
  record: TurnRecord;
  signal?: AbortSignal;
  /**
   * A session of the batcher's pool that the caller keeps (a conversation's, across turns): the sequence runs on
   * it and leaves it as the reply left it. Without one, the sequence takes a free slot and frees it at the end.
   */
  session?: Session;
}

export class Sequence {
  state: SequenceState = 'waiting';
  session: Session | undefined;
  /** Whether the session is the caller's (Job.session): it is kept, not freed, when the sequence ends. */
  readonly keepsSession: boolean;
  /** The prefill still to run, one pass per call (Glm4vModel.prefillPasses). */
  passes: AsyncGenerator<void, PrefillResult> | undefined;
  /** Undoes what tied the sequence to its caller (a signal listener); called when it leaves the batcher. */
  detach: (() => void) | undefined;
  /** Tokens whose choice has been submitted to the GPU (prefill's included). */
  submitted = 0;
  readonly events: EventQueue<GenerateEvent>;
  readonly input: PrefillInput;
  readonly promptIds: Int32Array;
  readonly opt: ResolvedOptions;
  readonly record: TurnRecord;
  private readonly reply: ReplyText;

  constructor(
    job: Job,
    tokenizer: Tokenizer,
    private readonly eos: ReadonlySet<number>,
    onCancel: (s: Sequence) => void,
  ) {
    ({ input: this.input, promptIds: this.promptIds, opt: this.opt, record: this.record, session: this.session } = job);
    this.keepsSession = job.session !== undefined;
    this.record.promptTokens = this.promptIds.length;
    this.record.cachedTokens = this.promptIds.length - this.input.ids.length;
    this.record.seed = this.opt.seed;
    this.reply = new ReplyText(tokenizer, this.opt);
    this.events = new EventQueue<GenerateEvent>(() => onCancel(this));
  }

  get done(): boolean {
    return this.state === 'done';
  }

  /** Marks the start of its prefill. */
  startPrefill(): void {
    this.record.prefillStart ??= performance.now();
  }

  /** Whether a decode step may be submitted for it: a token still wanted, room in its cache. */
  get wantsStep(): boolean {
    const s = this.session;
    return (
      this.state === 'running' && s !== undefined && this.submitted < this.opt.maxNewTokens && s.length < s.capacity
    );
  }

  /** A token read back; ends the sequence on a stop token or string, or at its limit. */
  deliver(token: number): void {
    if (this.done) return;
    const r = this.record;
    r.last = performance.now();
    r.first ??= r.last;
    r.tokens.push(token);
    if (this.eos.has(token) && !this.opt.ignoreEos) return this.end('stop');
    this.events.push({ type: 'token', id: token });
    for (const piece of this.reply.push(token)) this.events.push({ type: 'text', ...piece });
    if (this.reply.stopped) return this.end('stop');
    // every submitted token is in and no step can follow: the token limit or the context
    if (r.tokens.length === this.submitted && !this.wantsStep) this.end('length');
  }

  /** Ends the sequence: the held text, then the done event with the stats. Safe to call more than once. */
  end(reason: FinishReason): void {
    if (this.done) return;
    this.state = 'done';
    this.record.finish = reason;
    for (const piece of this.reply.flush()) this.events.push({ type: 'text', ...piece });
    this.events.push({ type: 'done', finishReason: reason, stats: this.record.stats() });
    this.events.end();
  }

  /** Ends the sequence with an error, which its consumer receives. */
  fail(error: unknown): void {
    if (this.done) return;
    this.state = 'done';
    this.events.fail(error);
  }
}
