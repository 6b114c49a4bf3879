import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '@glm4v/core';
import { parseModelConfig } from '../config.js';
import { ChatTemplate } from './chat-template.js';
import {
  bytesToUnicode,
  makeTinyTokenizer,
  tinySpecialIds,
  TINY_SPECIAL_TOKENS,
  writeTinyTokenizer,
} from './tiny-tokenizer.js';
import { TEXT_STREAM_MAX_PENDING, TextStream, Tokenizer } from './tokenizer.js';

const ROOT = new URL('../../../../', import.meta.url).pathname;
const { tokenizer: tjson, tokenizerConfig } = makeTinyTokenizer(512);
const tok = Tokenizer.fromJSON(structuredClone(tjson), structuredClone(tokenizerConfig));

const SAMPLES = [
  'What kind of dog is this?',
  '[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|image|><|end_of_image|>Describe it.<|assistant|>\n',
  '<think>The user asks about a dog.</think>\n<answer>A golden retriever.</answer>',
  '这是什么动物？这是一只狗。龘 is rare, so is 𝄞 and 😀.',
  '  leading and trailing spaces  \n\n\ttabs\r\nand CRLF ',
  'It\'s 2025; she\'ll say "hi" — x = [1, 2, 3] → done!',
  'mixed 中文 and English 文字 123456789',
];

