// A small, real byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json) for tests and the tiny demo
// checkpoint. Same structure as GLM-4's: GLM's pre-tokenizer regex split then ByteLevel (GPT-2 byte↔unicode
// map), BPE with merges, ByteLevel decoder. Ids 0–255 are the 256 bytes (id = byte value), so every string —
// Chinese included — round-trips. The model's special tokens sit at the ids the tiny checkpoints use:
// real id − 151552 + vocabSize (conformance/fixtures/README.md; e.g. <|image|> 303 for vocab 512). <think>,
// </think>, <answer>, <|begin_of_box|>, <|end_of_box|> take ids that rule leaves free (real 151345–151347,
// 151349–151350 are not model-defined); `</answer>` takes real 151348's slot, the fourth EOS (docs/model.md#special-tokens).
// Merges are learned deterministically from the small corpus below; the rest of the ids are merges.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '@glm4v/core';
import { DEFAULT_CHAT_TEMPLATE } from './default-template.js';

const REAL_VOCAB = 151552;

/** GLM-4's pre-tokenizer split pattern (Oniguruma syntax, as in the hub tokenizer.json). */
export const GLM_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** The same pattern in JavaScript syntax (no inline (?i:) group), for training. */
const JS_SPLIT =
  /'(?:[sStTmMdD]|[rR][eE]|[vV][eE]|[lL][lL])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

export interface TinySpecialToken {
  content: string;
  /** Id in the real GLM-4.1V vocabulary, when the token has one there; else an offset into the free slots. */
  realId: number;
  /** Special tokens are dropped by decode(skipSpecial); <think>/<answer> tags are not special (docs/model.md#special-tokens). */
  special: boolean;
}

export const TINY_SPECIAL_TOKENS: readonly TinySpecialToken[] = [
  ['<|endoftext|>', 151329],
  ['[MASK]', 151330],
  ['[gMASK]', 151331],
  ['[sMASK]', 151332],
  ['<sop>', 151333],
  ['<eop>', 151334],
  ['<|system|>', 151335],
  ['<|user|>', 151336],
  ['<|assistant|>', 151337],
  ['<|observation|>', 151338],
  ['<|begin_of_image|>', 151339],
  ['<|end_of_image|>', 151340],
  ['<|begin_of_video|>', 151341],
  ['<|end_of_video|>', 151342],
  ['<|image|>', 151343],
  ['<|video|>', 151344],
]
  .map(([content, realId]) => ({ content: content as string, realId: realId as number, special: true }))
  .concat([
    { content: '<think>', realId: 151345, special: false },
    { content: '</think>', realId: 151346, special: false },
    { content: '<answer>', realId: 151347, special: false },
    { content: '</answer>', realId: 151348, special: false },
    { content: '<|begin_of_box|>', realId: 151349, special: false },
    { content: '<|end_of_box|>', realId: 151350, special: false },
  ]);

/** Id of each special token in a tiny vocabulary of `vocabSize`. */
export function tinySpecialIds(vocabSize: number): Map<string, number> {
  return new Map(TINY_SPECIAL_TOKENS.map((t) => [t.content, t.realId - REAL_VOCAB + vocabSize]));
}

/** Training text: English and Chinese about pictures, plus the shapes of prompts and answers. */
const CORPUS = `What kind of dog is this? This is a golden retriever sitting on the grass in the park.
Describe this image. The image shows a cat sleeping on a red sofa next to a window.
What is in the picture? There are two people walking along the beach at sunset.
How many apples are on the table? I can count three apples and one orange.
What color is the car? The car is blue, and it is parked in front of a white house.
Please describe the video. A man rides a bicycle down the street while it is raining.
Let me think about the question step by step. First, look at the image carefully.
The answer is 42. The total is 1,234 and the year was 2025. Coordinates: [120, 340, 560, 780].
Is there a person in the image? Yes, there is a woman holding an umbrella.
Where was this photo taken? It looks like a mountain village in the morning.
What is written on the sign? The sign says "Welcome to the city library".
Read the text in the image and answer the question. The price is $19.99 per month.
这是什么动物？这是一只狗。图片中有一只猫在沙发上睡觉。
请描述这张图片。图片里有两个人在海边散步，天空是橙色的。
桌子上有几个苹果？我数到了三个苹果和一个橘子。
这辆车是什么颜色的？这辆车是蓝色的，停在一栋白色房子前面。
让我一步一步地思考这个问题。首先，仔细观察图片。答案是四十二。
你好！我是一个视觉语言模型，可以理解图片和视频，并回答你的问题。
The weather today is sunny with a few clouds; the temperature is about 25 degrees.
A small boat is floating on the lake, and the trees on the shore are green.
In the kitchen there is a bowl of soup, a plate of bread and a cup of coffee.
The chart shows that sales increased from 2019 to 2023, then decreased slightly.
Answer with a single word or phrase. Answer: yes. Answer: no. Answer: two.
The children are playing football in the yard while their parents watch.
`;

