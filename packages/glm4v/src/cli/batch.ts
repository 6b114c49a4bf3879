// `glm4v-run batch`: a jobs file (JSONL) through the model on this machine, one result line per job, resumable;
// or, with --queue, the same jobs on a Redis queue that any number of `glm4v-run worker`s drain (cli/queue.ts).

import type { GenerateOptions } from '../glm4v.js';
import { GENERATION_FLAGS, GENERATION_HELP, generationOptions } from './generation-flags.js';
import {
  type JobResult,
  type JobSpec,
  JobRunner,
  describeError,
  errorKind,
  errorResult,
  jobKey,
  readJobs,
} from './jobs.js';
import {
  DEFAULT_CONTEXT,
  MAX_BATCH_HELP,
  WEIGHT_FLAGS,
  WEIGHT_HELP,
  type WeightChoice,
  maxBatchFlag,
  openModel,
  weightFlags,
} from './open.js';
import { queueCommand } from './queue.js';
import { ResultsFile } from './results.js';
import { Tally } from './tally.js';
import { UsageError, parseFlags } from './usage.js';

const HELP = `Usage:
  glm4v-run batch --model DIR --input JOBS.jsonl --output RESULTS.jsonl [--resume] [generation options]
  glm4v-run batch --queue redis://HOST:6379/NAME --input JOBS.jsonl [--attempts N] [generation options]
  glm4v-run batch --queue redis://HOST:6379/NAME --collect RESULTS.jsonl
  glm4v-run batch --queue redis://HOST:6379/NAME

Runs every job of a JSONL file, one JSON object per line:
  {"id": "a1", "prompt": "Describe it.", "images": ["photos/cat.jpg"], "max_new_tokens": 256}
  {"id": "a2", "prompt": "Summarise the video.", "video": "clip.mp4", "system": "Be brief."}
  {"id": "a3", "messages": [{"role": "user", "content": [{"type": "image", "image": {"path": "scan.png"}},
                                                       {"type": "text", "text": "Read the text."}]}]}
"id" (a string or an integer) is unique per file. Media paths are relative to the jobs file's folder; images may
also be http(s) URLs. Generation options per job use the flags' names with _ (max_new_tokens, temperature,
top_k, top_p, repetition_penalty, seed, context, stop, min_pixels, max_pixels, fps, max_frames, show_special);
the flags below set them for jobs that do not. Jobs decode together (up to --max-batch at once), each in a KV
slot of the largest "context" any job asks for (default ${DEFAULT_CONTEXT} tokens). Each job's request (media decoded, sizes,
the context) is checked just before it runs; the model loads once.
Each finished job appends one line to the results file, flushed at once:
  {"id", "answer", "thinking", "finish_reason", "usage": {prompt_tokens, completion_tokens, total_tokens}, "seed"}
or, for a job that failed (bad line, missing or corrupt media, prompt over the context):
  {"id", "answer": null, …, "finish_reason": "error", "error": {"code", "message"}}
and the run goes on. A line that is not a job is answered with id "line:N" unless its id could be read.

Options:
  --model DIR               checkpoint folder
${WEIGHT_HELP}
${MAX_BATCH_HELP}
  --input JOBS.jsonl        the jobs
  --output RESULTS.jsonl    where results go; an existing file is refused unless --resume
  --resume                  skip the jobs already in --output (a cut-off last line is removed and its job rerun)
  --queue URL               redis[s]://[user:password@]HOST:PORT/NAME: a Redis-backed queue named NAME. With
                            --input, adds the jobs (a job whose id is queued already is not added again); with
                            --collect, waits until the queue is drained, appending each finished job's result
                            (jobs already in the file are skipped, so collecting again is safe); alone, prints
                            the queue's counts. Jobs run on \`glm4v-run worker\`s, which must see the media paths.
  --attempts N              tries per job on a queue before it goes to the failed set (default 3; retries
                            back off exponentially from 10 s); a bad job (input, file, context) is not retried
${GENERATION_HELP}
  -h, --help                this text

Exit status: 0 every job succeeded, 5 some jobs failed (their lines carry "error"), 2 usage error,
3 bad model or jobs file, 4 device error (the run stops; --resume continues it), 1 other (Redis unreachable).`;

const OPTIONS = {
  model: { type: 'string' },
  ...WEIGHT_FLAGS,
  'max-batch': { type: 'string' },
  input: { type: 'string' },
  output: { type: 'string' },
  resume: { type: 'boolean' },
  queue: { type: 'string' },
  collect: { type: 'string' },
  attempts: { type: 'string' },
  ...GENERATION_FLAGS,
  help: { type: 'boolean', short: 'h' },
} as const;

