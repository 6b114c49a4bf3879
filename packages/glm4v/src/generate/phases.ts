// Splits the streamed answer text into thinking and answer at the model's tags (spec §5.4):
// <think>…</think> is thinking; everything else, <answer>…</answer> included, is the answer. The tags are
// removed; whitespace between </think> and the answer is dropped. A piece that may be the start of a tag is
// held back until the next piece decides it, so tags split across tokens are still recognised.

export type Phase = 'thinking' | 'answer';

export interface PhasedText {
  text: string;
  phase: Phase;
}

const TAGS: Readonly<Record<string, Phase>> = { '<think>': 'thinking', '</think>': 'answer', '<answer>': 'answer', '</answer>': 'answer' };

export class PhaseSplitter {
  phase: Phase = 'answer';
  private held = '';
  /** After </think>: leading whitespace of the answer is dropped. */
  private trimNext = false;

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
      const tag = Object.keys(TAGS).find((t) => this.held.startsWith(t));
      if (tag) {
        this.held = this.held.slice(tag.length);
        this.trimNext = tag === '</think>' || (tag === '<answer>' && this.trimNext);
        this.phase = TAGS[tag];
        continue;
      }
      if (Object.keys(TAGS).some((t) => t.startsWith(this.held))) return out; // maybe a tag: wait for more
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