describe('tiny byte-level BPE tokenizer', () => {
  it('has 512 ids, the special tokens at real id − 151552 + 512', () => {
    expect(tok.vocabSize).toBe(512);
    const want: Record<string, number> = {
      '<|endoftext|>': 289,
      '[gMASK]': 291,
      '<sop>': 293,
      '<|system|>': 295,
      '<|user|>': 296,
      '<|assistant|>': 297,
      '<|observation|>': 298,
      '<|begin_of_image|>': 299,
      '<|end_of_image|>': 300,
      '<|begin_of_video|>': 301,
      '<|end_of_video|>': 302,
      '<|image|>': 303,
      '<|video|>': 304,
      '</answer>': 308,
    };
    for (const [t, id] of Object.entries(want)) expect(tok.tokenId(t)).toBe(id);
    for (const t of TINY_SPECIAL_TOKENS) expect(tok.tokenId(t.content)).toBe(tinySpecialIds(512).get(t.content));
    expect(new Set(TINY_SPECIAL_TOKENS.map((t) => tok.tokenId(t.content))).size).toBe(TINY_SPECIAL_TOKENS.length);
    expect(tok.tokenId('not a token')).toBeUndefined();
  });

  it('agrees with the tiny conformance checkpoint config.json (token ids, EOS set)', () => {
    const file = `${ROOT}conformance/fixtures/tiny-glm4v-f32/config.json`;
    const cfg = parseModelConfig(JSON.parse(readFileSync(file, 'utf8')), file);
    const t = cfg.tokens;
    expect([t.imageStart, t.imageEnd, t.videoStart, t.videoEnd, t.image, t.video, t.pad]).toEqual(
      [
        '<|begin_of_image|>',
        '<|end_of_image|>',
        '<|begin_of_video|>',
        '<|end_of_video|>',
        '<|image|>',
        '<|video|>',
        '<|endoftext|>',
      ].map((s) => tok.tokenId(s)),
    );
    expect(t.eos.map((id) => tok.decode([id]))).toEqual(['<|endoftext|>', '<|user|>', '<|observation|>', '</answer>']);
  });

  it('is a real BPE: every free id is a learned merge, and merges shorten English and Chinese', () => {
    const model = tjson.model as { vocab: Record<string, number>; merges: unknown[] };
    expect(Object.keys(model.vocab).length).toBe(512 - TINY_SPECIAL_TOKENS.length);
    expect(model.merges.length).toBeGreaterThanOrEqual(512 - 256 - TINY_SPECIAL_TOKENS.length);
    const en = 'What kind of dog is this? Describe the image.';
    expect(tok.encode(en).length).toBeLessThan(Buffer.byteLength(en) / 2);
    const zh = '这是一只狗。请描述这张图片。';
    expect(tok.encode(zh).length).toBeLessThan(Buffer.byteLength(zh));
  });

  it('encode adds nothing and maps special tokens in the text to their ids; "\\n" after a role tag is one token', () => {
    const ids = tok.encode(
      '[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|image|><|end_of_image|>What kind of dog is this?<|assistant|>\n',
    );
    expect(ids.slice(0, 7)).toEqual([291, 293, 296, 10, 299, 303, 303]);
    expect(ids[7]).toBe(300);
    expect(ids.slice(-2)).toEqual([297, 10]);
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode('hi').includes(291)).toBe(false);
  });

  for (const s of SAMPLES) {
    it(`round trip: ${JSON.stringify(s).slice(0, 40)}`, () => {
      const ids = tok.encode(s);
      expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 512)).toBe(true);
      expect(tok.decode(ids)).toBe(s);
    });
  }

  it('skipSpecial drops role tags and placeholders but keeps <think>/<answer> tags', () => {
    const ids = tok.encode('<|user|>\nHi<|assistant|>\n<think>hmm</think><answer>yes</answer><|endoftext|>');
    expect(tok.decode(ids, { skipSpecial: true })).toBe('\nHi\n<think>hmm</think><answer>yes</answer>');
    expect(tok.isSpecial(296)).toBe(true);
    expect(tok.isSpecial(tok.tokenId('<think>')!)).toBe(false);
  });

  it('decode refuses ids outside the vocabulary', () => {
    expect(() => tok.decode([5, 512])).toThrow(InputError);
    expect(() => tok.decode([-1])).toThrow(/token id -1 at position 0 is not in the vocabulary \(0\.\.511\)/);
    expect(tok.decode([])).toBe('');
  });

  it('loads from a folder; a missing or malformed tokenizer.json is a ConfigError naming the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'glm4v-tok-'));
    await expect(Tokenizer.load(dir)).rejects.toThrow(ConfigError);
    await expect(Tokenizer.load(dir)).rejects.toThrow(`${join(dir, 'tokenizer.json')}: cannot read: file not found`);
    writeFileSync(join(dir, 'tokenizer.json'), '{ not json');
    await expect(Tokenizer.load(dir)).rejects.toThrow(/tokenizer\.json: invalid JSON/);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'Nonsense' } }));
    await expect(Tokenizer.load(dir)).rejects.toThrow(/tokenizer\.json: unsupported or malformed tokenizer/);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tjson));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
    const loaded = await Tokenizer.load(dir);
    expect(loaded.encode(SAMPLES[3])).toEqual(tok.encode(SAMPLES[3]));
  });

  it('writeTinyTokenizer: deterministic files that load back (tokenizer + template)', async () => {
    const a = mkdtempSync(join(tmpdir(), 'glm4v-tiny-'));
    const b = mkdtempSync(join(tmpdir(), 'glm4v-tiny-'));
    const files = await writeTinyTokenizer(a);
    await writeTinyTokenizer(b);
    for (const f of files) expect(readFileSync(f)).toEqual(readFileSync(join(b, basename(f))));
    const loaded = await Tokenizer.load(a);
    const text = (await ChatTemplate.load(a)).render([{ role: 'user', content: '你好' }]);
    expect(text).toBe('[gMASK]<sop><|user|>\n你好<|assistant|>\n');
    expect(loaded.decode(loaded.encode(text))).toBe(text);
    expect(loaded.encode(text)).toEqual(tok.encode(text));
  });

  it('rejects vocabularies too small for the special-token rule', () => {
    expect(() => makeTinyTokenizer(400)).toThrow(/vocabSize must be an integer ≥ 479/);
  });
});

/**
 * The tiny tokenizer plus one vocabulary entry per byte fragment of `text` cut at `cuts` (ids from 512 up, or the
 * existing id when the fragment is already a token), and the fragments' ids in order.
 */
