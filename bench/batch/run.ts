// Batch throughput on the demo checkpoint: N small image jobs (the sample image and a question, greedy, a few new
// tokens each) through `glm4v-run batch` on this machine, one job at a time (--max-batch 1) and 8 decoding together
// (the default), then through a Redis queue drained by one worker and by
// two worker processes. Reports jobs/s and generated tok/s from each run's own summary line, which times the jobs
// only (from the first job's start to the last one's end, model loading left out).
//   npm run bench:batch -- [--jobs 100] [--max-new-tokens 16] [--rounds 2] [--json]
// The setups alternate for --rounds rounds and each reports its best round (this machine is shared and noisy).
// The queue rows need redis-server (Debian: apt-get install redis-server); without it only the local row runs.
// Two workers on one machine share its GPU (here: lavapipe on the same CPU cores), so expect no speed-up from the
// second: throughput is bounded by the device. Workers on separate GPUs add up.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device } from '@glm4v/core';
import {
  type CliProcess,
  demoCheckpoint,
  redisServerProgram,
  runCli,
  startCli,
  startRedis,
  waitFor,
} from '@glm4v/runtime/testing';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

interface Row {
  setup: string;
  jobs: number;
  seconds: number;
  jobsPerSecond: number;
  tokensPerSecond: number;
  /** Jobs decoded together per step (local runs; a queue's collector does not see the workers' steps). */
  meanBatch?: number;
}

/** Reads "this run N in S s (J jobs/s, T tok/s[, B jobs a decode step])" off a batch summary line. */
function summary(setup: string, stderr: string): Row {
  const m = /this run (\d+) in ([\d.]+) s \(([\d.]+) jobs\/s, ([\d.]+) tok\/s(?:, ([\d.]+) jobs a decode step)?\)/.exec(
    stderr,
  );
  if (!m) throw new Error(`${setup}: no summary line in:\n${stderr}`);
  return {
    setup,
    jobs: Number(m[1]),
    seconds: Number(m[2]),
    jobsPerSecond: Number(m[3]),
    tokensPerSecond: Number(m[4]),
    meanBatch: m[5] === undefined ? undefined : Number(m[5]),
  };
}

/** The stderr of a glm4v-run that must succeed. */
async function succeeded(what: string, run: Promise<{ code: number; stderr: string }>): Promise<string> {
  const { code, stderr } = await run;
  if (code !== 0) throw new Error(`${what}: exit ${code}\n${stderr}`);
  return stderr;
}

/** Jobs through a queue on `url` drained by `n` worker processes, started and loaded before the jobs are added. */
async function queued(n: number, url: string, ckpt: string, jobs: string, out: string, flags: string[]): Promise<Row> {
  const workers: CliProcess[] = Array.from({ length: n }, () => startCli(['worker', '--model', ckpt, '--queue', url]));
  try {
    await waitFor(
      () => workers.every((w) => /running jobs of/.test(w.out.stderr) || w.proc.exitCode !== null),
      'the workers to load',
    );
    await succeeded('enqueue', runCli(['batch', '--queue', url, '--input', jobs, ...flags]));
    const setup = `queue, ${n} worker${n > 1 ? 's' : ''}`;
    return summary(setup, await succeeded(setup, runCli(['batch', '--queue', url, '--collect', out])));
  } finally {
    for (const w of workers) w.proc.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
  }
}

async function main() {
  const json = process.argv.includes('--json');
  const n = arg('--jobs', 100);
  const maxNew = arg('--max-new-tokens', 16);
  const rounds = arg('--rounds', 2);
  const device = await Device.create();
  const adapter = device.describe();
  device.dispose();
  const ckpt = await demoCheckpoint();
  const tmp = await mkdtemp(join(tmpdir(), 'glm4v-bench-batch-'));
  const program = redisServerProgram();
  const redis = program ? await startRedis(program, tmp) : undefined;
  try {
    const jobs = join(tmp, 'jobs.jsonl');
    const lines = Array.from({ length: n }, (_, i) =>
      JSON.stringify({ id: i, prompt: `Question ${i}: what is in this picture?`, images: [join(ckpt, 'sample.png')] }),
    );
    await writeFile(jobs, `${lines.join('\n')}\n`);
    const flags = ['--max-new-tokens', String(maxNew), '--temperature', '0', '--seed', '1'];
    const best = new Map<string, Row>();
    const keep = (r: Row) => (best.get(r.setup)?.jobsPerSecond ?? -1) < r.jobsPerSecond && best.set(r.setup, r);
    for (let round = 0; round < rounds; round++) {
      for (const maxBatch of [1, 8]) {
        const setup = `local, max batch ${maxBatch}`;
        const out = join(tmp, `local${maxBatch}-${round}.jsonl`);
        keep(
          summary(
            setup,
            await succeeded(
              setup,
              runCli([
                'batch',
                '--model',
                ckpt,
                '--input',
                jobs,
                '--output',
                out,
                '--max-batch',
                String(maxBatch),
                ...flags,
              ]),
            ),
          ),
        );
      }
      if (redis)
        for (const workers of [1, 2])
          keep(
            await queued(
              workers,
              `${redis.url}/bench${workers}-${round}`,
              ckpt,
              jobs,
              join(tmp, `queue${workers}-${round}.jsonl`),
              flags,
            ),
          );
    }
    const rows = [...best.values()];
    if (json) {
      console.log(JSON.stringify({ adapter, jobs: n, maxNewTokens: maxNew, rounds, rows, redis: Boolean(redis) }));
      return;
    }
    console.log(adapter);
    console.log(
      `${n} image jobs on the demo checkpoint (sample image, ${maxNew} new tokens max, greedy); best of ${rounds} alternating rounds`,
    );
    console.log('setup                  jobs/s    tok/s   seconds  jobs a decode step');
    for (const r of rows)
      console.log(
        `${r.setup.padEnd(21)} ${r.jobsPerSecond.toFixed(2).padStart(7)} ${r.tokensPerSecond.toFixed(1).padStart(8)} ${r.seconds.toFixed(1).padStart(9)}  ${r.meanBatch?.toFixed(2) ?? '-'}`,
      );
    if (!redis) console.log('(queue rows skipped: no redis-server; Debian: apt-get install redis-server)');
  } finally {
    await redis?.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
