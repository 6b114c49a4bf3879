// Batch jobs on a Redis-backed BullMQ queue: `batch --queue URL --input` adds them (a queued job id is not added
// again), `glm4v-run worker`s on any machines run them (retries with exponential back-off; a job that uses up its
// tries, or is bad in itself, lands in the failed set with its error), `batch --queue URL --collect` writes their
// results. A job's data is its JobSpec; its return value is its JobResult; a failure's reason is "CODE: message".

import { type Job, Queue, UnrecoverableError } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { GenerateOptions } from '../glm4v.js';
import {
  type JobResult,
  type JobRunner,
  type JobSpec,
  describeError,
  errorKind,
  errorResult,
  jobKey,
  readJobs,
} from './jobs.js';
import { ResultsFile } from './results.js';
import { Tally } from './tally.js';
import { UsageError } from './usage.js';

export interface QueueAddress {
  name: string;
  connection: RedisOptions & { host: string; port: number };
  /** The URL without its password, for messages. */
  display: string;
}

/** `redis[s]://[user:password@]HOST[:PORT]/NAME[?db=N]` → where the queue lives; a UsageError names the flag. */
export function parseQueueUrl(url: string, flag = '--queue'): QueueAddress {
  const bad = (why: string) => new UsageError(`${flag} ${url}: ${why}; expected redis://HOST:6379/NAME`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad('not a URL');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw bad(`the scheme must be redis: or rediss:, got ${u.protocol}`);
  const name = decodeURIComponent(u.pathname.slice(1));
  if (!/^[\w.-]+$/.test(name))
    throw bad(`the queue name (the path) must be letters, digits, '.', '-' or '_', got '${name}'`);
  const db = u.searchParams.get('db');
  if (db !== null && !/^\d+$/.test(db)) throw bad(`db must be a number, got '${db}'`);
  const connection = {
    host: u.hostname,
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== null ? { db: Number(db) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
  if (u.password) u.password = '***';
  return { name, connection, display: u.toString() };
}

/** Fails fast, in one line, when Redis cannot be reached (BullMQ would wait for it forever). */
export async function checkReachable(addr: QueueAddress): Promise<void> {
  const probe = new Redis({
    ...addr.connection,
    lazyConnect: true,
    connectTimeout: 5000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let cause: Error | undefined;
  probe.on('error', (e: Error) => (cause ??= e)); // reported below: it says more than connect()'s rejection
  try {
    await probe.connect();
    await probe.ping();
  } catch (e) {
    throw new Error(`cannot reach Redis at ${addr.display}: ${(cause ?? (e as Error)).message}`, { cause: e });
  } finally {
    probe.disconnect();
  }
}

/** BullMQ job ids may be neither integers nor contain ':'; ours are the job's key, escaped, behind a prefix. */
const queueJobId = (id: string | number) => `job-${encodeURIComponent(jobKey(id))}`;
const keyOfQueueJobId = (qid: string) => decodeURIComponent(qid.slice('job-'.length));

export interface EnqueueOptions {
  /** Tries per job (a bad job is tried once). */
  attempts: number;
  /** First retry's delay; each later one doubles it. */
  backoffMs: number;
}

/** Adds the jobs not queued yet; returns how many were added and how many were there already. */
export async function enqueueJobs(
  queue: Queue,
  specs: readonly JobSpec[],
  o: EnqueueOptions,
): Promise<{ added: number; existing: number }> {
  let added = 0;
  for (let i = 0; i < specs.length; i += 500) {
    const chunk = specs.slice(i, i + 500);
    const states = await Promise.all(chunk.map((s) => queue.getJobState(queueJobId(s.id))));
    const fresh = chunk.filter((_, j) => states[j] === 'unknown');
    const opts = (s: JobSpec) => ({
      jobId: queueJobId(s.id),
      attempts: o.attempts,
      backoff: { type: 'exponential', delay: o.backoffMs },
      removeOnComplete: false,
      removeOnFail: false,
    });
    await queue.addBulk(fresh.map((s) => ({ name: 'glm4v', data: s, opts: opts(s) })));
    added += fresh.length;
  }
  return { added, existing: specs.length - added };
}

const PENDING = ['wait', 'active', 'delayed', 'prioritized', 'waiting-children', 'paused'] as const;

/** Waits until no job is pending, appending each finished job's result to `path` (skipping those it holds). */
export async function collectResults(queue: Queue, path: string, pollMs = 500): Promise<void> {
  const results = await ResultsFile.open(path, true);
  try {
    const tally = new Tally(0, results.done);
    if (results.repairedBytes)
      tally.note(
        `batch: ${path}: removed a half-written last line (${results.repairedBytes} bytes); its job is collected again`,
      );
    tally.start();
    const span = { first: Infinity, last: -Infinity };
    for (;;) {
      const counts = await queue.getJobCounts(...PENDING, 'completed', 'failed');
      const pending = PENDING.reduce((n, k) => n + (counts[k] ?? 0), 0);
      if (pending + counts.completed + counts.failed === 0)
        throw new UsageError(`queue '${queue.name}' has no jobs: is the name right? (add jobs with --input)`);
      tally.setTotal(pending + counts.completed + counts.failed);
      for (const state of ['completed', 'failed'] as const) {
        for (const qid of await queue.getRanges([state], 0, -1, true)) {
          if (results.done.has(keyOfQueueJobId(qid))) continue;
          const job = await queue.getJob(qid);
          if (!job) continue;
          const r =
            state === 'completed'
              ? (job.returnvalue as JobResult)
              : errorResult((job.data as JobSpec).id, parseReason(job.failedReason));
          await results.append(r);
          tally.add(r);
          span.first = Math.min(span.first, job.processedOn ?? Infinity);
          span.last = Math.max(span.last, job.finishedOn ?? -Infinity);
        }
      }
      if (pending === 0) break;
      await new Promise((r) => setTimeout(r, pollMs));
    }
    // the rates are the workers': from the first collected job's start to the last one's end
    tally.finish(path, span.last > span.first ? (span.last - span.first) / 1000 : undefined);
  } finally {
    await results.close();
  }
}

/** A failed job's reason, "CODE: message" as the worker wrote it (BullMQ's own reasons have no code). */
function parseReason(reason: string): { code: string; message: string } {
  const m = /^([A-Z][A-Z0-9_]*): (.*)$/s.exec(reason ?? '');
  return m ? { code: m[1], message: m[2] } : { code: 'ERROR', message: reason ?? 'failed' };
}

/**
 * The worker's processor: runs the job's spec and returns its result. A bad job fails for good (UnrecoverableError:
 * no retry); any other failure is retried with back-off; a fatal one (the GPU failed) also calls `onFatal`, so this
 * worker stops taking jobs and the retry goes to another.
 */
export function jobProcessor(
  runner: Pick<JobRunner, 'run'>,
  onFatal: (e: unknown) => void,
): (job: Job<JobSpec>) => Promise<JobResult> {
  return async (job) => {
    try {
      return await runner.run(job.data);
    } catch (e) {
      const { code, message } = describeError(e);
      const kind = errorKind(e);
      if (kind === 'fatal') onFatal(e);
      throw kind === 'job' ? new UnrecoverableError(`${code}: ${message}`) : new Error(`${code}: ${message}`);
    }
  };
}

/** `glm4v-run batch --queue URL [--input JOBS.jsonl] [--collect RESULTS.jsonl]`. */
export async function queueCommand(o: {
  url: string;
  input?: string;
  collect?: string;
  attempts: number;
  defaults: GenerateOptions;
}): Promise<void> {
  const addr = parseQueueUrl(o.url);
  const specs = o.input ? await readJobs(o.input, o.defaults) : undefined;
  await checkReachable(addr);
  const queue = new Queue(addr.name, { connection: addr.connection });
  queue.on('error', (e) => process.stderr.write(`batch: Redis: ${e.message}\n`));
  try {
    if (specs) {
      for (const s of specs) if (s.error) process.stderr.write(`batch: ${s.error} (this job will fail)\n`);
      const { added, existing } = await enqueueJobs(queue, specs, { attempts: o.attempts, backoffMs: 10_000 });
      process.stderr.write(
        `batch: ${added} jobs added to ${addr.display}${existing ? `, ${existing} already there` : ''}\n`,
      );
    }
    if (o.collect) await collectResults(queue, o.collect);
    if (!specs && !o.collect) {
      const c = await queue.getJobCounts(...PENDING, 'completed', 'failed');
      const waiting = c.wait + c.prioritized + c.paused + c['waiting-children'];
      console.log(
        `${addr.display}: ${waiting} waiting, ${c.active} running, ${c.delayed} waiting to retry, ${c.completed} completed, ${c.failed} failed`,
      );
    }
  } finally {
    await queue.close();
  }
}
