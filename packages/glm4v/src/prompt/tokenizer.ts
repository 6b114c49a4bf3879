// The checkpoint's tokenizer (tokenizer.json, with tokenizer_config.json when present) through
// @huggingface/tokenizers. encode() adds no special tokens: the chat template already writes [gMASK]<sop>
// (docs/model.md#chat-template). Special tokens written in the text map to their ids.

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ConfigError, InputError } from '@glm4v/core';
import { type ModelFolder, asFolder, readJsonFile } from '../files/folder.js';

/** A JSON object read from `name` (undefined when the file is absent and not `required`). */
async function readJsonObject(
  folder: ModelFolder,
  name: string,
  required: boolean,
): Promise<Record<string, unknown> | undefined> {
  const json = await readJsonFile(folder, name, required);
  if (json === undefined) return undefined;
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ConfigError(`${folder.path(name)}: expected a JSON object`);
  return json as Record<string, unknown>;
}

export class Tokenizer {
  /** One more than the largest id (model vocabulary and added tokens). */
  readonly vocabSize: number;
  private readonly tok: HfTokenizer;
  private readonly special: Set<number>;

  private constructor(tok: HfTokenizer) {
    this.tok = tok;
    const vocab = tok.get_vocab(true);
    let max = -1;
    for (const id of vocab.values()) if (id > max) max = id;
    this.vocabSize = max + 1;
    this.special = new Set([...tok.get_added_tokens_decoder()].filter(([, t]) => t.special).map(([id]) => id));
  }

  /** `dir`/tokenizer.json (required) and `dir`/tokenizer_config.json (optional); `dir` a path, URL or ModelFolder. */
  static async load(dir: string | ModelFolder): Promise<Tokenizer> {
    const folder = asFolder(dir);
    const json = (await readJsonObject(folder, 'tokenizer.json', true))!;
    const config = (await readJsonObject(folder, 'tokenizer_config.json', false)) ?? {};
    return Tokenizer.fromJSON(json, config, folder.path('tokenizer.json'));
  }

  /** From parsed tokenizer.json / tokenizer_config.json contents. */
  static fromJSON(
    json: Record<string, unknown>,
    config: Record<string, unknown> = {},
    file = 'tokenizer.json',
  ): Tokenizer {
    if (typeof json.model !== 'object' || json.model === null) throw new ConfigError(`${file}: no 'model' section`);
    if (!Array.isArray(json.added_tokens)) json = { ...json, added_tokens: [] };
    try {
      return new Tokenizer(new HfTokenizer(json, config));
    } catch (e) {
      throw new ConfigError(`${file}: unsupported or malformed tokenizer: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Token ids of `text`, with no special tokens added; special tokens written in the text become their ids. */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new InputError(`Tokenizer.encode: expected a string, got ${typeof text}`);
    if (text.length === 0) return [];
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`; `skipSpecial` drops tokens flagged special (role tags, image placeholders, EOS). */
  decode(ids: readonly number[], opts: { skipSpecial?: boolean } = {}): string {
    if (ids.length === 0) return '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.tok.id_to_token(id) === undefined) {
        throw new InputError(
          `Tokenizer.decode: token id ${id} at position ${i} is not in the vocabulary (0..${this.vocabSize - 1})`,
        );
      }
    }
    return this.tok.decode([...ids], {
      skip_special_tokens: opts.skipSpecial ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  /** Id of a token string (an added token such as '<|image|>' or a vocabulary entry), or undefined. */
  tokenId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** Whether `id` is flagged special in the tokenizer. */
  isSpecial(id: number): boolean {
    return this.special.has(id);
  }
}

/** Tokens held back at most while their text still ends in U+FFFD (pathological input only: a character is ≤ 4 bytes). */
export const TEXT_STREAM_MAX_PENDING = 64;

/**
 * Streaming detokeniser: push(id) returns the text completed by that token. Tokens whose bytes end inside a
 * UTF-8 sequence (a Chinese character split across tokens) are held back; each push decodes everything held and
 * returns what is new before the trailing run of U+FFFD, so a chain of tokens that each end partway through the
 * next character streams as it goes and never shows U+FFFD for a character that completes later. The held tokens
 * are dropped at a clean boundary (text not ending in U+FFFD), or after TEXT_STREAM_MAX_PENDING tokens, when the
 * U+FFFD is emitted as is (the bytes are not UTF-8).
 */
export class TextStream {
  private pending: number[] = [];
  /** Characters of decode(pending) already returned. */
  private emitted = 0;

  constructor(
    private readonly tok: Tokenizer,
    private readonly opts: { skipSpecial?: boolean } = {},
  ) {}

  push(id: number): string {
    this.pending.push(id);
    const text = this.tok.decode(this.pending, this.opts);
    let end = text.length;
    while (end > 0 && text.charCodeAt(end - 1) === 0xfffd) end--;
    if (end === text.length || this.pending.length >= TEXT_STREAM_MAX_PENDING)
      return this.take(text, text.length, true);
    return this.take(text, end, false);
  }

  /** Whatever is held back (possibly ending in U+FFFD), and reset. */
  flush(): string {
    if (this.pending.length === 0) return '';
    const text = this.tok.decode(this.pending, this.opts);
    return this.take(text, text.length, true);
  }

  /** text[emitted, end), and forget the held tokens when `reset`. */
  private take(text: string, end: number, reset: boolean): string {
    const out = end > this.emitted ? text.slice(this.emitted, end) : '';
    if (reset) {
      this.pending = [];
      this.emitted = 0;
    } else {
      this.emitted = Math.max(this.emitted, end);
    }
    return out;
  }
}
