// What a batch run has done so far: counts for the progress bar (on a terminal) and the summary line, and the
// exit status: 0 when every job of the batch succeeded, 5 (JobsFailedError) when some failed.

import type { JobResult } from './jobs.js';
import { ProgressBar } from './progress.js';
import { JobsFailedError } from './usage.js';

export class Tally {
  private ok = 0;
  private failed = 0;
  private tokens = 0;
  private bar?: ProgressBar;
  private t0 = performance.now();
  private readonly earlier: ReadonlyMap<string, boolean>;
  private readonly earlierFailed: number;

  /**
   * `total`: jobs in the batch; `earlier`: results already in the output (job key → succeeded), counted as
   * done but not in this run's rates.
   */
  constructor(
    private total: number,
    earlier: ReadonlyMap<string, boolean>,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.earlier = new Map(earlier);
    this.earlierFailed = [...earlier.values()].filter((ok) => !ok).length;
  }

  /** Starts the clock and, on a terminal, the bar (after the model has loaded). */
  start(): void {
    this.t0 = performance.now();
    if (this.out.isTTY) this.bar = new ProgressBar(this.out);
    this.draw();
  }

  /** For a queue, whose size changes while it is collected. */
  setTotal(total: number): void {
    this.total = total;
    this.draw();
  }

  add(r: JobResult): void {
    if (r.error) {
      this.failed++;
      this.note(`job ${JSON.stringify(r.id)} failed: ${r.error.message}`);
    } else this.ok++;
    this.tokens += r.usage?.completion_tokens ?? 0;
    this.draw();
  }

  /** A line for the user, above the bar on a terminal. */
  note(line: string): void {
    if (this.bar) this.bar.note(line);
    else this.out.write(`${line}\n`);
  }

  /**
   * Prints the summary line; throws JobsFailedError (exit 5) when any job of the batch failed. `seconds`: the time
   * the jobs of this run took (default: since start(); a queue's collector gives the workers' span instead).
   */
  /** `meanBatch`: the jobs decoded together per step, on average (a local run's batcher). */
  finish(output: string, seconds?: number, meanBatch?: number): void {
    this.bar?.done();
    const s = seconds ?? (performance.now() - this.t0) / 1000;
    const failed = this.failed + this.earlierFailed;
    const before = this.earlier.size ? `; ${this.earlier.size} done in an earlier run` : '';
    const batch = meanBatch ? `, ${meanBatch.toFixed(2)} jobs a decode step` : '';
    const rates =
      this.ok + this.failed
        ? ` in ${s.toFixed(1)} s (${((this.ok + this.failed) / s).toFixed(2)} jobs/s, ${(this.tokens / s).toFixed(1)} tok/s${batch})`
        : '';
    this.out.write(
      `batch: ${this.total} jobs: ${this.total - failed - this.pending()} ok, ${failed} failed${this.pending() ? `, ${this.pending()} not run` : ''}${before}; this run ${this.ok + this.failed}${rates} → ${output}\n`,
    );
    if (failed)
      throw new JobsFailedError(
        `${failed} of ${this.total} jobs failed: see the "error" field of their lines in ${output}`,
      );
  }

  private pending(): number {
    return this.total - this.earlier.size - this.ok - this.failed;
  }

  private draw(): void {
    const ran = this.ok + this.failed;
    this.bar?.jobs({
      done: this.earlier.size + ran,
      total: this.total,
      failed: this.failed + this.earlierFailed,
      ran,
      tokens: this.tokens,
    });
  }
}
