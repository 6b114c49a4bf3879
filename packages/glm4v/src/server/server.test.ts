// The server against real HTTP on 127.0.0.1, called through the official `openai` client as applications call it.
// The fixed-reply checkpoint (its greedy reply is known: thinking 'Why 你?', answer 'Yes,猫!' with box markers to
// remove) checks the response shapes, limits and errors; the random demo checkpoint checks that 4 concurrent greedy
// requests get the text each gets alone; a spawned `glm4v-run serve` checks graceful shutdown on SIGTERM.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import OpenAI from 'openai';
import sharp from 'sharp';
import { Glm4v } from '../glm4v.js';
import { makeTinyCheckpoint } from '../demo.js';
import { makeFixedCheckpoint } from '../fixed-checkpoint.js';
import { ApiServer } from './server.js';
import { HAS_FFMPEG, makeTestClip } from '../test-clip.js';

const KEY = 'test-key';
const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
let tmp: string;
let fixedDir: string;
let media: string;
let fixed: Glm4v;
let server: ApiServer;
let client: OpenAI;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-serve-'));
  fixedDir = join(tmp, 'fixed');
  media = join(tmp, 'media');
  await makeFixedCheckpoint(fixedDir);
  await mkdir(media);
  await copyFile(join(fixedDir, 'sample.png'), join(media, 'sample.png'));
  fixed = await Glm4v.load(fixedDir);
  server = await ApiServer.start(fixed, {
    modelId: 'fixed',
    port: 0,
    apiKey: KEY,
    maxBatch: 1,
    maxQueue: 0,
    contextLength: 512,
    maxBodyBytes: 200_000,
    media: { mediaDir: media, maxImagePixels: 100_000 },
  });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
afterAll(async () => {
  await server?.shutdown(0);
  fixed?.dispose();
  await rm(tmp, { recursive: true, force: true });
});

const user = (
  content: OpenAI.Chat.ChatCompletionUserMessageParam['content'],
): OpenAI.Chat.ChatCompletionMessageParam[] => [{ role: 'user', content }];
/** reasoning_content is this API's extension (vLLM's name for it). */
const reasoningOf = (m: object): unknown => (m as { reasoning_content?: unknown }).reasoning_content;
const pngUrl = async (side: number) =>
  `data:image/png;base64,${(
    await sharp({ create: { width: side, height: side, channels: 3, background: '#c33' } })
      .png()
      .toBuffer()
  ).toString('base64')}`;

describe('POST /v1/chat/completions', () => {
  it('answers with the thinking in reasoning_content and the answer, box markers removed, in content', async () => {
    const r = await client.chat.completions.create({ model: 'fixed', messages: user('hi') });
    expect(r.object).toBe('chat.completion');
    expect(r.choices[0].message.content).toBe('Yes,猫!');
    expect(reasoningOf(r.choices[0].message)).toBe('Why 你?');
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(r.usage!.completion_tokens).toBeGreaterThan(10);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + r.usage!.completion_tokens);
  });

  it('streams chunks ending in finish_reason, usage (include_usage) and [DONE]', async () => {
    const stream = await client.chat.completions.create({
      model: 'fixed',
      messages: user('hi'),
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = '';
    let reasoning = '';
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) {
        content += c.delta.content ?? '';
        reasoning += (reasoningOf(c.delta) as string | undefined) ?? '';
        finishes.push(c.finish_reason);
      }
    }
    expect([reasoning, content]).toEqual(['Why 你?', 'Yes,猫!']);
    expect(finishes.filter(Boolean)).toEqual(['stop']);
    expect(usage!.completion_tokens).toBeGreaterThan(10);
  });

  it('takes an image by data URL and by file:// URL under the media folder', async () => {
    for (const url of [await pngUrl(64), pathToFileURL(join(media, 'sample.png')).href]) {
      const r = await client.chat.completions.create({
        model: 'fixed',
        messages: user([
          { type: 'image_url', image_url: { url } },
          { type: 'text', text: 'What is it?' },
        ]),
      });
      expect(r.choices[0].message.content).toBe('Yes,猫!');
      expect(r.usage!.prompt_tokens).toBeGreaterThan(20); // the image's placeholders
    }
  });

  it.skipIf(!HAS_FFMPEG)('takes a video by path under the media folder', async () => {
    const made = makeTestClip(join(media, 'clip.mp4'), { size: '112x84', rate: 4, seconds: 2 });
    expect(made.status, String(made.stderr)).toBe(0);
    const part = { type: 'video_url', video_url: { url: 'clip.mp4' } };
    const r = await client.chat.completions.create({
      model: 'fixed',
      messages: user([part, { type: 'text', text: 'What happens?' }] as never),
    });
    expect(r.choices[0].message.content).toBe('Yes,猫!');
    expect(r.usage!.prompt_tokens).toBeGreaterThan(2 * 12); // two temporal patches of placeholders
  });

  it('ends at a stop string, which is not in the text', async () => {
    const r = await client.chat.completions.create({ model: 'fixed', messages: user('hi'), stop: ['猫'] });
    expect(r.choices[0].message.content).toBe('Yes,');
    expect(r.choices[0].finish_reason).toBe('stop');
  });

  it('ends at max_tokens with finish_reason length', async () => {
    const r = await client.chat.completions.create({ model: 'fixed', messages: user('hi'), max_tokens: 3 });
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage!.completion_tokens).toBe(3);
  });
});

