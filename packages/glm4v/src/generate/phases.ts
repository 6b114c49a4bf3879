// Splits the streamed answer text into thinking and answer at the model's tags (docs/model.md#output-format):
// <think>…</think> is thinking; everything else, <answer>…</answer> included, is the answer. The tags are
// removed; whitespace between </think> and the answer is dropped. The box markers the model wraps short answers
// and grounding boxes in (<|begin_of_box|>…<|end_of_box|>) are removed too, unless `keepBoxMarkers`. A piece that
// may be the start of a tag is held back until the next piece decides it, so tags split across tokens are still
// recognised.

export type Phase = 'thinking' | 'answer';

export interface PhasedText {
  text: string;
  phase: Phase;
}

const TAGS: Readonly<Record<string, Phase>> = {
  '<think>': 'thinking',
  '</think>': 'answer',
  '<answer>': 'answer',
  '</answer>': 'answer',
};
export const BOX_MARKERS: readonly string[] = ['<|begin_of_box|>', '<|end_of_box|>'];

export class PhaseSplitter {
  phase: Phase = 'answer';
  private held = '';
  /** After </think>: leading whitespace of the answer is dropped. */
  private trimNext = false;
  /** Every string removed from the text: the phase tags, and the box markers unless kept. */
  private readonly removed: readonly string[];

  constructor(opts: { keepBoxMarkers?: boolean } = {}) {
    this.removed = [...Object.keys(TAGS), ...(opts.keepBoxMarkers ? [] : BOX_MARKERS)];
  }

  push(text: string): PhasedText[] {
    this.held += text;
    const out: PhasedText[] = [];
    for (;;) {
      const lt = this.held.indexOf('<');
      if (lt < 0) {
        this.emit(this.held, out);
        this.held = '';
        return out;
      }
      this.emit(this.held.slice(0, lt), out);
      this.held = this.held.slice(lt);
      const tag = this.removed.find((t) => this.held.startsWith(t));
      if (tag) {
        this.held = this.held.slice(tag.length);
        if (tag in TAGS) {
          this.trimNext = tag === '</think>' || (tag === '<answer>' && this.trimNext);
          this.phase = TAGS[tag];
        }
        continue;
      }
      if (this.removed.some((t) => t.startsWith(this.held))) return out; // maybe a tag: wait for more
      this.emit('<', out);
      this.held = this.held.slice(1);
    }
  }

  /** Whatever is held back, at the end of generation. */
  flush(): PhasedText[] {
    const out: PhasedText[] = [];
    this.emit(this.held, out);
    this.held = '';
    return out;
  }

  private emit(text: string, out: PhasedText[]): void {
    if (this.trimNext) {
      text = text.replace(/^\s+/, '');
      if (text) this.trimNext = false;
    }
    if (!text) return;
    const last = out[out.length - 1];
    if (last && last.phase === this.phase) last.text += text;
    else out.push({ text, phase: this.phase });
  }
}