function withFragments(text: string, cuts: number[]): { tok: Tokenizer; ids: number[] } {
  const { tokenizer, tokenizerConfig } = makeTinyTokenizer(512);
  const vocab = (tokenizer.model as { vocab: Record<string, number> }).vocab;
  const byteChar = bytesToUnicode();
  const bytes = new TextEncoder().encode(text);
  const bounds = [0, ...cuts, bytes.length];
  let next = 512;
  const ids = bounds.slice(1).map((end, i) => {
    const piece = Array.from(bytes.subarray(bounds[i], end), (b) => byteChar[b]).join('');
    return (vocab[piece] ??= next++);
  });
  return { tok: Tokenizer.fromJSON(tokenizer, tokenizerConfig), ids };
}

describe('TextStream', () => {
  it('holds back partial UTF-8 until the character is whole; pieces concatenate to the full text', () => {
    const text = '龘 and 𝄞: 这是一只狗。<think>ok</think>';
    const ids = tok.encode(text);
    const stream = new TextStream(tok);
    const pieces = ids.map((id) => stream.push(id));
    expect(pieces.join('') + stream.flush()).toBe(text);
    expect(pieces.some((p) => p.includes('\uFFFD'))).toBe(false);
    // 龘 (3 bytes) and 𝄞 (4 bytes) are not in the merges: their first byte tokens yield nothing.
    expect(pieces[0]).toBe('');
    expect(pieces[1]).toBe('');
    expect(pieces[2]).toBe('龘');
  });

  it('flush returns what is held back; bytes that never form a character are emitted after the cap', () => {
    const stream = new TextStream(tok);
    const e4 = tok.tokenId('\u00e4')!; // GPT-2 char for byte 0xE4, a 3-byte lead
    expect(stream.push(e4)).toBe('');
    expect(stream.flush()).toBe('\uFFFD');
    expect(stream.flush()).toBe('');
    for (let i = 1; i < TEXT_STREAM_MAX_PENDING; i++) expect(stream.push(e4)).toBe('');
    expect(stream.push(e4)).toBe('\uFFFD'.repeat(TEXT_STREAM_MAX_PENDING));
    expect(stream.push(tok.tokenId('a')!)).toBe('a'); // the cap reset the stream
    expect(stream.flush()).toBe('');
  });

  it('a byte that is not UTF-8 is held until clean text follows, then emitted with it, once', () => {
    const stream = new TextStream(tok);
    const x80 = tok.tokenId('\u0122')!; // GPT-2 char for byte 0x80, a lone continuation byte
    expect([tok.tokenId('x')!, x80, tok.tokenId('a')!].map((id) => stream.push(id))).toEqual(['x', '', '\uFFFDa']);
    expect(stream.flush()).toBe('');
  });

  it('tokens that each end inside the next character stream as they complete (7 chained tokens)', () => {
    // Byte fragments of '中文字符串测试' (7 characters × 3 bytes) cut at 2, 4, 7, 10, 13, 16, 19: every fragment but
    // the last ends partway through a character, so 7 tokens in a row decode to text ending in U+FFFD.
    const text = '中文字符串测试';
    const { tok: chained, ids } = withFragments(text, [2, 4, 7, 10, 13, 16, 19]);
    const all = [...chained.encode('A: '), ...ids, ...chained.encode('!')];
    const stream = new TextStream(chained);
    const pieces = all.map((id) => stream.push(id));
    const tail = stream.flush();
    expect(pieces.join('') + tail).toBe(chained.decode(all));
    expect(chained.decode(all)).toBe(`A: ${text}!`);
    expect(pieces.some((p) => p.includes('\uFFFD'))).toBe(false);
    // Each fragment yields exactly the character it completes: streamed as it goes, nothing repeated.
    const n = chained.encode('A: ').length;
    expect(pieces.slice(n, n + ids.length)).toEqual(['', ...text]);
    expect(tail).toBe('');
  });

  it('skipSpecial option drops special tokens from the stream', () => {
    const stream = new TextStream(tok, { skipSpecial: true });
    expect(
      tok
        .encode('<|user|>A')
        .map((id) => stream.push(id))
        .join(''),
    ).toBe('A');
  });
});
