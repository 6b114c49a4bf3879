// What every reply of a loaded model shares, whoever asks (Glm4v.generate, a Chat turn): the model and its
// processor, one generation at a time, dispose() ending a reply in progress as an abort, the closing `done`
// event with the stats, and afterwards the pool's idle buffers given back (so GPU memory does not grow with each
// new mix of prompt lengths).

import { InputError } from '@glm4v/core';
import type { KvDType } from '@glm4v/kernels';
import type { Glm4vModel } from '../model/glm4v.js';
import type { Glm4vProcessor } from '../processor.js';
import type { GenerateEvent } from './events.js';
import type { GenerateOptions } from './options.js';
import { TurnRecord } from './turn.js';

export class Engine {
  /** Aborted by dispose(). */
  readonly disposal = new AbortController();
  private busy = false;

  constructor(
    readonly model: Glm4vModel,
    readonly processor: Glm4vProcessor,
    readonly kvCacheDType: KvDType,
  ) {}

  get eos(): ReadonlySet<number> {
    return new Set(this.processor.generation.eosTokenIds);
  }

  /**
   * Runs `body` as this model's one reply in progress, with a signal that the caller's signal and dispose() both
   * abort; a failure after dispose() (which frees the GPU under the reply) ends it as an abort; then `done`.
   */
  async *reply(options: GenerateOptions, body: (signal: AbortSignal, record: TurnRecord) => AsyncGenerator<GenerateEvent>): AsyncGenerator<GenerateEvent> {
    if (this.disposal.signal.aborted) throw new InputError('this model has been disposed');
    if (this.busy) throw new InputError('this model is already generating; wait for the other generate() to finish');
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
}
