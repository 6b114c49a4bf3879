// glm4v-run batch on this machine (the built CLI, a tiny random-weight checkpoint): bad jobs become error results
// and the run goes on; a run killed mid-way and resumed loses no job and repeats none. Jobs decode greedily: the
// tiny model's greedy answers run to the token limit, so no answer here ends on eos.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTinyCheckpoint } from '../demo.js';
import { FIXED_REPLY, makeFixedCheckpoint } from '../fixed-checkpoint.js';
import type { JobResult } from './jobs.js';
import { CLI, ourError, runCli, startCli, waitFor } from './cli-process.js';

let tmp: string;
let ckpt: string;
let http: Server; // serves the sample image at /sample.png, 404 elsewhere
let base: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-batch-'));
  ckpt = join(tmp, 'ckpt');
  await makeTinyCheckpoint(ckpt);
  await writeFile(join(tmp, 'corrupt.png'), Buffer.from('\x89PNG\r\n\x1a\nthis is not an image'));
  const png = await readFile(join(ckpt, 'sample.png'));
  http = createServer((req, res) => (req.url === '/sample.png' ? res.end(png) : res.writeHead(404).end()));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => http?.close(resolve));
  await rm(tmp, { recursive: true, force: true });
});

const jsonl = (jobs: object[]) => jobs.map((j) => JSON.stringify(j)).join('\n') + '\n';
const readResults = async (path: string): Promise<JobResult[]> =>
  (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
const lineCount = async (path: string) =>
  (
    await stat(path).then(
      () => readFile(path, 'utf8'),
      () => '',
    )
  ).split('\n').length - 1;

describe('glm4v-run batch', () => {
  it('answers every job; bad ones become error results and the run goes on (exit 5)', async () => {
    const jobs = join(tmp, 'mixed.jsonl');
    const lines = [
      { id: 'text', prompt: 'Hello there', max_new_tokens: 4 },
      { id: 'image', prompt: 'What is this?', images: ['ckpt/sample.png'] },
      { id: 'missing', prompt: 'x', images: ['nope.jpg'] },
      { id: 'corrupt', prompt: 'x', images: ['corrupt.png'] },
      { id: 'long', prompt: 'a prompt far too long for a context of eight tokens', context: 8 },
      { id: 'url', prompt: 'What is this?', images: [`${base}/sample.png`] },
      { id: 'url404', prompt: 'x', images: [`${base}/gone.png`] },
    ].map((j) => JSON.stringify(j));
    await writeFile(
      jobs,
      [
        ...lines.slice(0, 2),
        '{"id": "broken", "prompt": ',
        ...lines.slice(2),
        '{"id": "zh", "prompt": "这张图片里有什么？"}',
      ].join('\n'),
    );
    const out = join(tmp, 'mixed-results.jsonl');
    const r = await runCli([
      'batch',
      '--model',
      ckpt,
      '--input',
      jobs,
      '--output',
      out,
      '--max-new-tokens',
      '3',
      '--seed',
      '1',
      '--temperature',
      '0',
    ]);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(
      /batch: 9 jobs: 4 ok, 5 failed; this run 9 in [\d.]+ s \([\d.]+ jobs\/s, [\d.]+ tok\/s, [\d.]+ jobs a decode step\)/,
    );
    expect(ourError(r.stderr)).toMatch(/^glm4v-run: 5 of 9 jobs failed/);
    const byId = new Map((await readResults(out)).map((x) => [x.id, x]));
    expect([...byId.keys()].sort()).toEqual([
      'corrupt',
      'image',
      'line:3',
      'long',
      'missing',
      'text',
      'url',
      'url404',
      'zh',
    ]);
    for (const id of ['text', 'image', 'url', 'zh']) {
      const x = byId.get(id)!;
      expect(x.error, id).toBeUndefined();
      expect(x.usage!.completion_tokens).toBeGreaterThan(0);
      expect(x.seed).toBe(1);
    }
    expect(byId.get('text')!.usage!.completion_tokens).toBeLessThanOrEqual(4);
    expect(byId.get('image')!.usage!.prompt_tokens).toBeGreaterThan(byId.get('text')!.usage!.prompt_tokens + 20);
    expect(byId.get('line:3')!.error).toEqual({
      code: 'INPUT',
      message: expect.stringMatching(/mixed\.jsonl:3: not valid JSON/),
    });
    expect(byId.get('missing')!.error!.message).toMatch(/nope\.jpg/);
    expect(byId.get('corrupt')!.error!.message).toMatch(/corrupt\.png/);
    expect(byId.get('long')!.error!.code).toBe('CONTEXT_OVERFLOW');
    expect(byId.get('url')).toEqual({ ...byId.get('image'), id: 'url' }); // the same image, by URL
    expect(byId.get('url404')!.error).toEqual({ code: 'INPUT', message: `${base}/gone.png: HTTP 404 Not Found` });
    expect(byId.get('long')).toMatchObject({ answer: null, thinking: null, finish_reason: 'error', usage: null });

    // all good → exit 0; an existing output without --resume is refused before any work
    await writeFile(jobs, jsonl([{ id: 1, prompt: 'hi' }]));
    const good = await runCli([
      'batch',
      '--model',
      ckpt,
      '--input',
      jobs,
      '--output',
      join(tmp, 'good.jsonl'),
      '--max-new-tokens',
      '2',
    ]);
    expect(good.code, good.stderr).toBe(0);
    const again = await runCli(['batch', '--model', ckpt, '--input', jobs, '--output', join(tmp, 'good.jsonl')]);
    expect(again.code).toBe(2);
    expect(ourError(again.stderr)).toMatch(/good\.jsonl already holds results: give --resume/);
  });

  it('takes the request options as job keys (pixel budget, show_special, stop); answers ending on eos are exact', async () => {
    const fixed = join(tmp, 'fixed');
    await makeFixedCheckpoint(fixed);
    const jobs = join(tmp, 'keys.jsonl');
    const image = { prompt: 'What is this?', images: ['ckpt/sample.png'] };
    await writeFile(
      jobs,
      jsonl([
        { id: 'plain', prompt: 'hi' },
        { id: 'special', prompt: 'hi', show_special: true },
        { id: 'stop', prompt: 'hi', stop: ['猫'] },
        { id: 'image', ...image },
        { id: 'small', ...image, max_pixels: 20000 },
      ]),
    );
    const out = join(tmp, 'keys-results.jsonl');
    const r = await runCli(['batch', '--model', fixed, '--input', jobs, '--output', out]);
    expect(r.code, r.stderr).toBe(0);
    const byId = new Map((await readResults(out)).map((x) => [x.id, x]));
    expect(byId.get('plain')).toMatchObject({
      thinking: FIXED_REPLY.thinking,
      answer: FIXED_REPLY.answer,
      finish_reason: 'stop',
    });
    expect(byId.get('special')!.answer).toBe('Yes,[MASK]<|image|><|begin_of_box|>猫<|end_of_box|>!');
    expect(byId.get('stop')).toMatchObject({ answer: 'Yes,', finish_reason: 'stop' });
    expect(byId.get('image')!.answer).toBe(FIXED_REPLY.answer);
    expect(byId.get('small')!.usage!.prompt_tokens).toBeLessThan(byId.get('image')!.usage!.prompt_tokens);
  });

  it('decodes jobs together (--max-batch): each gets the answer it gets alone, and they share decode steps', async () => {
    const jobs = join(tmp, 'together.jsonl');
    await writeFile(
      jobs,
      jsonl([
        { id: 'a', prompt: 'Hello there' },
        { id: 'b', prompt: 'What is this?', images: ['ckpt/sample.png'] },
        { id: 'c', prompt: '这张图片里有什么？', max_new_tokens: 3 },
        { id: 'd', prompt: 'Count to three.', context: 64 },
        { id: 'e', prompt: 'Describe it.', images: ['ckpt/sample.png'], max_new_tokens: 5 },
      ]),
    );
    const run = async (maxBatch: number) => {
      const out = join(tmp, `together-${maxBatch}.jsonl`);
      const r = await runCli([
        'batch',
        '--model',
        ckpt,
        '--input',
        jobs,
        '--output',
        out,
        '--max-new-tokens',
        '6',
        '--temperature',
        '0',
        '--seed',
        '7',
        '--max-batch',
        String(maxBatch),
      ]);
      expect(r.code, r.stderr).toBe(0);
      const byId = Object.fromEntries((await readResults(out)).map((x) => [x.id, x]));
      return { byId, batch: Number(/([\d.]+) jobs a decode step/.exec(r.stderr)?.[1]) };
    };
    const alone = await run(1);
    const together = await run(4);
    expect(together.byId).toEqual(alone.byId);
    expect(alone.batch).toBe(1);
    expect(together.batch).toBeGreaterThan(1.5);
    expect(alone.byId.d.usage!.total_tokens).toBeLessThanOrEqual(64);
  });

  it('resumes a run killed mid-way: no job lost, none repeated, the same results as one whole run', async () => {
    const jobs = join(tmp, 'kill.jsonl');
    await writeFile(
      jobs,
      jsonl(
        Array.from({ length: 12 }, (_, i) => ({
          id: `j${i}`,
          prompt: `Job number ${i}.`,
          temperature: 0,
          seed: 3,
          max_new_tokens: 40,
        })),
      ),
    );
    const whole = join(tmp, 'whole.jsonl');
    const w = await runCli(['batch', '--model', ckpt, '--input', jobs, '--output', whole]);
    expect(w.code, w.stderr).toBe(0);

    const out = join(tmp, 'killed.jsonl');
    const first = startCli(['batch', '--model', ckpt, '--input', jobs, '--output', out]);
    await waitFor(async () => (await lineCount(out)) >= 3, '3 results');
    first.proc.kill('SIGKILL');
    await first.exited;
    const atKill = await lineCount(out);
    expect(atKill).toBeLessThan(12); // killed mid-way
    await writeFile(out, `${await readFile(out, 'utf8')}{"id":"j${atKill}","answer":"`); // as if killed inside a write

    const resumed = await runCli(['batch', '--model', ckpt, '--input', jobs, '--output', out, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/removed a half-written last line/);
    expect(resumed.stderr).toMatch(
      new RegExp(`batch: 12 jobs: 12 ok, 0 failed; ${atKill} done in an earlier run; this run ${12 - atKill} `),
    );
    const got = await readResults(out);
    expect(got.map((x) => x.id).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `j${i}`).sort());
    const ref = new Map((await readResults(whole)).map((x) => [x.id, x]));
    for (const x of got) expect(x, String(x.id)).toEqual(ref.get(x.id));

    // resuming a finished run does nothing and succeeds
    const done = await runCli(['batch', '--model', ckpt, '--input', jobs, '--output', out, '--resume']);
    expect(done.code, done.stderr).toBe(0);
    expect(await lineCount(out)).toBe(12);
  });
});

describe('glm4v-run batch and worker, usage', () => {
  it('exits 2 on usage mistakes and 1, in one line, when Redis cannot be reached', async () => {
    const jobs = join(tmp, 'usage.jsonl');
    await writeFile(jobs, jsonl([{ id: 1, prompt: 'hi' }]));
    const usage: [string[], RegExp][] = [
      [
        ['batch', '--model', ckpt, '--input', jobs],
        /batch needs --model DIR --input JOBS.jsonl --output RESULTS.jsonl/,
      ],
      [
        ['batch', '--queue', 'http://host/q', '--input', jobs],
        /--queue http:\/\/host\/q: the scheme must be redis: or rediss:/,
      ],
      [['batch', '--queue', 'redis://host:6379/a:b', '--input', jobs], /the queue name \(the path\) must be/],
      [
        ['batch', '--queue', 'redis://host:6379/q', '--model', ckpt, '--input', jobs],
        /with --queue, jobs run on `glm4v-run worker/,
      ],
      [
        ['batch', '--queue', 'redis://host:6379/q', '--collect', 'r.jsonl', '--seed', '1'],
        /generation options go with --input/,
      ],
      [
        ['batch', '--model', ckpt, '--input', jobs, '--output', 'r.jsonl', '--max-new-tokens', '0'],
        /--max-new-tokens = 0/,
      ],
      [
        ['batch', '--model', ckpt, '--input', jobs, '--output', 'r.jsonl', '--kv-cache', 'f8'],
        /--kv-cache expects f32 or f16, got 'f8'/,
      ],
      [
        [
          'batch',
          '--model',
          ckpt,
          '--input',
          jobs,
          '--output',
          'r.jsonl',
          '--min-pixels',
          '9000',
          '--max-pixels',
          '8000',
        ],
        /--min-pixels = 9000 is above --max-pixels = 8000/,
      ],
      [['worker', '--model', ckpt], /worker needs --model DIR --queue/],
      [
        ['worker', '--model', ckpt, '--queue', 'redis://127.0.0.1:1/q', '--kv-cache', 'f8'],
        /--kv-cache expects f32 or f16, got 'f8'/,
      ],
      [
        ['worker', '--model', ckpt, '--queue', 'redis://127.0.0.1:1/q', '--concurrency', '1.5'],
        /--concurrency expects an integer ≥ 1, got '1.5'/,
      ],
    ];
    const unreachable = [
      ['batch', '--queue', 'redis://127.0.0.1:1/q', '--input', jobs],
      ['worker', '--model', ckpt, '--queue', 'redis://127.0.0.1:1/q'],
    ];
    // all at once: each is a short process start
    const [u, n, help] = await Promise.all([
      Promise.all(usage.map(([args]) => runCli(args))),
      Promise.all(unreachable.map((args) => runCli(args))),
      Promise.all([runCli(['batch', '--help']), runCli(['worker', '--help'])]),
    ]);
    usage.forEach(([args, re], i) => {
      expect(u[i].code, args.join(' ')).toBe(2);
      expect(ourError(u[i].stderr)).toMatch(re);
    });
    for (const r of n) {
      expect(r.code, r.stderr).toBe(1);
      expect(ourError(r.stderr)).toMatch(
        /^glm4v-run: cannot reach Redis at redis:\/\/127\.0\.0\.1:1\/q: connect ECONNREFUSED/,
      );
    }
    expect(help[0].stdout).toMatch(/Exit status: 0 every job succeeded, 5 some jobs failed/);
    expect(help[1].stdout).toMatch(/--stall-seconds S/);
  });

  it.skipIf(spawnSync('script', ['--version']).status !== 0)(
    'draws a progress bar on a terminal (under script(1))',
    async () => {
      const jobs = join(tmp, 'tty.jsonl');
      await writeFile(jobs, jsonl([1, 2, 3].map((id) => ({ id, prompt: `Job ${id}` }))));
      const cmd = [
        process.execPath,
        CLI,
        'batch',
        '--model',
        ckpt,
        '--input',
        jobs,
        '--output',
        join(tmp, 'tty-results.jsonl'),
        '--max-new-tokens',
        '8',
        '--temperature',
        '0',
      ];
      const r = spawnSync('script', ['-qec', cmd.map((a) => `'${a}'`).join(' '), '/dev/null'], { encoding: 'utf8' });
      expect(r.status, r.stdout).toBe(0);
      expect(r.stdout).toMatch(/jobs \[#+-*\] +\d+% \d\/3 [\d.]+ jobs\/s [\d.]+ tok\/s ETA \d+:\d\d/);
      expect(r.stdout).toMatch(/jobs \[#{30}\] 100% 3\/3 /);
    },
  );
});
