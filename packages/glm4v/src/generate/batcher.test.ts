// Continuous batching on a tiny random-weight checkpoint: several conversations decoding in one step give each the
// tokens it gets alone (greedy and seeded sampling, requests arriving while others decode, a long prompt prefilled
// in chunks between their steps); a cancelled request frees its slot at once; a prompt past the context is refused
// at submit; the pool's memory comes back on close.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContextOverflowError } from '@glm4v/core';
import { Glm4v, type GenerateEvent, type GenerateOptions, type GenerateRequest } from '../glm4v.js';
import { makeTinyCheckpoint } from '../demo.js';

let dir: string;
let model: Glm4v;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glm4v-batch-'));
  await makeTinyCheckpoint(dir);
  model = await Glm4v.load(dir);
});
afterAll(async () => {
  model?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const ask = (text: string, image = false): GenerateRequest => ({
  messages: [
    {
      role: 'user',
      content: image
        ? [
            { type: 'image', image: { path: join(dir, 'sample.png') } },
            { type: 'text', text },
          ]
        : text,
    },
  ],
});

async function tokensOf(events: AsyncIterable<GenerateEvent>): Promise<{ tokens: number[]; finish: string }> {
  const tokens: number[] = [];
  let finish = '';
  for await (const ev of events) {
    if (ev.type === 'token') tokens.push(ev.id);
    if (ev.type === 'done') finish = ev.finishReason;
  }
  return { tokens, finish };
}

// Greedy (with and without the checkpoint's repetition penalty) and seeded sampling, prompts of different lengths
// (one with an image: ~100 tokens, prefilled in chunks of 16 between the others' decode steps).
const jobs = (): { request: GenerateRequest; options: GenerateOptions }[] => [
  { request: ask('What is in the picture?', true), options: { temperature: 0, maxNewTokens: 20, ignoreEos: true } },
  { request: ask('Hello'), options: { temperature: 0, repetitionPenalty: 1, maxNewTokens: 24, ignoreEos: true } },
  {
    request: ask('Count to ten, please, and then say why.'),
    options: { temperature: 0.9, topK: 20, topP: 0.9, seed: 5, maxNewTokens: 16, ignoreEos: true },
  },
  { request: ask('你好'), options: { temperature: 0, maxNewTokens: 12, ignoreEos: true } },
];

describe('Batcher', () => {
  it('gives 4 concurrent requests (some arriving mid-decode) the tokens each gets alone', async () => {
    const JOBS = jobs();
    const alone: { tokens: number[]; finish: string }[] = [];
    for (const j of JOBS) alone.push(await tokensOf(model.generate(j.request, j.options)));
    const batcher = await model.batcher({ maxBatch: 4, contextLength: 256, prefillChunkTokens: 16 });
    try {
      const first = [0, 1].map((i) => tokensOf(batcher.submit(JOBS[i].request, JOBS[i].options)));
      while (batcher.stats.generatedTokens < 4) await new Promise((r) => setTimeout(r, 5));
      const later = [2, 3].map((i) => tokensOf(batcher.submit(JOBS[i].request, JOBS[i].options)));
      const together = await Promise.all([...first, ...later]);
      together.forEach((t, i) => expect(t.tokens, `request ${i}`).toEqual(alone[i].tokens));
      expect(together.map((t) => t.finish)).toEqual(['length', 'length', 'length', 'length']);
      const s = batcher.stats;
      expect(s.decodeRows / s.decodeSteps, 'average rows per decode step').toBeGreaterThan(1.5);
    } finally {
      await batcher.close();
    }
  });

  it('gives concurrent requests their tokens alone on q8 and q4 weights (the quantised linears, a quantised embedding by slot)', async () => {
    for (const quant of ['q8', 'q4'] as const) {
      const q = await Glm4v.load(dir, { quant });
      try {
        const JOBS = jobs().slice(1);
        const alone: number[][] = [];
        for (const j of JOBS) alone.push((await tokensOf(q.generate(j.request, j.options))).tokens);
        const together = await q.generateBatch(JOBS, { maxBatch: 3 });
        together.forEach((t, i) => expect(t.tokens, `${quant} request ${i}`).toEqual(alone[i]));
      } finally {
        q.dispose();
      }
    }
  });

  it("generateBatch returns each request's reply, as alone", async () => {
    const JOBS = jobs();
    const alone = await model.generateText(JOBS[1].request, JOBS[1].options);
    const [a, b] = await model.generateBatch([JOBS[1], JOBS[3]]);
    expect(a.tokens).toEqual(alone.tokens);
    expect(a.answer + a.thinking).toBe(alone.answer + alone.thinking);
    expect(b.tokens.length).toBe(12);
  });

  it('keeps decoding the running requests while a long prompt is prefilled in chunks', async () => {
    const batcher = await model.batcher({ maxBatch: 2, contextLength: 1024, prefillChunkTokens: 32 });
    try {
      const tokens: number[] = [];
      const running = (async () => {
        for await (const ev of batcher.submit(ask('Hi'), { temperature: 0, maxNewTokens: 200, ignoreEos: true }))
          if (ev.type === 'token') tokens.push(performance.now());
      })();
      while (tokens.length < 2) await new Promise((r) => setTimeout(r, 5));
      const long = batcher.submit(ask('word '.repeat(150)), { temperature: 0, maxNewTokens: 2, ignoreEos: true }); // ~450 tokens
      const submitted = performance.now();
      let first = 0;
      for await (const ev of long) if (ev.type === 'token') first ||= performance.now();
      const during = tokens.filter((t) => t > submitted && t < first).length;
      // ~14 passes of 32 tokens, each followed by a decode step of the running request
      expect(during, 'tokens of the running request while the long prompt was prefilled').toBeGreaterThanOrEqual(10);
      await running;
    } finally {
      await batcher.close();
    }
  });

  it('frees the slot of a cancelled request at once: the request waiting for it runs', async () => {
    const batcher = await model.batcher({ maxBatch: 1, contextLength: 256 });
    try {
      const long = batcher.submit(ask('Tell a long story.'), { temperature: 0, maxNewTokens: 200, ignoreEos: true });
      const queued = tokensOf(batcher.submit(ask('Hi'), { temperature: 0, maxNewTokens: 3, ignoreEos: true }));
      let seen = 0;
      for await (const ev of long) if (ev.type === 'token' && ++seen === 3) break; // the consumer leaves
      expect(batcher.stats.active + batcher.stats.waiting).toBeLessThanOrEqual(1);
      expect((await queued).tokens).toHaveLength(3);
      expect(batcher.stats.generatedTokens).toBeLessThan(20);
    } finally {
      await batcher.close();
    }
  });

  it('refuses a prompt past the context at submit; ends what is queued as an abort on close; returns the pool', async () => {
    const before = model.device.pool.stats.bytesInUse;
    const batcher = await model.batcher({ maxBatch: 2, contextLength: 16 });
    await expect(batcher.submit(ask('What is in the picture?', true)).accepted).rejects.toBeInstanceOf(
      ContextOverflowError,
    );
    const pending = tokensOf(batcher.submit(ask('Hi'), { temperature: 0, maxNewTokens: 10, ignoreEos: true }));
    await batcher.close();
    expect(['abort', 'length']).toContain((await pending).finish);
    expect(model.device.pool.stats.bytesInUse).toBe(before);
  });
});
