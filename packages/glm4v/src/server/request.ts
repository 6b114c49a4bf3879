// The body of POST /v1/chat/completions, checked field by field and turned into the runtime's messages and options.
// Every problem is a 400 naming the field (`param`), before the request takes a place in the queue. Fields that
// would change the answer but are not supported (n > 1, tools, logprobs, penalties other than repetition) are
// refused rather than ignored; fields that do not (user, metadata, store, ...) are ignored.

import { checkOptions, type GenerateOptions } from '../generate/options.js';
import type { ContentPart, Message } from '../prompt/chat-template.js';
import { invalid } from './api-errors.js';
import { type MediaPolicy, imagePart, videoPart } from './media.js';

export interface ChatRequest {
  messages: Message[];
  options: GenerateOptions;
  stream: boolean;
  includeUsage: boolean;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function number(body: Json, key: string, ok: (v: number) => boolean, what: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !ok(v)) throw invalid(`'${key}' must be ${what}; got ${JSON.stringify(v)}`, key);
  return v;
}

function boolean(body: Json, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(`'${key}' must be a boolean; got ${JSON.stringify(v)}`, key);
  return v;
}

/** Refuses fields that would change the answer in ways this server does not support. */
function refuseUnsupported(body: Json): void {
  const refuse = (key: string, why: string) => {
    throw invalid(`'${key}' is not supported by this server: ${why}`, key, 'unsupported_parameter');
  };
  if (body.n !== undefined && body.n !== null && body.n !== 1)
    refuse('n', 'one choice per request (send several requests; they decode together)');
  if (body.logprobs === true) refuse('logprobs', 'log probabilities are not returned');
  if (body.top_logprobs !== undefined && body.top_logprobs !== null)
    refuse('top_logprobs', 'log probabilities are not returned');
  for (const key of ['tools', 'functions'])
    if (Array.isArray(body[key]) && (body[key] as unknown[]).length > 0) refuse(key, 'no tool calling');
  for (const key of ['tool_choice', 'function_call'])
    if (body[key] !== undefined && body[key] !== null && body[key] !== 'none') refuse(key, 'no tool calling');
  for (const key of ['frequency_penalty', 'presence_penalty'])
    if (body[key] !== undefined && body[key] !== null && body[key] !== 0) refuse(key, "use 'repetition_penalty'");
  if (isObject(body.logit_bias) && Object.keys(body.logit_bias).length > 0) refuse('logit_bias', 'no logit bias');
  const format = body.response_format;
  if (format !== undefined && format !== null && !(isObject(format) && format.type === 'text'))
    refuse('response_format', 'text only');
  if (body.audio !== undefined && body.audio !== null) refuse('audio', 'no audio output');
}

function stops(body: Json): string[] | undefined {
  const v = body.stop;
  if (v === undefined || v === null) return undefined;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 16 || list.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw invalid(
      `'stop' must be a non-empty string or an array of up to 16 non-empty strings; got ${JSON.stringify(v)}`,
      'stop',
    );
  }
  return list as string[];
}

/** The sampling and length fields as GenerateOptions (checked again by checkOptions, named by their API field). */
function options(body: Json): GenerateOptions {
  const int = (v: number) => Number.isInteger(v);
  const maxTokens =
    number(body, 'max_completion_tokens', (v) => int(v) && v >= 1, 'an integer ≥ 1') ??
    number(body, 'max_tokens', (v) => int(v) && v >= 1, 'an integer ≥ 1');
  const topK = number(body, 'top_k', (v) => int(v) && v >= -1, 'an integer ≥ -1 (-1 or 0: off)');
  const skip = boolean(body, 'skip_special_tokens');
  const o: GenerateOptions = {
    maxNewTokens: maxTokens,
    temperature: number(body, 'temperature', (v) => v >= 0 && v <= 2, 'a number from 0 to 2'),
    topP: number(body, 'top_p', (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    topK: topK === -1 ? 0 : topK,
    repetitionPenalty: number(body, 'repetition_penalty', (v) => Number.isFinite(v) && v > 0, 'a number > 0'),
    seed: number(body, 'seed', (v) => int(v) && v >= 0 && v < 2 ** 32, 'an integer in [0, 2^32)'),
    stop: stops(body),
    ignoreEos: boolean(body, 'ignore_eos'),
    showSpecial: skip === undefined ? undefined : !skip,
  };
  const field: Record<string, string> = {
    maxNewTokens: 'max_tokens',
    topK: 'top_k',
    topP: 'top_p',
    repetitionPenalty: 'repetition_penalty',
  };
  try {
    checkOptions(o, (k) => `'${field[k] ?? k}'`);
  } catch (e) {
    throw invalid((e as Error).message, null);
  }
  // the fields not given are left out, so the server's defaults apply to them
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

async function content(v: unknown, at: string, media: MediaPolicy): Promise<string | ContentPart[]> {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (!Array.isArray(v)) throw invalid(`${at} must be a string or an array of content parts`, at);
  const parts: ContentPart[] = [];
  for (const [j, p] of v.entries()) {
    const pat = `${at}[${j}]`;
    if (!isObject(p) || typeof p.type !== 'string') throw invalid(`${pat} must be an object with a 'type'`, pat);
    if (p.type === 'text') {
      if (typeof p.text !== 'string') throw invalid(`${pat}.text must be a string`, `${pat}.text`);
      parts.push({ type: 'text', text: p.text });
    } else if (p.type === 'image_url') parts.push(await imagePart(p.image_url, `${pat}.image_url`, media));
    else if (p.type === 'video_url') parts.push(await videoPart(p.video_url, `${pat}.video_url`, media));
    else throw invalid(`${pat}.type '${p.type}' is not supported (text, image_url, video_url)`, `${pat}.type`);
  }
  return parts;
}

async function messages(v: unknown, media: MediaPolicy): Promise<Message[]> {
  if (!Array.isArray(v) || v.length === 0)
    throw invalid(
      "'messages' must be a non-empty array",
      'messages',
      v === undefined ? 'missing_required_parameter' : 'invalid_value',
    );
  const out: Message[] = [];
  for (const [i, m] of v.entries()) {
    const at = `messages[${i}]`;
    if (!isObject(m)) throw invalid(`${at} must be an object`, at);
    // 'developer' is OpenAI's newer name for the system role
    const role = m.role === 'developer' ? 'system' : m.role;
    if (role !== 'system' && role !== 'user' && role !== 'assistant')
      throw invalid(
        `${at}.role must be system, developer, user or assistant; got ${JSON.stringify(m.role)}`,
        `${at}.role`,
      );
    out.push({ role, content: await content(m.content, `${at}.content`, media) });
  }
  return out;
}

/** The request, checked; media decoded and checked against the policy. */
export async function parseChatRequest(body: unknown, media: MediaPolicy): Promise<ChatRequest> {
  if (!isObject(body)) throw invalid('the request body must be a JSON object');
  refuseUnsupported(body);
  const stream = boolean(body, 'stream') ?? false;
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!stream) throw invalid("'stream_options' is only allowed with 'stream': true", 'stream_options');
    if (!isObject(so)) throw invalid("'stream_options' must be an object", 'stream_options');
  }
  const includeUsage = isObject(so) ? (boolean(so, 'include_usage') ?? false) : false;
  const opts = options(body);
  return { messages: await messages(body.messages, media), options: opts, stream, includeUsage };
}
