// One-line progress bars on a terminal (stderr), redrawn in place at most 10 times a second: weights loading or
// quantising (`update`, used by cli/open.ts and cli/quantize.ts), and batch jobs (`jobs`).

export class ProgressBar {
  private last = 0;
  private drawn = false;
  private readonly t0 = performance.now();

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly verb = 'loading',
  ) {}

  /** Loading (the verb given): bytes done of total, GB/s, the tensor being read. */
  update(done: number, total: number, label: string): void {
    const gb = (n: number) => (n / 1e9).toFixed(2);
    const rate = done / 1e9 / Math.max(1e-3, this.seconds());
    this.draw(done, total, this.verb, `${gb(done)}/${gb(total)} GB ${rate.toFixed(2)} GB/s ${label}`);
  }

  /** Jobs: done of total, failures; jobs/s and tok/s of the `ran` jobs since the bar started; time left at that rate. */
  jobs(p: { done: number; total: number; failed: number; ran: number; tokens: number }): void {
    const s = Math.max(1e-3, this.seconds());
    const left = p.ran > 0 ? ((p.total - p.done) * s) / p.ran : NaN;
    const failed = p.failed ? ` ${p.failed} failed` : '';
    this.draw(
      p.done,
      p.total,
      'jobs',
      `${p.done}/${p.total}${failed} ${(p.ran / s).toFixed(2)} jobs/s ${(p.tokens / s).toFixed(1)} tok/s ETA ${clock(left)}`,
    );
  }

  /** Writes a line above the bar (which is redrawn by the next update). */
  note(line: string): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.out.write(`${line}\n`);
    this.last = 0;
  }

  done(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }

  private seconds(): number {
    return (performance.now() - this.t0) / 1000;
  }

  private draw(done: number, total: number, what: string, text: string): void {
    const now = performance.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const width = 30;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(frac * width);
    const line = `${what} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${text}`;
    const cols = this.out.columns || 100;
    this.out.write(`\r${line.slice(0, cols - 1).padEnd(cols - 1)}`);
    this.drawn = true;
  }
}

/** Seconds as h:mm:ss or m:ss ('?' when unknown). */
export function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const t = Math.round(seconds);
  const [h, m, s] = [Math.floor(t / 3600), Math.floor(t / 60) % 60, t % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}
