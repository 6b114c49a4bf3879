// Continuous batching: up to maxBatch sequences decode together, one decode step for all of them (every weight
// is read once per step for all rows: each linear layer's matvec becomes a small-M matmul), each sequence in its
// own slot of a KV pool at its own length.
//
// One loop, one GPU queue. Each turn of the loop:
//   1. admits waiting requests into free slots (their sampling options set, their prompt marked as seen);
//   2. runs ONE prefill pass (the vision tower, or one chunk of prefillChunkTokens prompt tokens) of the oldest
//      sequence still prefilling, so that a long prompt delays the others' next tokens by one pass, not by all of it;
//   3. submits one decode step for every running sequence that wants a token (graphs recorded per batch size, once);
//   4. reads back the tokens of the step before (one step stays in flight: the GPU never waits for the host) and
//      hands them to their sequences, which stream text, and end on a stop token or string, at their limit, or
//      when aborted. A sequence that ends frees its slot at once; a step already in flight for it is discarded.
// Sequences that end or are cancelled (the consumer left, its signal fired) free their slot at once, so a waiting
// request takes it on the next turn.
//
// Every reply of the library runs here: Glm4v.generate() and a Chat turn are a batch of one over a session of
// their own (Engine.decode: a chat keeps its session, and so its KV cache, across turns); a server or
// generateBatch() shares one pool of maxBatch slots between many requests.

import { AbortError, ContextOverflowError, Graph, InputError, Tensor } from '@glm4v/core';
import { type KvDType, markPresent } from '@glm4v/kernels';
import type { DecodeStep } from '../model/glm4v.js';
import type { KvPool } from '../model/session.js';
import type { GenerateRequest, PreparedPrompt } from '../processor.js';
import type { Engine } from './engine.js';
import type { GenerateEvent } from './events.js';
import { type GenerateOptions, resolveOptions } from './options.js';
import { type Job, Sequence } from './sequence.js';
import { TurnRecord } from './turn.js';

export interface BatcherOptions {
  /** Sequences decoded together (default 8). */
  maxBatch?: number;
  /** KV-cache size of each sequence in tokens: prompt plus reply (default: max_position_embeddings). */
  contextLength?: number;
  /** KV-cache element type (default: the model's, Glm4vLoadOptions.kvCacheDType). */
  kvCacheDType?: KvDType;
  /**
   * Prompt tokens per prefill pass between two decode steps: the longest a prompt delays the others' next token is
   * one pass. Default: DEFAULT_PREFILL_CHUNK with maxBatch > 1, else as many as the device's bindings allow (≤ 512).
   */
  prefillChunkTokens?: number;
}

/** A submitted request: its events (iterate them), and whether it was accepted (prompt prepared and checked). */
export interface Submission extends AsyncIterable<GenerateEvent> {
  /**
   * Resolves once the prompt is prepared and checked (Glm4vProcessor) and fits the context; rejects with the typed
   * error otherwise (an
   * AbortError when it was cancelled or the batcher closed first; its events then end with an abort).
   */
  readonly accepted: Promise<{ promptTokens: number }>;
  /** Ends the request as an abort (its slot freed at once). */
  cancel(): void;
}

export interface BatcherStats {
  maxBatch: number;
  contextLength: number;
  /** Accepted requests waiting for a slot. */
  waiting: number;
  /** Sequences holding a slot (prefilling or decoding). */
  active: number;
  decodeSteps: number;
  /** Rows over all decode steps (decodeSteps × average batch). */
  decodeRows: number;
  promptTokens: number;
  generatedTokens: number;
}

type Readback = { seqs: Sequence[]; tokens: Promise<Uint32Array> };

/** Prompt tokens per prefill pass when several sequences share the batcher (vLLM's chunked prefill is similar). */
export const DEFAULT_PREFILL_CHUNK = 256;

