// The library API end to end on a tiny random-weight checkpoint: streaming order, options, reproducibility,
// abort, context overflow before any GPU work, and what is freed afterwards.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContextOverflowError, InputError } from '@glm4v/core';
import { Glm4v, type GenerateEvent } from './glm4v.js';
import { makeTinyCheckpoint } from './demo.js';
import { HAS_FFMPEG, makeTestClip } from './test-clip.js';

let dir: string;
let model: Glm4v;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glm4v-api-'));
  await makeTinyCheckpoint(dir);
  model = await Glm4v.load(dir);
});
afterAll(async () => {
  model?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const ask = (text: string, image = false) => ({
  messages: [
    {
      role: 'user' as const,
      content: image
        ? [
            { type: 'image' as const, image: { path: join(dir, 'sample.png') } },
            { type: 'text' as const, text },
          ]
        : text,
    },
  ],
});

async function collect(it: AsyncIterable<GenerateEvent>): Promise<GenerateEvent[]> {
  const out: GenerateEvent[] = [];
  for await (const ev of it) out.push(ev);
  return out;
}

describe('Glm4v.generate', () => {
  it('streams token and text events, then one done event with stats', async () => {
    const events = await collect(
      model.generate(ask('Describe the picture.', true), { maxNewTokens: 12, temperature: 0 }),
    );
    const done = events[events.length - 1];
    expect(done.type).toBe('done');
    expect(events.filter((e) => e.type === 'done')).toHaveLength(1);
    if (done.type !== 'done') return;
    const tokens = events.filter((e) => e.type === 'token');
    expect(['stop', 'length']).toContain(done.finishReason);
    if (done.finishReason === 'length') expect(tokens).toHaveLength(12);
    expect(done.stats.promptTokens).toBeGreaterThan(20); // the image alone is dozens of placeholder tokens
    expect(done.stats.timeToFirstTokenMs).toBeGreaterThan(0);
    expect(done.stats.prefillTokensPerSecond).toBeGreaterThan(0);
    // text decodes exactly the streamed tokens
    const text = events.map((e) => (e.type === 'text' ? e.text : '')).join('');
    expect(text).toBe(
      model.tokenizer.decode(tokens.map((t) => (t.type === 'token' ? t.id : -1))).replace(/<\/?(think|answer)>/g, ''),
    );
  });

  it('gives the same tokens for the same seed and different ones for another', async () => {
    const opts = { maxNewTokens: 10, temperature: 1.5, topK: 0, topP: 1, seed: 42 };
    const a = await model.generateText(ask('Say something.'), opts);
    const b = await model.generateText(ask('Say something.'), opts);
    const c = await model.generateText(ask('Say something.'), { ...opts, seed: 7 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.stats.seed).toBe(42);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it('refuses a prompt beyond the context before any GPU work', async () => {
    const before = model.device.pool.stats;
    const long = 'word '.repeat(5000); // > max_position_embeddings 4096 of the tiny model
    await expect(model.generateText(ask(long))).rejects.toBeInstanceOf(ContextOverflowError);
    await expect(model.generateText(ask('hello'), { contextLength: 4 })).rejects.toThrow(/context holds 4/);
    const after = model.device.pool.stats;
    expect([after.created, after.reused, after.bytesInUse]).toEqual([before.created, before.reused, before.bytesInUse]);
  });

  it('stops within one step of an abort and frees the session', async () => {
    const inUse = model.device.pool.stats.bytesInUse;
    const ac = new AbortController();
    const events: GenerateEvent[] = [];
    for await (const ev of model.generate(ask('Count.'), { maxNewTokens: 50, temperature: 0, signal: ac.signal })) {
      events.push(ev);
      if (events.filter((e) => e.type === 'token').length === 3) ac.abort();
    }
    const done = events[events.length - 1];
    expect(done.type === 'done' && done.finishReason).toBe('abort');
    expect(events.filter((e) => e.type === 'token').length).toBeLessThanOrEqual(4);
    expect(model.device.pool.stats.bytesInUse).toBe(inUse);
    // aborted before it starts: no GPU work, a done event with no tokens
    const early = await model.generateText(ask('Count.'), { signal: AbortSignal.abort() });
    expect([early.finishReason, early.tokens.length, early.stats.generatedTokens]).toEqual(['abort', 0, 0]);
    expect(model.device.pool.stats.bytesInUse).toBe(inUse);
  });

  it.skipIf(!HAS_FFMPEG)(
    'answers about a video (frames from ffmpeg), and refuses a video mixed with an image',
    async () => {
      const clip = join(dir, 'clip.mp4');
      const made = makeTestClip(clip, { size: '112x84', rate: 4, seconds: 2 });
      expect(made.status, String(made.stderr)).toBe(0);
      const video = { type: 'video' as const, video: clip };
      const r = await model.generateText(
        { messages: [{ role: 'user', content: [video, { type: 'text', text: 'What happens?' }] }] },
        { maxNewTokens: 3, temperature: 0 },
      );
      // 2 s at 2 fps = 4 frames = 2 temporal patches, each a run of placeholders plus its timestamp
      expect(r.stats.promptTokens).toBeGreaterThan(2 * 12);
      const image = { type: 'image' as const, image: { path: join(dir, 'sample.png') } };
      await expect(
        model.generateText({ messages: [{ role: 'user', content: [image, video, { type: 'text', text: 'x' }] }] }),
      ).rejects.toThrow(/images or videos, not both/);
    },
  );

  it('names bad options and bad messages', async () => {
    await expect(model.generateText(ask('x'), { topP: 0 })).rejects.toThrow(/topP/);
    await expect(model.generateText(ask('x'), { maxNewTokens: 0 })).rejects.toBeInstanceOf(InputError);
    await expect(model.generateText({ messages: [{ role: 'robot' as never, content: 'x' }] })).rejects.toThrow(
      /messages\[0\]\.role/,
    );
    await expect(
      model.generateText(
        ask('x', true) && {
          messages: [{ role: 'user', content: [{ type: 'image', image: { path: join(dir, 'missing.png') } }] }],
        },
      ),
    ).rejects.toThrow(/missing\.png/);
  });
});
