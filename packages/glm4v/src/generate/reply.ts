// The reply's text as users read it, token by token: the ids decoded into whole UTF-8 characters (TextStream;
// special tokens skipped unless `showSpecial`), cut at the first stop string (StopStrings: matched on that text,
// <think>/<answer> tags and box markers included), then split into thinking and answer with the tags and box
// markers removed (PhaseSplitter; box markers kept with `showSpecial`).

import { TextStream, type Tokenizer } from '../prompt/tokenizer.js';
import { type PhasedText, PhaseSplitter } from './phases.js';
import { StopStrings } from './stop-strings.js';

export class ReplyText {
  private readonly stream: TextStream;
  private readonly stops: StopStrings;
  private readonly phases: PhaseSplitter;

  constructor(tok: Tokenizer, opts: { stop?: readonly string[]; showSpecial?: boolean } = {}) {
    this.stream = new TextStream(tok, { skipSpecial: !opts.showSpecial });
    this.stops = new StopStrings(opts.stop ?? []);
    this.phases = new PhaseSplitter({ keepBoxMarkers: opts.showSpecial });
  }

  /** The text completed by token `id`. */
  push(id: number): PhasedText[] {
    return this.phases.push(this.stops.push(this.stream.push(id)));
  }

  /** Whether a stop string has appeared: the reply is over. */
  get stopped(): boolean {
    return this.stops.stopped;
  }

  /** Whatever is held back, at the end of generation. */
  flush(): PhasedText[] {
    const tail = this.stops.push(this.stream.flush()) + this.stops.flush();
    return [...this.phases.push(tail), ...this.phases.flush()];
  }
}