export class Batcher {
  readonly maxBatch: number;
  readonly contextLength: number;
  private readonly waiting: Sequence[] = [];
  private readonly prefilling: Sequence[] = [];
  private running: Sequence[] = [];
  private readonly inflight: Readback[] = [];
  private readonly steps = new Map<number, DecodeStep>();
  private readonly counts = { decodeSteps: 0, decodeRows: 0, promptTokens: 0, generatedTokens: 0 };
  private readonly eos: ReadonlySet<number>;
  private loopDone: Promise<void> | undefined;
  private readonly onDisposal = () => this.stopAll();
  private wake: (() => void) | undefined;
  /** kick() since the loop's turn began: something may have changed (a request, a cancel), so it must not sleep. */
  private kicked = false;
  private closed = false;

  /**
   * A batcher over `pool`, which it frees on close() when it `ownsPool` (create() makes one that does; Engine.decode
   * runs a reply on a session's own pool, which stays with the session).
   */
  constructor(
    private readonly host: Engine,
    private readonly pool: KvPool,
    private readonly chunkTokens: number | undefined,
    private readonly ownsPool: boolean,
  ) {
    this.maxBatch = pool.slots;
    this.contextLength = pool.capacity;
    this.eos = host.eos;
    host.disposal.signal.addEventListener('abort', this.onDisposal, { once: true });
  }

  /** A batcher with a pool of its own: `maxBatch` slots of `contextLength` tokens, allocated now. */
  static async create(host: Engine, opts: BatcherOptions = {}): Promise<Batcher> {
    const maxBatch = opts.maxBatch ?? 8;
    const maxPos = host.model.config.text.maxPositionEmbeddings;
    const context = opts.contextLength ?? maxPos;
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw new InputError(`maxBatch is ${maxBatch}; expected an integer ≥ 1`);
    if (!Number.isInteger(context) || context < 2 || context > maxPos)
      throw new InputError(
        `contextLength is ${context}; expected an integer from 2 to ${maxPos} (max_position_embeddings)`,
      );
    const chunk =
      opts.prefillChunkTokens ??
      (maxBatch > 1 ? Math.min(DEFAULT_PREFILL_CHUNK, host.model.defaultChunkTokens()) : undefined);
    if (chunk !== undefined && (!Number.isInteger(chunk) || chunk < 1))
      throw new InputError(`prefillChunkTokens is ${chunk}; expected an integer ≥ 1`);
    const pool = await host.model.createPool(maxBatch, context, opts.kvCacheDType ?? host.kvCacheDType);
    return new Batcher(host, pool, chunk, true);
  }

  get stats(): BatcherStats {
    return {
      maxBatch: this.maxBatch,
      contextLength: this.contextLength,
      waiting: this.waiting.length,
      active: this.prefilling.length + this.running.length,
      ...this.counts,
    };
  }

  /** Prepares and checks the request's prompt, then queues it; its events stream as it decodes with the others. */
  submit(request: GenerateRequest | PreparedPrompt, options: GenerateOptions = {}): Submission {
    const record = new TurnRecord();
    let seq: Sequence | undefined;
    let cancelled = false;
    const accepted = (async () => {
      const opt = resolveOptions(this.host.processor.generation, options);
      const prompt = await this.host.prepare(request, options);
      if (cancelled || options.signal?.aborted) throw new AbortError('the request was cancelled');
      if (this.closed || this.host.disposal.signal.aborted)
        throw new AbortError('the batcher was closed while the request was being prepared');
      seq = this.enqueue({ input: prompt.input(), promptIds: prompt.ids, opt, record, signal: options.signal });
      return { promptTokens: prompt.ids.length };
    })();
    const events = (async function* (): AsyncGenerator<GenerateEvent> {
      try {
        await accepted;
      } catch (e) {
        // cancelled or closed before it was queued: it ends as any aborted request does
        if (!(e instanceof AbortError)) throw e;
        yield { type: 'done', finishReason: 'abort', stats: record.stats() };
        return;
      }
      yield* seq!.events;
    })();
    return {
      accepted,
      cancel: () => {
        cancelled = true;
        if (seq) this.cancel(seq);
      },
      [Symbol.asyncIterator]: () => events,
    };
  }

