import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '@glm4v/core';
import { ChatTemplate, type Message, stripThinking } from './chat-template.js';
import { DEFAULT_CHAT_TEMPLATE } from './default-template.js';
import { type Grid, planMedia } from '../media-plan.js';
import { expandPlaceholders } from './placeholders.js';
import { makeTinyTokenizer } from './tiny-tokenizer.js';
import { Tokenizer } from './tokenizer.js';

/**
 * The official GLM-4.1V-9B-Thinking chat template, hub revision 3c1471e51dc811b589d4d12b1c1c7c1c941267c2 (quoted
 * verbatim by sglang's test_jinja_template_utils.py and recorded, with that revision and the SHA-256 of its JSON
 * string, by a third-party renderer validation; the hash is checked below). It relies on trim_blocks/lstrip_blocks,
 * recognises media by `type` or by key, and prints system and assistant contents raw (`{{ msg.content }}`).
 */
const HUB_FILE = fileURLToPath(new URL('./fixtures/glm41v-9b-thinking-3c1471e.jinja', import.meta.url));
const HUB = readFileSync(HUB_FILE, 'utf8');
const HUB_SHA256_OF_JSON = '5232dbe7ee947df4d2009f2b262b70a22d4f2d2f0590e2af4ef2a78096171e90';

const IMG = { path: 'dog.jpg' };
const BI = '<|begin_of_image|><|image|><|end_of_image|>';

const CASES: { name: string; messages: Message[]; gen?: boolean; want: string }[] = [
  {
    name: 'one image and a question',
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image', image: IMG },
          { type: 'text', text: 'What kind of dog is this?' },
        ],
      },
    ],
    want: '[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>What kind of dog is this?<|assistant|>\n',
  },
  {
    name: 'text only, string content',
    messages: [{ role: 'user', content: 'Hello' }],
    want: '[gMASK]<sop><|user|>\nHello<|assistant|>\n',
  },
  {
    name: 'system message',
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Hi' },
    ],
    want: '[gMASK]<sop><|system|>\nYou are a helpful assistant.<|user|>\nHi<|assistant|>\n',
  },
  {
    name: 'two images interleaved with text, in order',
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Compare ' },
          { type: 'image', image: IMG },
          { type: 'text', text: ' and ' },
          { type: 'image', image: { data: new Uint8Array(3) } },
          { type: 'text', text: '.' },
        ],
      },
    ],
    want: `[gMASK]<sop><|user|>\nCompare ${BI} and ${BI}.<|assistant|>\n`,
  },
  {
    name: 'a video',
    messages: [
      {
        role: 'user',
        content: [
          { type: 'video', video: 'clip.mp4' },
          { type: 'text', text: 'Describe this video.' },
        ],
      },
    ],
    want: '[gMASK]<sop><|user|>\n<|begin_of_video|><|video|><|end_of_video|>Describe this video.<|assistant|>\n',
  },
  {
    name: 'whitespace inside content is kept exactly',
    messages: [{ role: 'user', content: '  indented\n\n  lines\t ' }],
    want: '[gMASK]<sop><|user|>\n  indented\n\n  lines\t <|assistant|>\n',
  },
  {
    name: 'no generation prompt',
    messages: [{ role: 'user', content: 'Hi' }],
    gen: false,
    want: '[gMASK]<sop><|user|>\nHi',
  },
];

const MULTI_TURN: Message[] = [
  { role: 'system', content: 'Be brief.' },
  {
    role: 'user',
    content: [
      { type: 'image', image: IMG },
      { type: 'text', text: 'What is it?' },
    ],
  },
  { role: 'assistant', content: '<think>It has fur and a tail.\nProbably a dog.</think>\n<answer>A dog.</answer>' },
  { role: 'user', content: 'What colour?' },
];

