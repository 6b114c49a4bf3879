// A one-line progress bar for loading (or quantising) weights, redrawn in place on a terminal (stderr), at most 10 times a second.

export class ProgressBar {
  private last = 0;
  private readonly t0 = performance.now();

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly verb = 'loading',
  ) {}

  update(done: number, total: number, label: string): void {
    const now = performance.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const width = 30;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const filled = Math.round(frac * width);
    const gb = (n: number) => (n / 1e9).toFixed(2);
    const rate = done / 1e9 / Math.max(1e-3, (now - this.t0) / 1000);
    const line = `${this.verb} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${gb(done)}/${gb(total)} GB ${rate.toFixed(2)} GB/s ${label}`;
    const cols = this.out.columns || 100;
    this.out.write(`\r${line.slice(0, cols - 1).padEnd(cols - 1)}`);
  }

  done(): void {
    if (this.last > 0) this.out.write('\r\x1b[K');
  }
}