  /**
   * Queues a prepared prompt (what submit() does once the prompt is ready); throws a ContextOverflowError when the
   * prompt leaves no room in the context. The returned events end with `done`; leaving them early cancels it.
   */
  enqueue(job: Job): Sequence {
    if (this.closed || this.host.disposal.signal.aborted) throw new InputError('this batcher has been closed');
    const s = job.session;
    if (s && s.pool !== this.pool)
      throw new InputError(`session in slot ${s.slot} belongs to another KV pool than this batcher`);
    const room = s ? s.capacity - s.length : this.contextLength;
    const prompt = job.input.ids.length;
    if (prompt >= room) {
      throw new ContextOverflowError(
        `the prompt has ${prompt} tokens; the context holds ${room}${s ? ' more' : ''}, leaving no room to answer`,
      );
    }
    const seq = new Sequence(job, this.host.processor.tokenizer, this.eos, (q) => this.cancel(q));
    this.waiting.push(seq);
    const signal = job.signal;
    if (signal) {
      const onAbort = () => this.cancel(seq);
      signal.addEventListener('abort', onAbort, { once: true });
      seq.detach = () => signal.removeEventListener('abort', onAbort);
      if (signal.aborted) this.cancel(seq);
    }
    this.kick();
    return seq;
  }

  /** Ends a sequence as an abort and frees its slot now. */
  private cancel(seq: Sequence): void {
    if (seq.done) return;
    seq.end('abort');
    this.retire(seq);
    this.kick();
  }

  /** Frees a finished sequence's slot and drops it from the lists. */
  private retire(seq: Sequence): void {
    for (const list of [this.waiting, this.prefilling]) {
      const i = list.indexOf(seq);
      if (i >= 0) list.splice(i, 1);
    }
    this.running = this.running.filter((s) => s !== seq);
    seq.detach?.();
    seq.detach = undefined;
    void seq.passes?.return(undefined as never).catch(() => undefined);
    seq.passes = undefined;
    if (!seq.keepsSession) seq.session?.dispose();
    seq.session = undefined;
  }

  /** Starts the loop if it is not running, or wakes it if it waits for work. */
  private kick(): void {
    this.kicked = true;
    if (this.wake) {
      const w = this.wake;
      this.wake = undefined;
      w();
    }
    if (!this.loopDone && !this.closed) this.loopDone = this.loop();
  }

  /** Runs until close(); sleeps whenever a turn finds nothing to do, until kick() wakes it. */
  private async loop(): Promise<void> {
    while (!this.closed) {
      this.kicked = false;
      try {
        await this.admit();
        const prefilled = await this.prefillPass();
        const stepped = await this.decodeStep();
        // one decode step stays in flight; with none submitted now, everything is read
        while (this.inflight.length > (stepped ? 1 : 0)) await this.receive(this.inflight.shift()!);
        if (!prefilled && !stepped && this.inflight.length === 0 && !this.kicked && !this.closed)
          await new Promise<void>((r) => (this.wake = r));
      } catch (e) {
        this.failAll(e);
      }
    }
  }

  /**
   * Waiting sequences into free slots (or onto the session they brought): a session each, its sampling options, its
   * prompt marked as seen.
   */
  private async admit(): Promise<void> {
    for (const seq of [...this.waiting]) {
      const session = seq.session ?? this.pool.acquire();
      if (!session) break;
      this.waiting.splice(this.waiting.indexOf(seq), 1);
      seq.session = session;
      seq.state = 'prefilling';
      this.prefilling.push(seq);
      try {
        session.setSampling(seq.opt.sampling);
        if (seq.opt.sampling && seq.opt.sampling.repetitionPenalty !== 1) await this.markPrompt(seq);
        seq.passes = this.host.model.prefillPasses(session, seq.input, { chunkTokens: this.chunkTokens });
      } catch (e) {
        this.failOne(seq, e);
      }
    }
  }