/** Multi-turn conversations: earlier answers go back without their thinking (docs/model.md#output-format). */
const HISTORY: { name: string; messages: Message[]; gen?: boolean; want: string }[] = [
  {
    name: 'an earlier answer with <think>…</think> and <answer>',
    messages: MULTI_TURN,
    want: `[gMASK]<sop><|system|>\nBe brief.<|user|>\n${BI}What is it?<|assistant|>\n<answer>A dog.</answer><|user|>\nWhat colour?<|assistant|>\n`,
  },
  {
    name: 'answers without thinking, given as text parts, and with several </think> (cut at the last)',
    messages: [
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b' },
      { role: 'user', content: 'c' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: '<think>x</think>' },
          { type: 'text', text: 'd' },
        ],
      },
      { role: 'user', content: 'e' },
      { role: 'assistant', content: '<think>1</think> <think>2</think>\n\n  f </think>\tg  ' },
    ],
    gen: false,
    want: '[gMASK]<sop><|user|>\na<|assistant|>\nb<|user|>\nc<|assistant|>\nd<|user|>\ne<|assistant|>\ng  ',
  },
  {
    name: 'a system message given as text parts',
    messages: [
      {
        role: 'system',
        content: [
          { type: 'text', text: 'Be ' },
          { type: 'text', text: '<think>brief</think>.' },
        ],
      },
      { role: 'user', content: 'Hi' },
    ],
    want: '[gMASK]<sop><|system|>\nBe <think>brief</think>.<|user|>\nHi<|assistant|>\n',
  },
];

describe('builtin chat template renders the documented format (docs/model.md#chat-template)', () => {
  const t = ChatTemplate.builtin();
  for (const c of [...CASES, ...HISTORY]) {
    it(c.name, () => expect(t.render(c.messages, { addGenerationPrompt: c.gen ?? true })).toBe(c.want));
  }
});

describe('the hub template (revision 3c1471e) renders the same strings', () => {
  const t = new ChatTemplate(HUB, 'hub');
  it('is the recorded text', () => {
    expect(createHash('sha256').update(JSON.stringify(HUB)).digest('hex')).toBe(HUB_SHA256_OF_JSON);
  });
  for (const c of [...CASES, ...HISTORY]) {
    it(c.name, () => {
      const got = t.render(c.messages, { addGenerationPrompt: c.gen ?? true });
      expect(got).toBe(c.want);
      expect(got).toBe(ChatTemplate.builtin().render(c.messages, { addGenerationPrompt: c.gen ?? true }));
    });
  }
  it('loaded from chat_template.jinja it renders the history without thinking', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'glm4v-hub-'));
    writeFileSync(join(dir, 'chat_template.jinja'), HUB);
    const got = (await ChatTemplate.load(dir)).render(MULTI_TURN);
    expect(got).not.toContain('<think>');
    expect(got).toBe(HISTORY[0].want);
  });
});

describe('stripThinking', () => {
  it('cuts through the last </think> and left-trims; text without it is unchanged', () => {
    expect(stripThinking('<think>a</think>\n <answer>b</answer> ')).toBe('<answer>b</answer> ');
    expect(stripThinking('x</think>y</think>  z')).toBe('z');
    expect(stripThinking('  no thinking  ')).toBe('  no thinking  ');
    expect(stripThinking('<think>unfinished')).toBe('<think>unfinished');
    expect(stripThinking('<think>all</think>')).toBe('');
  });
});

describe('ChatTemplate.load', () => {
  const tmp = () => mkdtempSync(join(tmpdir(), 'glm4v-tpl-'));
  const msgs: Message[] = [{ role: 'user', content: 'x' }];

  it('prefers chat_template.jinja, then tokenizer_config.json, then the builtin', async () => {
    const dir = tmp();
    expect((await ChatTemplate.load(dir)).origin).toBe('builtin');
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ chat_template: 'CFG{{ messages[0].content }}' }),
    );
    expect((await ChatTemplate.load(dir)).render(msgs)).toBe('CFGx');
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({
        chat_template: [
          { name: 'tool_use', template: 'T' },
          { name: 'default', template: 'D' },
        ],
      }),
    );
    expect((await ChatTemplate.load(dir)).render(msgs)).toBe('D');
    writeFileSync(join(dir, 'chat_template.jinja'), 'JINJA{{ messages | length }}\n');
    const t = await ChatTemplate.load(dir);
    expect(t.origin).toBe(join(dir, 'chat_template.jinja'));
    expect(t.render(msgs)).toBe('JINJA1'); // the file's final newline is dropped, as Jinja does
  });

  it('the builtin template written to chat_template.jinja loads and renders identically', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'chat_template.jinja'), DEFAULT_CHAT_TEMPLATE);
    expect((await ChatTemplate.load(dir)).render(MULTI_TURN)).toBe(ChatTemplate.builtin().render(MULTI_TURN));
  });

  it('broken templates and configs are ConfigErrors naming the file', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'tokenizer_config.json'), '{');
    await expect(ChatTemplate.load(dir)).rejects.toThrow(/tokenizer_config\.json: invalid JSON/);
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: 5 }));
    await expect(ChatTemplate.load(dir)).rejects.toThrow(ConfigError);
    writeFileSync(join(dir, 'chat_template.jinja'), '{% for %}');
    await expect(ChatTemplate.load(dir)).rejects.toThrow(/chat_template\.jinja: chat template does not parse/);
  });
});