/** GPT-2's byte → printable character map used by ByteLevel pre-tokenizers and decoders. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const map = new Array<string>(256);
  for (const b of bs) map[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (map[b] === undefined) map[b] = String.fromCharCode(256 + n++);
  return map;
}

/** Learn up to `count` merges from `corpus` (most frequent pair first; ties by the pair's text). */
function learnMerges(corpus: string, count: number, byteChar: string[]): [string, string][] {
  const freq = new Map<string, number>();
  for (const m of corpus.matchAll(JS_SPLIT)) freq.set(m[0], (freq.get(m[0]) ?? 0) + 1);
  const enc = new TextEncoder();
  const words = [...freq].map(([w, f]) => ({ syms: Array.from(enc.encode(w), (b) => byteChar[b]), f }));
  const merges: [string, string][] = [];
  while (merges.length < count) {
    const pairs = new Map<string, number>();
    for (const { syms, f } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = `${syms[i]}\u0000${syms[i + 1]}`;
        pairs.set(k, (pairs.get(k) ?? 0) + f);
      }
    }
    let best: string | undefined;
    let bestN = 0;
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && k < best!)) [best, bestN] = [k, n];
    if (best === undefined) break; // every word is a single symbol
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w.syms[i]);
      }
      w.syms = out;
    }
  }
  return merges;
}

/**
 * tokenizer.json and tokenizer_config.json contents of a tiny GLM-style tokenizer with `vocabSize` ids
 * (default 512, the conformance checkpoints' vocabulary). With `fill`, every id the corpus's merges leave free
 * decodes to ' t<id>' (the merges never produce them): a tokenizer for random weights at the real vocabulary.
 */
export function makeTinyTokenizer(
  vocabSize = 512,
  opts: { fill?: boolean } = {},
): { tokenizer: Record<string, unknown>; tokenizerConfig: Record<string, unknown> } {
  const lowest = 151329 - REAL_VOCAB; // <|endoftext|>, the lowest special id, relative to the vocabulary's end
  if (!Number.isInteger(vocabSize) || vocabSize + lowest < 256) {
    throw new ConfigError(
      `makeTinyTokenizer: vocabSize must be an integer ≥ ${256 - lowest} (256 byte tokens below the special tokens), got ${vocabSize}`,
    );
  }
  const specials = tinySpecialIds(vocabSize);
  const byteChar = bytesToUnicode();
  const vocab: Record<string, number> = {};
  byteChar.forEach((c, b) => (vocab[c] = b));
  const taken = new Set([...specials.values()]);
  const free: number[] = [];
  for (let id = 256; id < vocabSize; id++) if (!taken.has(id)) free.push(id);
  const merges = learnMerges(CORPUS, free.length, byteChar);
  let next = 0;
  for (const [a, b] of merges) if (vocab[a + b] === undefined) vocab[a + b] = free[next++];
  if (opts.fill)
    for (const id of free.slice(next)) vocab[Array.from(Buffer.from(` t${id}`), (b) => byteChar[b]).join('')] = id;
  const added = TINY_SPECIAL_TOKENS.map((t) => ({
    id: specials.get(t.content)!,
    content: t.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: t.special,
  }));
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: GLM_SPLIT_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const tokenizerConfig = {
    added_tokens_decoder: Object.fromEntries(added.map(({ id, ...rest }) => [String(id), rest])),
    clean_up_tokenization_spaces: false,
    do_lower_case: false,
    eos_token: '<|endoftext|>',
    pad_token: '<|endoftext|>',
    model_max_length: 4096,
    padding_side: 'left',
    remove_space: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  return { tokenizer, tokenizerConfig };
}

/**
 * Write tokenizer.json, tokenizer_config.json and chat_template.jinja (our documented-format template) of a tiny
 * tokenizer into `dir` (created if needed). Deterministic: the same vocabSize gives the same bytes.
 */
export async function writeTinyTokenizer(
  dir: string,
  vocabSize = 512,
  opts: { fill?: boolean } = {},
): Promise<string[]> {
  const { tokenizer, tokenizerConfig } = makeTinyTokenizer(vocabSize, opts);
  await mkdir(dir, { recursive: true });
  const files: [string, string][] = [
    ['tokenizer.json', `${JSON.stringify(tokenizer, null, 1)}\n`],
    ['tokenizer_config.json', `${JSON.stringify(tokenizerConfig, null, 2)}\n`],
    ['chat_template.jinja', DEFAULT_CHAT_TEMPLATE],
  ];
  for (const [name, text] of files) await writeFile(join(dir, name), text, 'utf8');
  return files.map(([name]) => join(dir, name));
}