export async function batchCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, OPTIONS);
  if (values.help) {
    console.log(HELP);
    return;
  }
  const defaults = generationOptions(values);
  if (values.queue) {
    if (!values.input && Object.keys(defaults).length)
      throw new UsageError('generation options go with --input (they are stored with the queued jobs)');
    if (
      values.model ||
      values['kv-cache'] ||
      values.quant ||
      values['quant-vision'] ||
      values['max-batch'] ||
      values.output ||
      values.resume
    )
      throw new UsageError(
        'with --queue, jobs run on `glm4v-run worker --model DIR --queue …`: give --input to add jobs, --collect RESULTS.jsonl to gather results (no --model, --kv-cache, --quant, --quant-vision, --max-batch, --output, --resume)',
      );
    const attempts = values.attempts === undefined ? 3 : Number(values.attempts);
    if (!Number.isInteger(attempts) || attempts < 1)
      throw new UsageError(`--attempts expects an integer ≥ 1, got '${values.attempts}'`);
    await queueCommand({ url: values.queue, input: values.input, collect: values.collect, attempts, defaults });
    return;
  }
  if (values.collect || values.attempts) throw new UsageError('--collect and --attempts go with --queue');
  if (!values.model || !values.input || !values.output)
    throw new UsageError('batch needs --model DIR --input JOBS.jsonl --output RESULTS.jsonl (or --queue URL)');
  await runLocal(
    { dir: values.model, maxBatch: maxBatchFlag(values['max-batch']), ...weightFlags(values) },
    values.input,
    values.output,
    Boolean(values.resume),
    defaults,
  );
}

/** The KV slot every job gets: the largest context a job (or --context) asks for, DEFAULT_CONTEXT where none. */
function jobsContext(jobs: readonly JobSpec[], maxPos: number): number {
  return Math.min(maxPos, Math.max(...jobs.map((j) => j.options.contextLength ?? DEFAULT_CONTEXT)));
}

async function runLocal(
  model: { dir: string; maxBatch: number } & WeightChoice,
  input: string,
  output: string,
  resume: boolean,
  defaults: GenerateOptions,
): Promise<void> {
  const specs = await readJobs(input, defaults);
  const results = await ResultsFile.open(output, resume);
  try {
    const keys = new Set(specs.map((s) => jobKey(s.id)));
    const tally = new Tally(specs.length, new Map([...results.done].filter(([k]) => keys.has(k))));
    if (results.repairedBytes)
      tally.note(
        `batch: ${output}: removed a half-written last line (${results.repairedBytes} bytes); its job runs again`,
      );
    const todo = specs.filter((s) => !results.done.has(jobKey(s.id)));
    const meanBatch = todo.length ? await runOnModel(model, todo, output, results, tally) : undefined;
    tally.finish(output, undefined, meanBatch);
  } finally {
    await results.close();
  }
}

/** Loads the model and runs `todo` on it, appending each result; returns the jobs decoded together per step. */
async function runOnModel(
  model: { dir: string; maxBatch: number } & WeightChoice,
  todo: readonly JobSpec[],
  output: string,
  results: ResultsFile,
  tally: Tally,
): Promise<number> {
  const open = await openModel(model.dir, model);
  try {
    tally.start();
    const runner = await JobRunner.create(open.model, {
      maxBatch: model.maxBatch,
      contextLength: jobsContext(todo, open.processor.config.text.maxPositionEmbeddings),
    });
    try {
      await runJobs(todo, runner, async (r) => {
        await results.append(r);
        tally.add(r);
      }).catch((e) => {
        tally.note(`batch: stopped: finished jobs are in ${output}; run again with --resume to do the rest`);
        throw e;
      });
      return runner.meanBatch;
    } finally {
      await runner.close();
    }
  } finally {
    open.close();
  }
}

/**
 * Runs `jobs` keeping `runner.slots` of them in flight, handing each result (or error result) to `done` as it
 * comes. A fatal error (the GPU failed) stops the run: jobs in flight finish, no new one starts, and it is thrown.
 */
async function runJobs(
  jobs: readonly JobSpec[],
  runner: JobRunner,
  done: (r: JobResult) => Promise<void>,
): Promise<void> {
  let next = 0;
  let fatal: unknown;
  const lane = async () => {
    while (fatal === undefined && next < jobs.length) {
      const spec = jobs[next++];
      const result = await runner.run(spec).catch((e) => {
        if (errorKind(e) !== 'fatal') return errorResult(spec.id, describeError(e));
        fatal ??= e;
        return undefined;
      });
      if (result) await done(result);
    }
  };
  await Promise.all(Array.from({ length: runner.slots }, lane));
  if (fatal !== undefined) throw fatal;
}