describe('message validation', () => {
  const t = ChatTemplate.builtin();
  it('bad roles, parts and misplaced images are InputErrors naming the message', () => {
    expect(() => t.render([{ role: 'tool' as 'user', content: 'x' }])).toThrow(/messages\[0\]\.role must be/);
    expect(() => t.render([{ role: 'user', content: [{ type: 'audio' } as never] }])).toThrow(
      /messages\[0\]\.content\[0\]\.type must be/,
    );
    expect(() => t.render([{ role: 'user', content: [{ type: 'text', text: 3 as never }] }])).toThrow(InputError);
    expect(() => t.render([{ role: 'assistant', content: [{ type: 'image', image: IMG }] }])).toThrow(
      /images may only appear in user messages/,
    );
    expect(() => t.render([{ role: 'user', content: 5 as never }])).toThrow(/content must be a string or an array/);
  });
  it('a template that raises becomes an InputError', () => {
    const r = new ChatTemplate("{{ raise_exception('no system messages') }}", 'x');
    expect(() => r.render([{ role: 'user', content: 'a' }])).toThrow(
      /chat template \(x\) failed to render these messages: .*no system messages/,
    );
  });
});

/** expandPlaceholders over the plan of `images` or `videos` (merge size 2). */
function expand(text: string, images: Grid[], videos: { grid: Grid; timestamps: number[] }[]): string {
  return expandPlaceholders(
    text,
    planMedia(
      images,
      videos.map((v) => v.grid),
      2,
      'expandPlaceholders',
    ),
    videos.map((v) => v.timestamps),
  );
}

describe('expandPlaceholders (docs/model.md#placeholders, #video)', () => {
  it('each <|image|> becomes t·gh·gw/4 tokens, in order', () => {
    const text = `A${BI}B${BI}C`;
    const out = expand(
      text,
      [
        [1, 4, 6],
        [1, 2, 2],
      ],
      [],
    );
    expect(out).toBe(
      `A<|begin_of_image|>${'<|image|>'.repeat(6)}<|end_of_image|>B<|begin_of_image|><|image|><|end_of_image|>C`,
    );
  });
  it('a video becomes one image block per temporal patch followed by its integer timestamp', () => {
    const text = '<|begin_of_video|><|video|><|end_of_video|>Describe this video.';
    const out = expand(text, [], [{ grid: [3, 4, 4], timestamps: [0, 1.9, 2.5] }]);
    const f = `<|begin_of_image|>${'<|image|>'.repeat(4)}<|end_of_image|>`;
    expect(out).toBe(`<|begin_of_video|>${f}0${f}1${f}2<|end_of_video|>Describe this video.`);
    // short timestamp lists repeat the last, as the processor does
    expect(expand('<|video|>', [], [{ grid: [2, 2, 2], timestamps: [7] }])).toBe(
      '<|begin_of_image|><|image|><|end_of_image|>7'.repeat(2),
    );
  });
  it('counts must match; images and videos together are refused', () => {
    expect(() => expand(BI, [], [])).toThrow(/1 <\|image\|> placeholder\(s\) but 0 image\(s\)/);
    expect(() => expand('x', [[1, 2, 2]], [])).toThrow(InputError);
    expect(() => expand('<|video|>', [], [])).toThrow(/<\|video\|> placeholder/);
    expect(() => expand(`${BI}<|video|>`, [[1, 2, 2]], [{ grid: [2, 2, 2], timestamps: [0] }])).toThrow(
      /images or videos, not both/,
    );
    expect(() => expand(BI, [[1, 3, 2]], [])).toThrow(/divisible by 2/);
  });
  it('rendered, expanded and tokenised: ids start [gMASK] <sop> <|user|> \\n <boi> <|image|>… (tiny vocabulary)', () => {
    const { tokenizer, tokenizerConfig } = makeTinyTokenizer(512);
    const tok = Tokenizer.fromJSON(tokenizer, tokenizerConfig);
    const text = expand(ChatTemplate.builtin().render(CASES[0].messages), [[1, 4, 6]], []);
    const ids = tok.encode(text);
    expect(ids.slice(0, 11)).toEqual([291, 293, 296, 10, 299, 303, 303, 303, 303, 303, 303]);
    expect(ids[11]).toBe(300);
    expect(ids.slice(-2)).toEqual([297, 10]);
    expect(ids.filter((id) => id === 303).length).toBe(6);
  });
});
