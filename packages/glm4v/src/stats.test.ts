// Stats users see are taken when the GPU work is done: the time to first token is when its id was read back.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Glm4v, type GenerationStats } from './glm4v.js';
import { makeFixedCheckpoint } from './fixed-checkpoint.js';

let dir: string;
let model: Glm4v;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'glm4v-stats-'));
  await makeFixedCheckpoint(dir);
  model = await Glm4v.load(dir);
});
afterAll(async () => {
  model?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('generation stats', () => {
  it('time to first token is within 10% of what the caller measures, on a prompt where prefill dominates', async () => {
    const prompt = Array.from({ length: 1300 }, (_, i) => `w${i % 97}`).join(' '); // ~3,900 tokens of a 4,096 context
    await model.generateText({ messages: [{ role: 'user', content: 'warm up' }] }, { maxNewTokens: 2 }); // compile the kernels
    const t0 = performance.now();
    let first = 0;
    let stats: GenerationStats | undefined;
    for await (const ev of model.generate({ messages: [{ role: 'user', content: prompt }] }, { maxNewTokens: 8 })) {
      if (ev.type === 'token' && first === 0) first = performance.now() - t0;
      if (ev.type === 'done') stats = ev.stats;
    }
    const s = stats!;
    console.log(
      `prompt ${s.promptTokens} tokens: caller's first token ${first.toFixed(0)} ms, reported ${s.timeToFirstTokenMs.toFixed(0)} ms (prefill ${s.prefillMs.toFixed(0)} ms)`,
    );
    expect(s.promptTokens).toBeGreaterThan(3000);
    expect(Math.abs(s.timeToFirstTokenMs - first)).toBeLessThanOrEqual(0.1 * first);
    expect(s.prefillMs).toBeLessThanOrEqual(s.timeToFirstTokenMs);
    expect(s.prefillTokensPerSecond).toBeCloseTo(s.promptTokens / (s.prefillMs / 1000), 6);
    expect(s.decodeTokensPerSecond).toBeCloseTo((s.generatedTokens - 1) / (s.decodeMs / 1000), 6);
    expect(s.timeToFirstTokenMs + s.decodeMs).toBeLessThanOrEqual(s.totalMs + 1e-6);
  });
});
