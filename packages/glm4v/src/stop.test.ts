// How generation ends, on the fixed-reply checkpoint (fixed-checkpoint.ts: the greedy reply is known and ends on
// an EOS, as nearly every reply of the real model does): an EOS, another stop token, max tokens, an abort, a
// consumer that stops reading, dispose() at any point. Each must leave no GPU work pending and no unhandled
// rejection, and the CLI must exit 0 with the exact answer every time.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Glm4v, type GenerateEvent } from './glm4v.js';
import { FIXED_REPLY, fixedChain, makeFixedCheckpoint } from './fixed-checkpoint.js';
import { lastJson, runCli } from './cli/cli-process.js';

let tmp: string;
let dir: string;
let userStop: string;
let unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'glm4v-stop-'));
  dir = join(tmp, 'fixed');
  userStop = join(tmp, 'fixed-user-stop');
  await makeFixedCheckpoint(dir);
  await makeFixedCheckpoint(userStop, { stop: '<|user|>' });
  process.on('unhandledRejection', onUnhandled);
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await rm(tmp, { recursive: true, force: true });
});
afterEach(async () => {
  // a rejection left behind surfaces a few turns after the code that abandoned it
  await new Promise((r) => setTimeout(r, 50));
  expect(unhandled.map(String)).toEqual([]);
  unhandled = [];
});

const ask = (text = 'hi') => ({ messages: [{ role: 'user' as const, content: text }] });
/** The reply's ids as `tokens` holds them: the chain after '\n', up to the stop token. */
const replyIds = (chain: number[], stopAt: number) => chain.slice(1, stopAt);

describe('a reply that ends', () => {
  it('on an EOS: exact text, tokens and finish reason, over load/generate/dispose loops', async () => {
    const chain = fixedChain();
    const answerEnd = chain.length - 2; // </answer> is an EOS: generation stops there
    for (let i = 0; i < 4; i++) {
      const model = await Glm4v.load(dir);
      const r = await model.generateText(ask(`question ${i}`), { maxNewTokens: 64 });
      expect([r.thinking, r.answer, r.finishReason]).toEqual([FIXED_REPLY.thinking, FIXED_REPLY.answer, 'stop']);
      expect(r.tokens).toEqual(replyIds(chain, answerEnd));
      expect(r.stats.generatedTokens).toBe(r.tokens.length + 1);
      model.dispose();
    }
  });

  it('on another stop token of generation_config (<|user|>)', async () => {
    const model = await Glm4v.load(userStop);
    try {
      const r = await model.generateText(ask(), { maxNewTokens: 64 });
      expect(r.finishReason).toBe('stop');
      const chain = fixedChain('<|user|>');
      expect(r.tokens).toEqual(replyIds(chain, chain.length - 1));
      expect(r.thinking).toBe(FIXED_REPLY.thinking);
    } finally {
      model.dispose();
    }
  });

  describe('on one loaded model', () => {
    let model: Glm4v;
    beforeAll(async () => {
      model = await Glm4v.load(dir);
    });
    afterAll(() => model?.dispose());

    it('at max tokens, with every buffer returned', async () => {
      const inUse = model.device.pool.stats.bytesInUse;
      for (const n of [1, 2, 5]) {
        const r = await model.generateText(ask(), { maxNewTokens: n });
        expect([r.finishReason, r.tokens.length]).toEqual(['length', n]);
        expect(model.device.pool.stats.bytesInUse).toBe(inUse);
      }
    });

    it('on a stop string split across tokens (not in the text), the earliest of several', async () => {
      const cat = await model.generateText(ask(), { stop: ['猫'] }); // 猫 is three tokens, one byte each
      expect([cat.thinking, cat.answer, cat.finishReason]).toEqual([FIXED_REPLY.thinking, 'Yes,', 'stop']);
      expect(cat.tokens).toEqual(fixedChain().slice(1, fixedChain().indexOf(0xab) + 1)); // up to 猫's last byte
      const early = await model.generateText(ask(), { stop: ['Yes', 'y 你', 'Wh'] });
      expect([early.thinking, early.answer, early.finishReason]).toEqual(['', '', 'stop']);
      const thinking = await model.generateText(ask(), { stop: ['y 你', 'Yes'] });
      expect([thinking.thinking, thinking.answer]).toEqual(['Wh', '']);
      const none = await model.generateText(ask(), { stop: ['not in the reply'] });
      expect([none.answer, none.finishReason]).toEqual([FIXED_REPLY.answer, 'stop']);
      await expect(model.generateText(ask(), { stop: [''] })).rejects.toThrow(/stop\[0\]/);
    });

    it('without special tokens or box markers in the text (kept in tokens), unless showSpecial', async () => {
      const plain = await model.generateText(ask());
      const special = await model.generateText(ask(), { showSpecial: true });
      expect(plain.answer).toBe('Yes,猫!');
      expect(special.answer).toBe('Yes,[MASK]<|image|><|begin_of_box|>猫<|end_of_box|>!');
      expect(special.tokens).toEqual(plain.tokens);
      expect(plain.tokens).toContain(model.tokenizer.tokenId('<|begin_of_box|>'));
      expect(plain.tokens).toContain(model.tokenizer.tokenId('[MASK]'));
    });

    it('on an abort mid-answer, and when the consumer stops reading', async () => {
      const inUse = model.device.pool.stats.bytesInUse;
      const ac = new AbortController();
      const events: GenerateEvent[] = [];
      for await (const ev of model.generate(ask(), { signal: ac.signal })) {
        events.push(ev);
        if (ev.type === 'token' && events.filter((e) => e.type === 'token').length === 4) ac.abort();
      }
      expect(events.at(-1)).toMatchObject({ type: 'done', finishReason: 'abort' });
      for await (const ev of model.generate(ask())) if (ev.type === 'token') break; // return() mid-stream
      expect(model.device.pool.stats.bytesInUse).toBe(inUse);
      const again = await model.generateText(ask(), { maxNewTokens: 64 });
      expect(again.thinking).toBe(FIXED_REPLY.thinking); // and the model still works
    });
  });

  it('with dispose() at any point: before, during and after a generation, and twice', async () => {
    const model = await Glm4v.load(dir);
    const events: GenerateEvent[] = [];
    for await (const ev of model.generate(ask())) {
      events.push(ev);
      if (ev.type === 'token' && events.filter((e) => e.type === 'token').length === 3) model.dispose();
    }
    expect(events.at(-1)).toMatchObject({ type: 'done', finishReason: 'abort' });
    model.dispose();
    await expect(model.generateText(ask())).rejects.toThrow(/disposed/);

    const early = await Glm4v.load(dir);
    const it = early.generate(ask());
    const first = it.next();
    early.dispose(); // before the prompt reached the GPU
    const rest: GenerateEvent[] = [];
    for (let r = await first; !r.done; r = await it.next()) rest.push(r.value);
    expect(rest.at(-1)).toMatchObject({ type: 'done', finishReason: 'abort' });
  });
});

