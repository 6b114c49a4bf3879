// `glm4v-run worker --model DIR --queue redis://HOST:6379/NAME [--concurrency N]`: loads the model once, then runs
// jobs from the queue until stopped (SIGINT/SIGTERM: the jobs in hand finish first; a second signal quits at once).
// One line on stderr per job started, done or failed.

import { hostname } from 'node:os';
import { Worker } from 'bullmq';
import { JobRunner, type JobSpec } from './jobs.js';
import { type QueueAddress, checkReachable, jobProcessor, parseQueueUrl } from './queue.js';
import {
  DEFAULT_CONTEXT,
  MAX_BATCH_HELP,
  WEIGHT_FLAGS,
  WEIGHT_HELP,
  contextFlag,
  maxBatchFlag,
  openModel,
  weightFlags,
} from './open.js';
import { UsageError, parseFlags } from './usage.js';

const HELP = `Usage:
  glm4v-run worker --model DIR --queue redis://HOST:6379/NAME [--kv-cache f16] [--quant q4] [--max-batch N] [--concurrency N] [--stall-seconds S]

Runs the jobs that \`glm4v-run batch --queue redis://HOST:6379/NAME --input JOBS.jsonl\` queued, until stopped
(Ctrl-C or SIGTERM: the jobs in hand finish first; a second signal quits at once). Start one per GPU, on any
number of machines; each must see the jobs' media paths (a shared filesystem) or get them by URL.

Options:
  --model DIR               checkpoint folder
${WEIGHT_HELP}
${MAX_BATCH_HELP}
  --context N               KV-cache tokens per job (default ${DEFAULT_CONTEXT}); a job asking for more is an error result
  --queue URL               redis[s]://[user:password@]HOST:PORT/NAME
  --concurrency N           jobs held at once (default: --max-batch; more only claims jobs early)
  --stall-seconds S         a job whose worker stops answering for S seconds (killed, machine lost) goes back
                            to the queue for another worker (default 30); its jobs stay locked while it runs
  -h, --help                this text

Exit status: 0 stopped by a signal, 2 usage error, 3 bad model, 4 device error (the job in hand is retried
elsewhere), 1 other (Redis unreachable).`;

const OPTIONS = {
  model: { type: 'string' },
  ...WEIGHT_FLAGS,
  'max-batch': { type: 'string' },
  context: { type: 'string' },
  queue: { type: 'string' },
  concurrency: { type: 'string' },
  'stall-seconds': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function positive(v: string | undefined, flag: string, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !(n > 0) || (integer && !Number.isInteger(n)))
    throw new UsageError(`${flag} expects ${integer ? 'an integer ≥ 1' : 'a number > 0'}, got '${v}'`);
  return n;
}

export async function workerCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, OPTIONS);
  if (values.help) {
    console.log(HELP);
    return;
  }
  if (!values.model || !values.queue) throw new UsageError('worker needs --model DIR --queue redis://HOST:6379/NAME');
  const addr = parseQueueUrl(values.queue);
  const stallMs = 1000 * (positive(values['stall-seconds'], '--stall-seconds', false) ?? 30);
  const concurrency = positive(values.concurrency, '--concurrency', true);
  const weights = weightFlags(values);
  const maxBatch = maxBatchFlag(values['max-batch']);
  const context = positive(values.context, '--context', true);
  await checkReachable(addr);

  // --context is checked against the folder's config before the weights load
  let contextLength = 0;
  const { model, close } = await openModel(values.model, weights, async (processor) => {
    contextLength = contextFlag(context, processor);
    return [];
  });
  try {
    const runner = await JobRunner.create(model, { maxBatch, contextLength });
    try {
      await serve(
        addr,
        runner,
        { concurrency: concurrency ?? runner.slots, stallMs },
        `${model.device.adapter.description || model.device.adapter.device}`,
      );
    } finally {
      await runner.close();
    }
  } finally {
    close();
  }
}

/** Runs the queue's jobs until a signal or a fatal error (rethrown after the worker has closed). */
async function serve(
  addr: QueueAddress,
  runner: JobRunner,
  o: { concurrency: number; stallMs: number },
  adapter: string,
): Promise<void> {
  const me = `worker ${hostname()}:${process.pid}`;
  const log = (line: string) => process.stderr.write(`${me}: ${line}\n`);
  let fatal: unknown;
  let closing: Promise<void> | undefined;
  const stop = () => {
    if (closing) process.exit(130);
    log('stopping: finishing the jobs in hand (signal again to quit now)');
    closing = worker.close();
  };
  const onFatal = (e: unknown) => {
    fatal ??= e;
    closing ??= worker.close();
  };
  const worker = new Worker<JobSpec>(addr.name, jobProcessor(runner, onFatal), {
    connection: addr.connection,
    concurrency: o.concurrency,
    lockDuration: o.stallMs,
    stalledInterval: o.stallMs,
    maxStalledCount: 2,
    autorun: false,
  });
  const name = (job: { data: JobSpec }) => `job ${JSON.stringify(job.data.id)}`;
  let lastError = '';
  worker.on('error', (e) => e.message !== lastError && log(`error: ${(lastError = e.message)}`));
  worker.on('active', (job) => log(`${name(job)} started (try ${job.attemptsMade + 1})`));
  worker.on('completed', (job, r) =>
    log(
      `${name(job)} done: ${r.usage?.completion_tokens} tokens, ${((job.finishedOn! - job.processedOn!) / 1000).toFixed(2)} s`,
    ),
  );
  worker.on('failed', (job, e) => {
    if (!job) return;
    const final = e.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1);
    log(`${name(job)} failed${final ? '' : ', will be retried'}: ${e.message}`);
  });
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    log(`running jobs of ${addr.display} on ${adapter} (concurrency ${o.concurrency})`);
    await worker.run();
    await closing;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  if (fatal !== undefined) throw fatal;
}
