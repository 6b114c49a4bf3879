// Conversations: the KV cache kept across turns. Turn 2 prefills only the tokens the cache does not hold, and
// what it computes equals a fresh prefill of the whole history (logits within the conformance tolerance, the same
// greedy tokens), with images in both turns and the cache grown in between.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device } from '@glm4v/core';
import { Glm4v } from './glm4v.js';
import { makeTinyCheckpoint } from './demo.js';
import { FIXED_REPLY, makeFixedCheckpoint } from './fixed-checkpoint.js';
import { ConversationCache } from './generate/conversation.js';
import { loadModel } from './model/load-model.js';
import { Glm4vProcessor } from './processor.js';
import type { ContentPart, Message } from './prompt/chat-template.js';
import { runCli } from './cli/cli-process.js';

/** f32 activations: max |Δ| ≤ 1e-4 · max |reference| (the conformance tolerance). */
const REL_TOL = 1e-4;
let tmp: string;
let fixed: string;
let tiny: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-chat-'));
  [fixed, tiny] = [join(tmp, 'fixed'), join(tmp, 'tiny')];
  await makeFixedCheckpoint(fixed);
  await makeTinyCheckpoint(tiny);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const withImage = (text: string, seed = 0): ContentPart[] => [
  { type: 'image', image: { path: join(tiny, 'sample.png') } },
  { type: 'text', text: `${text}${' '.repeat(seed)}` },
];