/** The status and error body of a call the client rejects. */
async function failure(p: Promise<unknown>): Promise<{
  status?: number;
  error: { type?: string; code?: string | null; param?: string | null; message?: string };
  headers?: Headers;
}> {
  try {
    await p;
  } catch (e) {
    if (e instanceof OpenAI.APIError) return { status: e.status, error: e.error as never, headers: e.headers as never };
    throw e;
  }
  throw new Error('the call succeeded');
}

describe('errors and limits, as OpenAI JSON', () => {
  it('401 without or with a wrong key', async () => {
    const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    const f = await failure(bad.chat.completions.create({ model: 'fixed', messages: user('hi') }));
    expect([f.status, f.error.code, f.error.message]).toEqual([401, 'invalid_api_key', 'incorrect API key']);
    const none = await fetch(`${server.url}/v1/models`);
    expect([none.status, ((await none.json()) as { error: { message: string } }).error.message]).toEqual([
      401,
      "no API key given: send 'Authorization: Bearer KEY'",
    ]);
  });

  it('400 naming the field: a wrong type, an unsupported field, a file outside the media folder, an image over the pixel cap, a prompt past the context', async () => {
    const cases: [Record<string, unknown>, string | null, string][] = [
      [{ temperature: 'hot' }, 'temperature', 'invalid_value'],
      [{ max_tokens: -1 }, 'max_tokens', 'invalid_value'],
      [{ n: 2 }, 'n', 'unsupported_parameter'],
      [
        {
          messages: user([{ type: 'image_url', image_url: { url: pathToFileURL(join(fixedDir, 'sample.png')).href } }]),
        },
        'messages[0].content[0].image_url',
        'invalid_url',
      ],
      [
        { messages: user([{ type: 'image_url', image_url: { url: await pngUrl(400) } }]) },
        'messages[0].content[0].image_url',
        'image_too_large',
      ],
      [{ messages: user('word '.repeat(600)) }, 'messages', 'context_length_exceeded'],
    ];
    for (const [fields, param, code] of cases) {
      const f = await failure(
        client.chat.completions.create({ model: 'fixed', messages: user('hi'), ...fields } as never),
      );
      expect([f.status, f.error.type, f.error.param, f.error.code], JSON.stringify(fields).slice(0, 80)).toEqual([
        400,
        'invalid_request_error',
        param,
        code,
      ]);
    }
  });

  it('400 for a body that is not JSON, 404 for an unknown model or URL, 413 for a body over --max-body', async () => {
    const post = (body: string) =>
      fetch(`${server.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body });
    const bad = await post('{"messages": [');
    expect([bad.status, ((await bad.json()) as { error: { code: string } }).error.code]).toEqual([400, 'invalid_json']);
    const model = await failure(client.chat.completions.create({ model: 'gpt-4o', messages: user('hi') }));
    expect([model.status, model.error.code, model.error.param]).toEqual([404, 'model_not_found', 'model']);
    const url = await fetch(`${server.url}/v1/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}` },
      body: '{}',
    });
    expect(url.status).toBe(404);
    const big = await failure(
      client.chat.completions.create({
        model: 'fixed',
        messages: user([{ type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(300_000)}` } }]),
      }),
    );
    expect([big.status, big.error.code]).toEqual([413, 'request_too_large']);
  });

  it('429 with Retry-After when the slot and the queue are taken; an aborted stream frees its slot at once', async () => {
    const long = await client.chat.completions.create({
      model: 'fixed',
      messages: user('hi'),
      stream: true,
      max_tokens: 400,
      ignore_eos: true,
    } as never);
    const chunks = (long as unknown as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) await chunks.next();
    const busy = await failure(client.chat.completions.create({ model: 'fixed', messages: user('hi') }));
    expect([busy.status, busy.error.code, busy.headers?.get('retry-after')]).toEqual([429, 'rate_limit_exceeded', '1']);
    await chunks.return!(); // the client leaves mid-stream
    const t0 = performance.now();
    let next;
    for (let i = 0; i < 50 && !next; i++) {
      next = await client.chat.completions
        .create({ model: 'fixed', messages: user('hi') })
        .catch((e) => (e.status === 429 ? undefined : Promise.reject(e)));
      if (!next) await new Promise((r) => setTimeout(r, 20));
    }
    expect(next!.choices[0].message.content).toBe('Yes,猫!');
    expect(performance.now() - t0, 'the next request ran at once, not after the 400-token one').toBeLessThan(20_000);
  });
});

