// A soak test of one loaded model: N requests (default 1000) with random prompts and options, one after another,
// a fifth of them aborted mid-answer and a fifth of them turns of a conversation (a Chat, started afresh each
// quarter). After each quarter it prints the requests that ended well or failed, host RSS and the GPU bytes in
// use and allocated; at the end it checks that no request was lost or failed, that RSS grew by less than 32 MiB
// over the last three quarters, that the GPU bytes in use stayed flat, and that no promise rejection went
// unhandled. Exit status 1 if any check fails.
//   npm run bench:soak -- [--requests 1000] [--model DIR] [--seed 1] [--json]
// Without --model it runs the demo checkpoint (tiny, random weights: the text is noise, the machinery is real).

import { join } from 'node:path';
import { rng } from '@glm4v/core/testing';
import { type Chat, type GenerateEvent, type GenerateOptions, Glm4v, type ContentPart } from '@glm4v/runtime/internal';
import { demoCheckpoint } from '@glm4v/runtime/testing';

const MIB = 2 ** 20;
const WORDS = (
  'the a picture of cat dog red blue green house tree what is in this why how many people car street ' +
  'describe answer think count colour 图片 里 有 什么 猫 狗 红色 蓝色 房子 为什么 多少 你好 请 描述 一下'
).split(' ');

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

interface Request {
  content: string | ContentPart[];
  options: GenerateOptions;
  /** Abort after this many tokens (undefined: let it finish). */
  abortAfter?: number;
  chat: boolean;
}

/** A random request: 1–120 words, an image one time in four, random sampling options, stop strings now and then. */
function randomRequest(r: () => number, image: string): Request {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const text = Array.from({ length: 1 + Math.floor(r() * 120) }, () => pick(WORDS)).join(' ');
  const content: Request['content'] =
    r() < 0.25
      ? [
          { type: 'image', image: { path: image } },
          { type: 'text', text },
        ]
      : text;
  const greedy = r() < 0.5;
  const options: GenerateOptions = {
    maxNewTokens: 1 + Math.floor(r() * 40),
    temperature: greedy ? 0 : 0.1 + 1.4 * r(),
    topK: greedy ? undefined : Math.floor(r() * 60),
    topP: greedy ? undefined : 0.5 + 0.5 * r(),
    repetitionPenalty: r() < 0.3 ? 1 + 0.3 * r() : undefined,
    seed: Math.floor(r() * 2 ** 32),
    stop: r() < 0.1 ? [pick(WORDS), pick(WORDS)] : undefined,
    showSpecial: r() < 0.1,
  };
  return {
    content,
    options,
    abortAfter: r() < 0.2 ? 1 + Math.floor(r() * options.maxNewTokens!) : undefined,
    chat: r() < 0.2,
  };
}

/** Runs one request to its done event (or its error), aborting it after `abortAfter` tokens. */
async function runOne(
  model: Glm4v,
  chat: Chat,
  q: Request,
): Promise<{ ok: boolean; aborted: boolean; error?: string }> {
  const ac = new AbortController();
  const options = { ...q.options, signal: ac.signal };
  const events: AsyncIterable<GenerateEvent> = q.chat
    ? chat.send(q.content, options)
    : model.generate({ messages: [{ role: 'user', content: q.content }] }, options);
  let tokens = 0;
  let done: Extract<GenerateEvent, { type: 'done' }> | undefined;
  try {
    for await (const ev of events) {
      if (ev.type === 'token' && ++tokens === q.abortAfter) ac.abort();
      if (ev.type === 'done') done = ev;
    }
  } catch (e) {
    return { ok: false, aborted: false, error: (e as Error).message };
  }
  if (!done) return { ok: false, aborted: false, error: 'no done event' };
  return { ok: true, aborted: done.finishReason === 'abort' };
}

interface Quarter {
  requests: number;
  ok: number;
  failed: number;
  aborted: number;
  rssMiB: number;
  gpuInUseMiB: number;
  gpuAllocatedMiB: number;
}

