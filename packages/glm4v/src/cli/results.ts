// A results file: one JobResult per line, appended as each job finishes and flushed to disk, so a run killed at any
// moment leaves every finished job recorded. Reopened to resume, it tells which jobs are done; a last line cut off
// by the kill is removed (that job runs again).

import { type FileHandle, open } from 'node:fs/promises';
import { InputError } from '@glm4v/core';
import { type JobResult, jobKey } from './jobs.js';
import { UsageError } from './usage.js';

export class ResultsFile {
  private constructor(
    private readonly file: FileHandle,
    readonly path: string,
    /** Job key → whether that job succeeded, for every result already in the file. */
    readonly done: Map<string, boolean>,
    /** Bytes of a half-written last line that opening removed (0 when the file was whole). */
    readonly repairedBytes: number,
  ) {}

  /**
   * Opens `path` to append. With `resume`, an existing file's results are read (and a cut-off last line removed);
   * without, a file that already holds results is refused, so a finished run is never mixed into a new one.
   */
  static async open(path: string, resume: boolean): Promise<ResultsFile> {
    const file = await open(path, 'a+');
    try {
      const bytes = await file.readFile();
      if (bytes.length && !resume)
        throw new UsageError(`${path} already holds results: give --resume to skip the jobs it has, or remove it`);
      // in bytes: a cut-off line may end inside a UTF-8 character
      const whole = bytes.lastIndexOf(0x0a) + 1;
      if (whole < bytes.length) await file.truncate(whole);
      return new ResultsFile(
        file,
        path,
        readDone(bytes.subarray(0, whole).toString('utf8'), path),
        bytes.length - whole,
      );
    } catch (e) {
      await file.close();
      throw e;
    }
  }

  /** Appends one result line and flushes it to the disk before returning. */
  async append(result: JobResult): Promise<void> {
    await this.file.appendFile(`${JSON.stringify(result)}\n`);
    await this.file.datasync();
    this.done.set(jobKey(result.id), result.error === undefined);
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}

function readDone(text: string, path: string): Map<string, boolean> {
  const done = new Map<string, boolean>();
  text.split('\n').forEach((line, i) => {
    if (line === '') return;
    let r: Partial<JobResult> | undefined;
    try {
      r = JSON.parse(line);
    } catch {
      // handled below
    }
    if (typeof r?.id !== 'string' && typeof r?.id !== 'number')
      throw new InputError(
        `${path}:${i + 1}: not a result line (a JSON object with an "id"): is this a glm4v-run batch results file?`,
      );
    done.set(jobKey(r.id), r.error === undefined);
  });
  return done;
}