describe('Chat', () => {
  it('answers turn after turn, prefilling only the tokens each turn adds', async () => {
    const model = await Glm4v.load(fixed);
    try {
      const chat = model.chat([{ role: 'system', content: 'Answer briefly.' }]);
      const one = await chat.sendText('What is it?');
      expect([one.thinking, one.answer, one.stats.cachedTokens]).toEqual([FIXED_REPLY.thinking, FIXED_REPLY.answer, 0]);
      const two = await chat.sendText('And again?');
      expect([two.thinking, two.answer, two.finishReason]).toEqual([FIXED_REPLY.thinking, FIXED_REPLY.answer, 'stop']);
      // the reply starts with <think>, which the re-rendered history leaves out: the cache keeps turn 1's prompt
      const fresh = await model.processor.prepare({ messages: [...chat.messages.slice(0, -1)] });
      expect(two.stats.cachedTokens).toBe(one.stats.promptTokens);
      expect(two.stats.promptTokens).toBe(fresh.ids.length);
      expect(chat.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant']);
      // the reply as written, thinking and all, but for image and video tokens (which would ask for an image)
      expect(chat.messages[2].content).toBe(model.tokenizer.decode(one.tokens).replace('<|image|>', ''));
      chat.reset();
      const three = await chat.sendText('Once more.');
      expect([three.answer, three.stats.cachedTokens]).toEqual([FIXED_REPLY.answer, 0]);
      expect(chat.messages).toHaveLength(3);
      chat.dispose();
    } finally {
      model.dispose();
    }
  });

  it('keeps an aborted reply as far as it went, and forgets a failed turn', async () => {
    const model = await Glm4v.load(fixed);
    try {
      const chat = model.chat();
      const ac = new AbortController();
      let tokens = 0;
      for await (const ev of chat.send('Count.', { signal: ac.signal }))
        if (ev.type === 'token' && ++tokens === 3) ac.abort();
      expect(chat.messages).toHaveLength(2);
      await expect(chat.sendText([{ type: 'image', image: { path: join(tmp, 'missing.png') } }])).rejects.toThrow(
        /missing\.png/,
      );
      expect(chat.messages).toHaveLength(2);
      const next = await chat.sendText('Go on.');
      expect(next.answer).toBe(FIXED_REPLY.answer);
      expect(next.stats.cachedTokens).toBeGreaterThan(0);
      chat.dispose();
    } finally {
      model.dispose();
    }
  });

  it('turn 2 gives the greedy tokens of a fresh generation over the whole history', async () => {
    const model = await Glm4v.load(tiny);
    try {
      const chat = model.chat();
      const opts = { maxNewTokens: 6, temperature: 0 };
      await chat.sendText(withImage('What is in the picture?'), opts);
      const history: Message[] = [...chat.messages, { role: 'user', content: withImage('And this one?', 1) }];
      const two = await chat.sendText(history[history.length - 1].content, opts);
      const fresh = await model.generateText({ messages: history }, opts);
      expect(two.tokens).toEqual(fresh.tokens);
      expect(two.stats.promptTokens).toBe(fresh.stats.promptTokens);
      expect(two.stats.cachedTokens).toBeGreaterThan(0);
      chat.dispose();
    } finally {
      model.dispose();
    }
  });
});

describe('glm4v-run chat', () => {
  it('converses over a pipe: attachments, a bad command and a bad image reported without ending it, /reset, /exit', async () => {
    const input = [
      `/image ${join(tiny, 'sample.png')}`,
      'What is it?',
      'And again?',
      '/bogus',
      '/image /no/such.png',
      'hi',
      '/reset',
      'hello',
      '/exit',
      'never read',
    ].join('\n');
    const r = await runCli(['chat', '--model', fixed, '--system', 'Be brief.'], { input });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${FIXED_REPLY.thinking}\n${FIXED_REPLY.answer}\n`.repeat(3));
    const stats = r.stderr.split('\n').filter((l) => l.startsWith('['));
    expect(stats.filter((l) => / prompt tokens/.test(l))).toHaveLength(3);
    expect(stats.filter((l) => /cached\)/.test(l))).toHaveLength(1); // turn 2 only: /reset starts over
    expect(r.stderr).toMatch(/^glm4v-run: unknown command '\/bogus'/m);
    expect(r.stderr).toMatch(/^glm4v-run: image file '\/no\/such\.png': no such file$/m);
  });
});

describe('ConversationCache', () => {
  let device: Device;
  beforeAll(async () => {
    device = await Device.create();
  });
  afterAll(() => device?.dispose());

  it('turn 2 prefills only its new tokens, and its logits equal a fresh prefill of the whole history', async () => {
    const processor = await Glm4vProcessor.load(tiny);
    const { model } = await loadModel(tiny, device);
    const conv = new ConversationCache(model, 'f32');
    try {
      // turn 1: an image and a question, 5 greedy tokens, in a cache too small for turn 2 (it must grow)
      const turn1: Message[] = [{ role: 'user', content: withImage('Describe it.') }];
      const p1 = await processor.prepare({ messages: turn1 });
      const in1 = await conv.keep(p1, conv.reusable(p1), p1.ids.length + 6, 4096);
      await model.prefill(conv.session!, in1);
      const reply: number[] = [];
      const step = await model.recordDecode(conv.session!.pool, 1);
      for (let i = 0; i < 5; i++) {
        reply.push(await conv.session!.readToken());
        await step.run([conv.session!]);
      }
      step.dispose();
      conv.commit(p1.ids, reply);

      // turn 2: the history rendered again, with a second image
      const turn2: Message[] = [
        ...turn1,
        { role: 'assistant', content: processor.tokenizer.decode(reply) },
        { role: 'user', content: withImage('And now?', 2) },
      ];
      const p2 = await processor.prepare({ messages: turn2 });
      const cached = conv.reusable(p2);
      const before = conv.session!.capacity;
      const in2 = await conv.keep(p2, cached, p2.ids.length + 4, 4096);
      expect(conv.session!.capacity).toBeGreaterThan(before);
      expect(cached).toBeGreaterThanOrEqual(p1.ids.length);
      expect(in2.ids.length).toBe(p2.ids.length - cached);
      expect(in2.images?.grids).toHaveLength(1); // only the new image goes through the vision tower
      const got = await model.prefill(conv.session!, in2, { allLogits: true });

      const session = await model.createSession(p2.ids.length);
      try {
        const full = await model.prefill(session, p2.input(), { allLogits: true });
        const V = model.config.text.vocabSize;
        const ref = full.logits!.subarray(cached * V);
        let diff = 0;
        let scale = 0;
        for (let i = 0; i < ref.length; i++) {
          diff = Math.max(diff, Math.abs(got.logits![i] - ref[i]));
          scale = Math.max(scale, Math.abs(ref[i]));
        }
        expect(got.logits!.length).toBe(ref.length);
        expect(diff).toBeLessThanOrEqual(REL_TOL * scale);
        expect(conv.session!.ropeDelta).toBe(session.ropeDelta);
      } finally {
        session.dispose();
      }
    } finally {
      conv.dispose();
      model.dispose();
    }
  });
});