async function main(): Promise<void> {
  const n = Number(arg('--requests') ?? 1000);
  if (!Number.isInteger(n) || n < 4) throw new Error(`--requests expects an integer ≥ 4, got ${arg('--requests')}`);
  const json = process.argv.includes('--json');
  const log = (s: string) => (json ? process.stderr.write(`${s}\n`) : console.log(s));
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) log('note: run node with --expose-gc (npm run bench:soak does) for RSS figures taken after a full GC');
  let unhandled = 0;
  process.on('unhandledRejection', (e) => {
    unhandled++;
    log(`unhandled rejection: ${String(e)}`);
  });

  const dir = arg('--model') ?? (await demoCheckpoint());
  const image = join(await demoCheckpoint(), 'sample.png');
  const model = await Glm4v.load(dir);
  log(`${model.device.describe()}\nsoak: ${n} requests on ${dir}`);
  const r = rng(Number(arg('--seed') ?? 1));
  const quarters: Quarter[] = [];
  const totals = { ok: 0, failed: 0, aborted: 0 };
  const errors = new Map<string, number>();
  const t0 = performance.now();
  try {
    for (let q = 0; q < 4; q++) {
      const chat = model.chat([{ role: 'system', content: 'Answer briefly.' }]);
      const end = Math.round(((q + 1) * n) / 4);
      const start = Math.round((q * n) / 4);
      // RSS swings with what the allocator keeps (on a software adapter the "GPU" memory is host memory too): a
      // quarter's figure is the lowest reading, each after a full GC, over its last tenth; a leak lifts that floor
      let rss = Infinity;
      for (let i = start; i < end; i++) {
        const req = randomRequest(r, image);
        if (req.chat && chat.messages.length > 9) chat.reset();
        const res = await runOne(model, chat, req);
        totals.ok += res.ok ? 1 : 0;
        totals.failed += res.ok ? 0 : 1;
        totals.aborted += res.aborted ? 1 : 0;
        if (res.error) errors.set(res.error, (errors.get(res.error) ?? 0) + 1);
        if (i >= end - Math.max(1, Math.round((end - start) / 10))) {
          if (i === end - 1) chat.dispose();
          gc?.();
          rss = Math.min(rss, process.memoryUsage().rss);
        }
      }
      const pool = model.device.pool.stats;
      const row: Quarter = {
        requests: end,
        ...totals,
        rssMiB: rss / MIB,
        gpuInUseMiB: pool.bytesInUse / MIB,
        gpuAllocatedMiB: pool.bytesAllocated / MIB,
      };
      quarters.push(row);
      log(
        `quarter ${q + 1}/4: ${row.requests} requests, ${row.ok} ok, ${row.failed} failed (${row.aborted} aborted mid-answer); ` +
          `RSS ${row.rssMiB.toFixed(1)} MiB; GPU ${row.gpuInUseMiB.toFixed(2)} MiB in use, ${row.gpuAllocatedMiB.toFixed(2)} MiB allocated; ` +
          `${((performance.now() - t0) / 1000).toFixed(0)} s`,
      );
    }
  } finally {
    model.dispose();
  }
  for (const [msg, count] of errors) log(`failed ${count}×: ${msg}`);

  const rssGrowth = quarters[3].rssMiB - quarters[0].rssMiB;
  const checks: [string, boolean][] = [
    [`every request ended with a done event, none failed (${totals.ok}/${n})`, totals.ok === n],
    [`RSS growth over the last three quarters ${rssGrowth.toFixed(1)} MiB < 32 MiB`, rssGrowth < 32],
    [
      `GPU bytes in use flat (${quarters.map((x) => x.gpuInUseMiB.toFixed(2)).join(', ')} MiB)`,
      quarters.every((x) => x.gpuInUseMiB === quarters[0].gpuInUseMiB),
    ],
    [`no unhandled rejection (${unhandled})`, unhandled === 0],
  ];
  for (const [what, ok] of checks) log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  if (json) console.log(JSON.stringify({ requests: n, ...totals, unhandled, rssGrowthMiB: rssGrowth, quarters }));
  if (checks.some(([, ok]) => !ok)) process.exitCode = 1;
}

await main();