  /** The repetition penalty counts the prompt's tokens as seen, as transformers does. */
  private async markPrompt(seq: Sequence): Promise<void> {
    const device = this.host.model.device;
    const ids = await Tensor.fromArray(device, 'i32', [seq.promptIds.length], seq.promptIds, 'prompt_ids');
    const g = new Graph(device, 'mark-prompt');
    try {
      markPresent(g, this.pool.sampler, ids, seq.session!.slot);
      await g.run();
    } finally {
      g.dispose();
      ids.dispose();
    }
  }

  /** One pass of the oldest sequence still prefilling; after its last, the sequence decodes. */
  private async prefillPass(): Promise<boolean> {
    const seq = this.prefilling[0];
    if (!seq) return false;
    seq.startPrefill();
    try {
      const r = await seq.passes!.next();
      if (!r.done || seq.done) return true;
      this.prefilling.shift();
      seq.passes = undefined;
      seq.state = 'running';
      seq.submitted = 1;
      this.running.push(seq);
      this.counts.promptTokens += seq.input.ids.length;
      this.inflight.push(this.readback([seq]));
    } catch (e) {
      this.failOne(seq, e);
    }
    return true;
  }

  /** Submits one decode step for the running sequences that want a token. */
  private async decodeStep(): Promise<boolean> {
    const rows = this.running.filter((s) => s.wantsStep);
    if (rows.length === 0) return false;
    const step = await this.stepFor(rows.length);
    await step.run(rows.map((s) => s.session!));
    for (const s of rows) s.submitted++;
    this.counts.decodeSteps++;
    this.counts.decodeRows += rows.length;
    this.inflight.push(this.readback(rows));
    return true;
  }

  /** The decode graph for `rows` sequences, recorded once per batch size. */
  private async stepFor(rows: number): Promise<DecodeStep> {
    let step = this.steps.get(rows);
    if (!step) this.steps.set(rows, (step = await this.host.model.recordDecode(this.pool, rows)));
    return step;
  }

  /** Queues the read of every slot's last token (ordered after the work just submitted). */
  private readback(seqs: Sequence[]): Readback {
    const tokens = this.pool.tokens.read() as Promise<Uint32Array>;
    tokens.catch(() => undefined); // it may be abandoned when the loop fails or closes
    return { seqs, tokens };
  }

  /** Hands each sequence its token; those that end free their slots. */
  private async receive(rb: Readback): Promise<void> {
    const tokens = await rb.tokens;
    for (const seq of rb.seqs) {
      if (seq.done) continue;
      seq.deliver(tokens[seq.session!.slot]);
      this.counts.generatedTokens++;
      if (seq.done) this.retire(seq);
    }
  }

  private failOne(seq: Sequence, e: unknown): void {
    seq.fail(e);
    this.retire(seq);
  }

  /** A failure of the shared work (a decode step, a readback): every sequence gets it, unless the model is gone. */
  private failAll(e: unknown): void {
    this.inflight.length = 0;
    for (const seq of [...this.waiting, ...this.prefilling, ...this.running]) {
      if (this.host.disposal.signal.aborted) seq.end('abort');
      else seq.fail(e);
      this.retire(seq);
    }
  }

  /** The model is being disposed: every sequence ends as an abort; the loop stops. */
  private stopAll(): void {
    for (const seq of [...this.waiting, ...this.prefilling, ...this.running]) this.cancel(seq);
    this.inflight.length = 0;
  }

  /**
   * Ends every request as an abort, waits for the GPU work in flight, and frees the KV pool and the decode graphs.
   * The batcher takes no more requests.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const seq of [...this.waiting, ...this.prefilling, ...this.running]) this.cancel(seq);
    this.closed = true;
    this.host.disposal.signal.removeEventListener('abort', this.onDisposal);
    this.kick();
    await this.loopDone;
    await Promise.all(this.inflight.map((r) => r.tokens.catch(() => undefined)));
    this.inflight.length = 0;
    for (const step of this.steps.values()) step.dispose();
    this.steps.clear();
    if (this.ownsPool) this.pool.dispose();
  }
}
