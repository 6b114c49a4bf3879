// The KV cache of a conversation, kept across turns. Each turn's prompt is the whole conversation rendered again
// (as a fresh request would be, earlier replies without their thinking: docs/model.md#output-format); the cache keeps its longest
// prefix that holds the same tokens, never cutting an image or video block, and only the rest is prefilled. The
// result is the fresh prefill's: the same tokens at the same positions, so the same keys and values. The session
// grows (by copying, at least doubling) when a turn needs more room.

import type { KvDType } from '@glm4v/kernels';
import type { Glm4vModel, PrefillInput } from '../model/glm4v.js';
import type { Session } from '../model/session.js';
import type { PreparedPrompt } from '../processor.js';
import { ropeIndex } from '../rope-index.js';

export class ConversationCache {
  session: Session | undefined;
  /** The tokens whose keys and values the session holds, in order. */
  private ids: number[] = [];

  constructor(
    private readonly model: Glm4vModel,
    private readonly dtype: KvDType,
  ) {}

  /** How many of `prompt`'s first tokens the cache can keep: a common prefix, at least one token short of it. */
  reusable(prompt: PreparedPrompt): number {
    const ids = prompt.ids;
    let n = 0;
    while (n < this.ids.length && n < ids.length - 1 && this.ids[n] === ids[n]) n++;
    return prompt.cutBefore(n);
  }

  /**
   * Keeps the first `cached` tokens (from reusable()), makes room for `capacity` tokens (growing up to `limit`),
   * and returns what is left to prefill.
   */
  async keep(prompt: PreparedPrompt, cached: number, capacity: number, limit: number): Promise<PrefillInput> {
    const input = prompt.input(cached);
    this.ids.length = cached;
    if (!this.session) {
      this.session = await this.model.createSession(capacity, this.dtype);
    } else {
      this.session.length = cached;
      if (this.session.capacity < capacity)
        this.session = await this.session.grow(Math.min(Math.max(capacity, 2 * this.session.capacity), limit));
    }
    this.session.ropeDelta = ropeDeltaAt(prompt, cached, this.model);
    return input;
  }

  /** After a turn: the session holds the prompt then the reply's tokens, as far as its length says. */
  commit(promptIds: Int32Array, reply: readonly number[]): void {
    this.ids = this.session ? [...promptIds, ...reply].slice(0, this.session.length) : [];
  }

  /** Forgets every token (the buffers stay for the next turn). */
  clear(): void {
    this.ids = [];
    if (this.session) this.session.length = 0;
  }

  dispose(): void {
    this.session?.dispose();
    this.session = undefined;
    this.ids = [];
  }
}

/** The rotary offset after the first `n` tokens of `prompt`: (largest position so far + 1) − n (docs/model.md#decode-positions). */
function ropeDeltaAt(prompt: PreparedPrompt, n: number, model: Glm4vModel): number {
  if (n === 0) return 0;
  const { positions } = ropeIndex(prompt.ids, prompt.plan, model.config.tokens);
  const L = prompt.ids.length;
  let max = -1;
  for (let r = 0; r < 3; r++) for (let i = 0; i < n; i++) max = Math.max(max, positions[r * L + i]);
  return max + 1 - n;
}
