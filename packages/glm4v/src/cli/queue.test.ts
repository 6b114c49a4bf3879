// Batch jobs on a BullMQ queue, against a real redis-server started here on 127.0.0.1: retries and the failed set
// (in process, with a scripted runner), then the built CLI: two worker processes draining 50 jobs, a worker killed
// mid-job, and collected results equal to a local run's. Skipped, saying why, where redis-server is not installed
// (CI installs it). Jobs decode greedily, so no answer of the tiny model ends on eos.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { DeviceLostError, InputError } from '@glm4v/core';
import { makeTinyCheckpoint } from '../demo.js';
import { type JobResult, type JobSpec, parseJobs } from './jobs.js';
import { collectResults, enqueueJobs, jobProcessor, parseQueueUrl } from './queue.js';
import {
  type CliProcess,
  type RedisServer,
  redisServerProgram,
  runCli,
  startCli,
  startRedis,
  waitFor,
} from './cli-process.js';
import { JobsFailedError } from './usage.js';

const program = redisServerProgram();
if (!program)
  console.warn(
    'queue tests skipped: no redis-server program (Debian: apt-get install redis-server; .ci/run installs it)',
  );

let tmp: string;
let ckpt: string;
let redis: RedisServer;

const jsonl = (jobs: object[]) => jobs.map((j) => JSON.stringify(j)).join('\n') + '\n';
const readResults = async (path: string): Promise<JobResult[]> =>
  (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const byId = (rs: JobResult[]) => Object.fromEntries(rs.map((r) => [String(r.id), r]));
/** Ids a worker's log says it `started` or finished (`done`), in order. */
const logged = (w: CliProcess, what: 'started' | 'done') =>
  [...w.out.stderr.matchAll(new RegExp(`: job "([^"]+)" ${what}`, 'g'))].map((m) => m[1]);
const GREEDY = ['--temperature', '0', '--seed', '5'];

describe.skipIf(!program)('batch on a Redis queue (needs redis-server)', () => {
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'glm4v-queue-'));
    ckpt = join(tmp, 'ckpt');
    await makeTinyCheckpoint(ckpt);
    redis = await startRedis(program!, tmp);
  });
  afterAll(async () => {
    await redis?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('retries a passing failure with back-off, fails a bad job at once, gives a GPU failure back', async () => {
    const addr = parseQueueUrl(`${redis.url}/unit`);
    const queue = new Queue(addr.name, { connection: addr.connection });
    const specs = parseJobs(
      jsonl(['ok', 'flaky', 'bad', 'gpu'].map((id) => ({ id, prompt: id })).concat([{ id: 'x' } as never])),
      join(tmp, 'unit.jsonl'),
    );
    expect(await enqueueJobs(queue, specs, { attempts: 3, backoffMs: 200 })).toEqual({ added: 5, existing: 0 });
    expect(await enqueueJobs(queue, specs, { attempts: 3, backoffMs: 200 })).toEqual({ added: 0, existing: 5 });
    const calls: Record<string, number[]> = {};
    const runner = {
      run: async (spec: JobSpec): Promise<JobResult> => {
        const id = String(spec.id);
        const n = (calls[id] ??= []).push(Date.now());
        if (spec.error) throw new InputError(spec.error);
        if (id === 'flaky' && n === 1) throw new Error('socket hang up');
        if (id === 'bad') throw new InputError('bad.png: not a readable image');
        if (id === 'gpu' && n === 1) throw new DeviceLostError('unknown', 'device was lost');
        return {
          id: spec.id,
          answer: `answer ${id}`,
          thinking: '',
          finish_reason: 'length',
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        };
      },
    };
    let fatal = 0;
    const worker = new Worker(
      addr.name,
      jobProcessor(runner, () => fatal++),
      { connection: addr.connection },
    );
    try {
      const out = join(tmp, 'unit-results.jsonl');
      await expect(collectResults(queue, out, 50)).rejects.toThrow(JobsFailedError);
      const r = byId(await readResults(out));
      expect(Object.keys(r).sort()).toEqual(['bad', 'flaky', 'gpu', 'ok', 'x']);
      for (const id of ['ok', 'flaky', 'gpu']) expect(r[id].answer).toBe(`answer ${id}`);
      expect(r.bad.error).toEqual({ code: 'INPUT', message: 'bad.png: not a readable image' });
      expect(r.x.error!.message).toMatch(/unit\.jsonl:5: a job needs "messages" or a "prompt"/);
      expect(Object.fromEntries(Object.entries(calls).map(([id, t]) => [id, t.length]))).toEqual({
        ok: 1,
        flaky: 2,
        bad: 1,
        gpu: 2,
        x: 1,
      });
      expect(calls.flaky[1] - calls.flaky[0]).toBeGreaterThanOrEqual(200); // backed off
      expect(fatal).toBe(1);
      expect(await queue.getJobCounts('failed', 'completed')).toEqual({ failed: 2, completed: 3 });
    } finally {
      await worker.close();
      await queue.close();
    }
  });

  it('two worker processes drain 50 jobs, none done twice or lost; the collected results equal a local run', async () => {
    const url = `${redis.url}/drain`;
    const jobs = join(tmp, 'drain.jsonl');
    await writeFile(
      jobs,
      jsonl([
        ...Array.from({ length: 49 }, (_, i) =>
          i % 10 === 0
            ? { id: `q${i}`, prompt: 'What is this?', images: ['ckpt/sample.png'] }
            : { id: `q${i}`, prompt: `Question ${i}?` },
        ),
        { id: 'missing', prompt: 'x', images: ['nope.png'] },
      ]),
    );
    const workers = [0, 1].map(() => startCli(['worker', '--model', ckpt, '--queue', url]));
    try {
      await waitFor(() => workers.every((w) => /running jobs of/.test(w.out.stderr)), 'both workers to be ready');
      const add = await runCli(['batch', '--queue', url, '--input', jobs, '--max-new-tokens', '12', ...GREEDY]);
      expect(add.code, add.stderr).toBe(0);
      expect(add.stderr).toMatch(/batch: 50 jobs added/);
      const collected = join(tmp, 'drain-collected.jsonl');
      const c = await runCli(['batch', '--queue', url, '--collect', collected]);
      expect(c.code, c.stderr).toBe(5);
      expect(c.stderr).toMatch(/batch: 50 jobs: 49 ok, 1 failed/);
      for (const w of workers) w.proc.kill('SIGTERM');
      for (const w of workers) expect((await w.exited).code, w.out.stderr).toBe(0);

      const done = workers.flatMap((w) => logged(w, 'done'));
      expect(done.sort()).toEqual(Array.from({ length: 49 }, (_, i) => `q${i}`).sort()); // each once, none lost
      expect(workers.flatMap((w) => logged(w, 'started')).sort()).toEqual([...done, 'missing'].sort()); // none retried
      for (const w of workers) expect(logged(w, 'done').length, 'both workers took jobs').toBeGreaterThan(0);

      const local = join(tmp, 'drain-local.jsonl');
      const l = await runCli([
        'batch',
        '--model',
        ckpt,
        '--input',
        jobs,
        '--output',
        local,
        '--max-new-tokens',
        '12',
        ...GREEDY,
      ]);
      expect(l.code, l.stderr).toBe(5);
      const got = await readResults(collected);
      expect(got).toHaveLength(50);
      expect(byId(got)).toEqual(byId(await readResults(local)));
    } finally {
      for (const w of workers) w.proc.kill('SIGKILL');
    }
  });

  it('a worker killed mid-job has its job retried by another', async () => {
    const url = `${redis.url}/kill`;
    const jobs = join(tmp, 'kill.jsonl');
    await writeFile(
      jobs,
      jsonl([0, 1].map((i) => ({ id: `k${i}`, prompt: `Long answer ${i}.`, max_new_tokens: 300 }))),
    );
    expect((await runCli(['batch', '--queue', url, '--input', jobs, ...GREEDY])).code).toBe(0);
    const a = startCli(['worker', '--model', ckpt, '--queue', url, '--stall-seconds', '2']);
    let b: CliProcess | undefined;
    try {
      await waitFor(() => logged(a, 'started').length > 0, 'worker A to start a job');
      a.proc.kill('SIGKILL');
      await a.exited;
      const victim = logged(a, 'started')[0];
      expect(logged(a, 'done'), 'killed mid-job').toEqual([]);
      b = startCli(['worker', '--model', ckpt, '--queue', url, '--stall-seconds', '2']);
      const collected = join(tmp, 'kill-collected.jsonl');
      const c = await runCli(['batch', '--queue', url, '--collect', collected]);
      expect(c.code, c.stderr).toBe(0);
      expect((await readResults(collected)).map((r) => r.id).sort()).toEqual(['k0', 'k1']);
      expect(logged(b, 'done').sort()).toEqual(['k0', 'k1']);
      expect(logged(b, 'started').filter((id) => id === victim)).toHaveLength(1);
    } finally {
      a.proc.kill('SIGKILL');
      b?.proc.kill('SIGKILL');
    }
  });
});