describe('GET endpoints', () => {
  it('/v1/models, /health and /metrics', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['fixed']);
    const health = await fetch(`${server.url}/health`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of [
      'glm4v_requests_total{status="200"}',
      'glm4v_generation_tokens_total',
      'glm4v_queue_depth',
      'glm4v_batch_occupancy',
      'glm4v_generation_tokens_per_second',
    ]) {
      expect(metrics).toContain(name);
    }
    expect(Number(/glm4v_generation_tokens_total (\d+)/.exec(metrics)![1])).toBeGreaterThan(30);
  });
});

describe('batching over HTTP', () => {
  it('4 concurrent greedy requests get the text each gets alone', async () => {
    const dir = join(tmp, 'demo');
    await makeTinyCheckpoint(dir);
    const model = await Glm4v.load(dir);
    const demo = await ApiServer.start(model, {
      modelId: 'demo',
      port: 0,
      maxBatch: 4,
      contextLength: 256,
      prefillChunkTokens: 16,
      media: { maxImagePixels: 1e8 },
    });
    try {
      const c = new OpenAI({ baseURL: `${demo.url}/v1`, apiKey: 'none', maxRetries: 0 });
      const image = `data:image/png;base64,${(await readFile(join(dir, 'sample.png'))).toString('base64')}`;
      const prompts: OpenAI.Chat.ChatCompletionMessageParam[][] = [
        user([
          { type: 'image_url', image_url: { url: image } },
          { type: 'text', text: 'Describe it.' },
        ]),
        user('Hello'),
        user('Count to ten.'),
        user('你好，请介绍一下自己。'),
      ];
      const ask = async (messages: OpenAI.Chat.ChatCompletionMessageParam[]) => {
        const r = await c.chat.completions.create({
          model: 'demo',
          messages,
          temperature: 0,
          max_tokens: 16,
          ignore_eos: true,
          skip_special_tokens: false,
        } as never);
        return `${reasoningOf(r.choices[0].message)}|${r.choices[0].message.content}|${r.usage!.completion_tokens}`;
      };
      const alone: string[] = [];
      for (const p of prompts) alone.push(await ask(p));
      expect(await Promise.all(prompts.map(ask))).toEqual(alone);
      // sampling fields reach the sampler: a seed repeats its text, another seed does not
      const sampled = (seed: number) =>
        c.chat.completions.create({
          model: 'demo',
          messages: user('Hello'),
          temperature: 1.5,
          top_p: 1,
          top_k: 0,
          seed,
          max_tokens: 16,
          ignore_eos: true,
        } as never);
      const [a, b, other] = await Promise.all([sampled(1), sampled(1), sampled(2)]);
      expect(b.choices[0].message.content).toBe(a.choices[0].message.content);
      expect(other.choices[0].message.content).not.toBe(a.choices[0].message.content);
    } finally {
      await demo.shutdown(0);
      model.dispose();
    }
  });
});

describe('glm4v-run serve', () => {
  it('shuts down on SIGTERM: the request in flight ends, the process exits 0', async () => {
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--model', fixedDir, '--port', '0', '--shutdown-timeout', '1', '--quiet'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    for (let i = 0; i < 600 && !/listening on (\S+)/.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
    const url = /listening on (\S+)/.exec(stderr)![1];
    const c = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
    const stream = await c.chat.completions.create({
      model: 'fixed',
      messages: user('hi'),
      stream: true,
      max_tokens: 3000,
      ignore_eos: true,
    } as never);
    const it = (stream as unknown as AsyncIterable<OpenAI.Chat.ChatCompletionChunk>)[Symbol.asyncIterator]();
    await it.next();
    child.kill('SIGTERM');
    try {
      while (!(await it.next()).done);
    } catch {
      // the server cancelled it after the grace period: the stream ends with an error event
    }
    expect(await exited, stderr).toBe(0);
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });
});
