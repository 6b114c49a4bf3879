// Stop strings in streamed text (the `stop` option): a stop string may arrive split across any number of pieces,
// so the tail of the text that could still begin one is held back until the next piece decides it. The text is
// cut before the earliest stop string; the stop string itself and anything after it are never returned.

export class StopStrings {
  /** True once a stop string has appeared; push() returns nothing more. */
  stopped = false;
  private held = '';

  constructor(private readonly stops: readonly string[]) {}

  /** The text that is now certain to come before any stop string. */
  push(text: string): string {
    if (this.stopped || this.stops.length === 0) return this.stopped ? '' : text;
    const s = this.held + text;
    let at = -1;
    for (const stop of this.stops) {
      const i = s.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.stopped = true;
      this.held = '';
      return s.slice(0, at);
    }
    const keep = this.partialTail(s);
    this.held = s.slice(s.length - keep);
    return s.slice(0, s.length - keep);
  }

  /** At the end of generation: the held tail, which no stop string completed. */
  flush(): string {
    const out = this.stopped ? '' : this.held;
    this.held = '';
    return out;
  }

  /** Length of the longest tail of `s` that is a proper prefix of some stop string. */
  private partialTail(s: string): number {
    let keep = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, s.length); k > keep; k--) {
        if (s.endsWith(stop.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    return keep;
  }
}