const run = (args: string[]) => runCli(args, { env: { GLM4V_CACHE: join(tmp, 'cache') } });

describe('glm4v-run on a reply that ends on an EOS', () => {
  it('exits 0 with the exact answer, 20 runs in a row', async () => {
    const results = [];
    for (let i = 0; i < 10; i++)
      results.push(...(await Promise.all([0, 1].map(() => run(['--model', dir, '--json', 'hi'])))));
    for (const r of results) {
      expect(r.code, r.stderr).toBe(0);
      const out = lastJson(r.stdout);
      expect([out.thinking, out.answer, out.finish_reason]).toEqual([FIXED_REPLY.thinking, FIXED_REPLY.answer, 'stop']);
    }
  });

  it('prints the answer without special tokens unless --show-special, and honours --stop', async () => {
    const [plain, special, stopped] = await Promise.all([
      run(['--model', dir, 'hi']),
      run(['--model', dir, '--show-special', 'hi']),
      run(['--model', dir, '--stop', 'xyz', '--stop', '猫', '--json', 'hi']),
    ]);
    expect(plain.stdout).toBe(`${FIXED_REPLY.thinking}\n${FIXED_REPLY.answer}\n`);
    expect(special.stdout).toBe(`${FIXED_REPLY.thinking}\nYes,[MASK]<|image|><|begin_of_box|>猫<|end_of_box|>!\n`);
    const out = lastJson(stopped.stdout);
    expect([out.answer, out.finish_reason]).toEqual(['Yes,', 'stop']);
    expect((await run(['--model', dir, '--stop', '', 'hi'])).code).toBe(2);
  });
});
