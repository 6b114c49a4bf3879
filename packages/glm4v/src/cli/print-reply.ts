// Printing a reply as it streams: the thinking dimmed on a terminal (or hidden), then the answer; the stats line
// on stderr.

import type { GenerateEvent, GenerationStats } from '../generate/events.js';

const DIM = '\x1b[2m';
const RESET = '\x1b[0m';

/** Writes a reply's text events to `out`; end() closes the line. */
export class ReplyPrinter {
  private phase: string | undefined;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly opts: { hideThinking?: boolean } = {},
  ) {}

  onEvent = (ev: GenerateEvent): void => {
    if (ev.type !== 'text' || (ev.phase === 'thinking' && this.opts.hideThinking)) return;
    const tty = this.out.isTTY;
    if (this.phase === 'thinking' && ev.phase === 'answer') this.out.write(tty ? `${RESET}\n` : '\n');
    if (ev.phase === 'thinking' && this.phase !== 'thinking' && tty) this.out.write(DIM);
    this.phase = ev.phase;
    this.out.write(ev.text);
  };

  end(): void {
    if (this.phase === 'thinking' && this.out.isTTY) this.out.write(RESET);
    this.out.write('\n');
    this.phase = undefined;
  }
}

/** `[12 prompt tokens, 30 generated (stop); first token 0.41 s, prefill 29.3 tok/s, decode 8.10 tok/s; seed 7; adapter]` */
export function statsLine(s: GenerationStats, finishReason: string, adapter: string): string {
  const cached = s.cachedTokens > 0 ? ` (${s.cachedTokens} cached)` : '';
  return (
    `[${s.promptTokens} prompt tokens${cached}, ${s.generatedTokens} generated (${finishReason}); ` +
    `first token ${(s.timeToFirstTokenMs / 1000).toFixed(2)} s, prefill ${s.prefillTokensPerSecond.toFixed(1)} tok/s, ` +
    `decode ${s.decodeTokensPerSecond.toFixed(2)} tok/s; seed ${s.seed}; ${adapter}]`
  );
}
