// What every reply of a loaded model shares, whoever asks (Glm4v.generate, a Chat turn, a Batcher's request): the
// model and its processor, requests checked against this device, dispose() ending the replies in progress as
// aborts. Glm4v.generate and Chat turns run one at a time, each a batch of one on the Batcher over a session of
// their own (decode()), with the closing `done` event sent once the turn is over; afterwards the pool's idle
// buffers are given back (so GPU memory does not grow with each new mix of prompt lengths).

import { InputError } from '@glm4v/core';
import type { KvDType } from '@glm4v/kernels';
import type { Glm4vModel } from '../model/glm4v.js';
import type { Session } from '../model/session.js';
import { type GenerateRequest, type Glm4vProcessor, PreparedPrompt } from '../processor.js';
import { Batcher } from './batcher.js';
import type { GenerateEvent } from './events.js';
import type { GenerateOptions } from './options.js';
import type { Job } from './sequence.js';
import { TurnRecord } from './turn.js';

export class Engine {
  /** Aborted by dispose(): every reply in progress, on any batcher, ends as an abort. */
  readonly disposal = new AbortController();
  readonly eos: ReadonlySet<number>;
  private busy = false;

  constructor(
    readonly model: Glm4vModel,
    readonly processor: Glm4vProcessor,
    readonly kvCacheDType: KvDType,
  ) {
    this.eos = new Set(processor.generation.eosTokenIds);
  }

  /** A request checked and prepared by the processor (unless it already was), its images checked on this device. */
  async prepare(request: GenerateRequest | PreparedPrompt, options: GenerateOptions): Promise<PreparedPrompt> {
    const prompt = request instanceof PreparedPrompt ? request : await this.processor.prepare(request, options);
    this.processor.checkLimits(prompt, this.model.device.limits);
    return prompt;
  }

  /**
   * Runs `body` as this model's one reply in progress, with a signal that the caller's signal and dispose() both
   * abort; a failure after dispose() (which frees the GPU under the reply) ends it as an abort; then `done`.
   */
  async *reply(
    options: GenerateOptions,
    body: (signal: AbortSignal, record: TurnRecord) => AsyncGenerator<GenerateEvent>,
  ): AsyncGenerator<GenerateEvent> {
    if (this.disposal.signal.aborted) throw new InputError('this model has been disposed');
    if (this.busy)
      throw new InputError(
        'this model is already generating; wait for the other generate() to finish, or use batcher()',
      );
    this.busy = true;
    try {
      const record = new TurnRecord();
      const signal = options.signal ? AbortSignal.any([options.signal, this.disposal.signal]) : this.disposal.signal;
      try {
        yield* body(signal, record);
      } catch (e) {
        if (!this.disposal.signal.aborted) throw e;
        record.finish = 'abort';
      }
      yield { type: 'done', finishReason: record.finish, stats: record.stats() };
    } finally {
      this.busy = false;
      this.model.device.pool.trimIdle(); // buffers this reply did not use go back to the device
    }
  }

  /**
   * A batch of one on `session`, which the caller keeps: a Batcher over the session's pool runs the job and is
   * closed with it (no GPU work left in flight). Streams the token and text events; reply() sends the `done`.
   */
  async *decode(session: Session, job: Omit<Job, 'session'>): AsyncGenerator<GenerateEvent> {
    const batcher = new Batcher(this, session.pool, undefined, false);
    try {
      for await (const ev of batcher.enqueue({ ...job, session }).events) if (ev.type !== 'done') yield ev;
    } finally {
      await batcher.close();
    }
  }
}
