// Keeps one decode step in flight. The token chosen by a step stays on the GPU (session.token), where the next
// step reads it; the host only needs it to stream text and spot a stop token. So the next step is submitted before
// the previous token's 4 bytes are read back: the GPU never waits for the readback round trip and the host's
// encoding of the next step. When a stop token comes, the one step already submitted is not used, but settle()
// waits for it, so no GPU work and no readback outlive the loop (a readback abandoned to a later dispose() would
// reject with nobody listening).

import type { Session } from './session.js';
import type { DecodeStep } from './glm4v.js';

export class DecodeLoop {
  private pending: Promise<Float32Array | Int32Array | Uint32Array> | undefined;
  private steps = 0;

  /** Call right after prefill: the readback of the token prefill chose is queued at once. */
  constructor(
    private readonly session: Session,
    private readonly step: () => DecodeStep,
  ) {
    this.pending = tracked(session.token.read());
  }

  /**
   * The next token. With `more`, the step that appends it to the cache and chooses the one after is submitted
   * first (a read queued between two submissions sees the first one's token, as the queue is ordered).
   */
  async next(more: boolean): Promise<number> {
    const current = this.pending;
    if (!current) throw new Error('DecodeLoop.next after a call with more = false');
    this.pending = undefined;
    if (more) {
      await this.step().run(++this.steps);
      this.pending = tracked(this.session.token.read());
    }
    return (await current)[0];
  }

  /** Waits for the step still in flight, whose token is not wanted. Its errors are dropped: the loop is over. */
  async settle(): Promise<void> {
    const p = this.pending;
    this.pending = undefined;
    await p?.catch(() => undefined);
  }

  /** Whether a next step fits the session. */
  get canStep(): boolean {
    return this.session.length < this.session.capacity;
  }
}

/** A readback that may be abandoned when its loop ends by an error: marked handled, so it can never reject unheard. */
function tracked<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}
