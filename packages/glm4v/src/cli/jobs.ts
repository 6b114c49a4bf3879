// Batch jobs: one JSON object per line of a jobs file, turned into a JobSpec (a plain JSON object, so it can wait
// in a queue), run through the public API, and answered by one JobResult line. Used by `glm4v-run batch` (here and
// on a queue) and `glm4v-run worker`.
//
//   {"id": "a1", "prompt": "Describe it.", "images": ["cat.jpg"], "max_new_tokens": 256}
//   {"id": "a2", "messages": [{"role": "user", "content": [{"type": "image", "image": {"path": "doc.png"}}, …]}]}
//
// Relative media paths are resolved against the jobs file's folder; `http(s)://` images are fetched by whoever runs
// the job. A line that cannot be a job still becomes a JobSpec, carrying its error, so it is answered like any
// other failed job and a run's results always account for every line.

import { isAbsolute, resolve } from 'node:path';
import {
  ContextOverflowError,
  DeviceError,
  DeviceLostError,
  Glm4vError,
  InputError,
  LimitError,
  OutOfMemoryError,
  ShaderCompileError,
} from '@glm4v/core';
import { basename, dirname } from 'node:path';
import { readTextFile } from '../files/folder.js';
import { openFolder } from '../files/node.js';
import type { FinishReason, GenerateOptions, Glm4v } from '../glm4v.js';
import type { Batcher } from '../generate/batcher.js';
import { collect } from '../generate/events.js';
import { resolveOptions } from '../generate/options.js';
import type { ContentPart, Message } from '../prompt/chat-template.js';
import { JOB_OPTION_KEYS, jobOptionKey, jobOptions } from './generation-flags.js';

/** An image part given by URL in a job line: fetched when the job runs. */
type UrlImagePart = { type: 'image'; image: { url: string } };
export type JobMessage = Omit<Message, 'content'> & { content: string | (ContentPart | UrlImagePart)[] };

export interface JobSpec {
  id: string | number;
  /** The line of the jobs file it came from (1-based). */
  line: number;
  messages: JobMessage[];
  options: GenerateOptions;
  /** Set when the line is not a valid job: running it fails with this message. */
  error?: string;
}

export interface JobResult {
  id: string | number;
  answer: string | null;
  thinking: string | null;
  finish_reason: FinishReason | 'error';
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  seed?: number;
  error?: { code: string; message: string };
}

const PROMPT_KEYS = ['prompt', 'images', 'video', 'system'];
const KNOWN = new Set(['id', 'messages', ...PROMPT_KEYS, ...JOB_OPTION_KEYS]);

/** The key a job is known by in a results file and a queue (ids 7 and "7" are the same job). */
export const jobKey = (id: string | number): string => String(id);

/** Every job of a jobs file's text; `defaults` (generation options) apply where a line sets none. */
export function parseJobs(text: string, file: string, defaults: GenerateOptions = {}): JobSpec[] {
  const base = resolve(file, '..');
  const firstLine = new Map<string, number>();
  const specs: JobSpec[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split('\n')
    .forEach((raw, i) => {
      if (raw.trim() === '') return;
      const spec = parseJobLine(raw, i + 1, base, defaults);
      if (spec.error) spec.error = `${file}:${spec.line}: ${spec.error}`;
      const seen = firstLine.get(jobKey(spec.id));
      if (seen !== undefined)
        Object.assign(spec, {
          id: `line:${spec.line}`,
          error: `${file}:${spec.line}: duplicate id ${JSON.stringify(spec.id)} (first on line ${seen})`,
        });
      firstLine.set(jobKey(spec.id), spec.line);
      specs.push(spec);
    });
  return specs;
}

/** The jobs of a file (see parseJobs). */
export async function readJobs(file: string, defaults: GenerateOptions = {}): Promise<JobSpec[]> {
  return parseJobs((await readTextFile(openFolder(dirname(file)), basename(file), true))!, file, defaults);
}

function parseJobLine(raw: string, line: number, base: string, defaults: GenerateOptions): JobSpec {
  const fail = (id: unknown, error: string): JobSpec => ({
    id: validId(id) ? id : `line:${line}`,
    line,
    messages: [],
    options: {},
    error,
  });
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(raw);
  } catch (e) {
    return fail(undefined, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return fail(undefined, 'a job must be a JSON object');
  if (!validId(o.id))
    return fail(undefined, `"id" must be a non-empty string or an integer, got ${JSON.stringify(o.id)}`);
  const unknown = Object.keys(o).filter((k) => !KNOWN.has(k));
  if (unknown.length) return fail(o.id, `unknown key ${JSON.stringify(unknown[0])} (known: ${[...KNOWN].join(', ')})`);
  try {
    const messages = o.messages !== undefined ? jobMessages(o, base) : promptMessages(o, base);
    return { id: o.id, line, messages, options: { ...defaults, ...jobOptions(o) } };
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    return fail(o.id, e.message);
  }
}

function validId(id: unknown): id is string | number {
  return (typeof id === 'string' && id !== '') || Number.isSafeInteger(id);
}

/** A media reference: a URL as it is, a path made absolute against the jobs file's folder. */
const media = (ref: string, base: string) => (/^https?:\/\//i.test(ref) || isAbsolute(ref) ? ref : resolve(base, ref));

/** `{"prompt", "images"?, "video"?, "system"?}` → one user message (and a system message). */
function promptMessages(o: Record<string, unknown>, base: string): JobMessage[] {
  const { prompt, images = [], video, system } = o;
  if (typeof prompt !== 'string') throw new InputError('a job needs "messages" or a "prompt" string');
  if (!Array.isArray(images) || images.some((p) => typeof p !== 'string' || p === ''))
    throw new InputError('"images" must be an array of paths or URLs');
  if (video !== undefined && (typeof video !== 'string' || video === ''))
    throw new InputError('"video" must be a path');
  if (system !== undefined && typeof system !== 'string') throw new InputError('"system" must be a string');
  const content: JobMessage['content'] = images.map((ref: string) => imagePart(media(ref, base)));
  if (typeof video === 'string') content.push({ type: 'video', video: media(video, base) });
  content.push({ type: 'text', text: prompt });
  return [...(system !== undefined ? [{ role: 'system' as const, content: system }] : []), { role: 'user', content }];
}

const imagePart = (ref: string): ContentPart | UrlImagePart =>
  /^https?:\/\//i.test(ref) ? { type: 'image', image: { url: ref } } : { type: 'image', image: { path: ref } };

/** `{"messages": [...]}` in the library's shape; media paths resolved, the rest checked when the job runs. */
function jobMessages(o: Record<string, unknown>, base: string): JobMessage[] {
  const bad = PROMPT_KEYS.find((k) => o[k] !== undefined);
  if (bad)
    throw new InputError(
      `give either "messages" or "prompt" (with "images", "video", "system"), not both: found "${bad}"`,
    );
  if (!Array.isArray(o.messages) || o.messages.length === 0)
    throw new InputError('"messages" must be a non-empty array');
  return o.messages.map((m: JobMessage, i) => {
    if (!Array.isArray(m?.content)) return m;
    const content = m.content.map((p, j) => {
      const at = `messages[${i}].content[${j}]`;
      if (p?.type === 'video') {
        if (typeof p.video !== 'string' || p.video === '') throw new InputError(`${at}.video must be a path`);
        return { ...p, video: media(p.video, base) };
      }
      if (p?.type !== 'image') return p;
      const ref =
        (p.image as { path?: unknown; url?: unknown } | undefined)?.path ??
        (p.image as { url?: unknown } | undefined)?.url;
      if (typeof ref !== 'string' || ref === '') throw new InputError(`${at}.image must be {"path": …} or {"url": …}`);
      return imagePart(media(ref, base));
    });
    return { ...m, content };
  });
}

/** The job's messages as the library takes them: images given by URL fetched into bytes. */
async function requestMessages(spec: JobSpec): Promise<Message[]> {
  const out: Message[] = [];
  for (const m of spec.messages) {
    if (!Array.isArray(m.content)) {
      out.push(m as Message);
      continue;
    }
    const content: ContentPart[] = [];
    for (const p of m.content)
      content.push(
        p.type === 'image' && 'url' in p.image
          ? { type: 'image', image: { data: await fetchImage(p.image.url) } }
          : (p as ContentPart),
      );
    out.push({ ...m, content });
  }
  return out;
}

/** An image URL's bytes. A 4xx answer is the job's fault (InputError); other failures may pass (plain Error). */
async function fetchImage(url: string): Promise<Uint8Array> {
  const res = await fetch(url, { signal: AbortSignal.timeout(60_000) });
  if (res.status >= 400 && res.status < 500) throw new InputError(`${url}: HTTP ${res.status} ${res.statusText}`);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * Runs jobs on one loaded model, up to `slots` of them decoding together (a Batcher: continuous batching, one KV
 * slot of `contextLength` tokens each). The batch loop and the worker keep that many in flight; calls beyond the
 * slots wait for one. close() frees the KV slots.
 */
export class JobRunner {
  readonly slots: number;

  private constructor(
    private readonly model: Glm4v,
    private readonly batcher: Batcher,
  ) {
    this.slots = batcher.maxBatch;
  }

  /** `contextLength`: KV-cache tokens per job, prompt and reply (cli/open.ts contextFlag, or batch's jobsContext). */
  static async create(model: Glm4v, opts: { maxBatch: number; contextLength: number }): Promise<JobRunner> {
    return new JobRunner(model, await model.batcher(opts));
  }

  /** The job's result; a failure throws (see `errorKind`), it is never turned into a result here. */
  async run(spec: JobSpec): Promise<JobResult> {
    if (spec.error) throw new InputError(spec.error);
    const context = spec.options.contextLength;
    if (context !== undefined && context > this.batcher.contextLength) {
      throw new InputError(
        `"context": ${context} is more than the ${this.batcher.contextLength} tokens each job's KV slot holds (--context)`,
      );
    }
    // checked before any GPU work (media decoded and measured, the context), the messages naming the job keys
    const { processor } = this.model;
    const prompt = await processor.prepare({ messages: await requestMessages(spec) }, spec.options, {
      nameOf: jobOptionKey,
    });
    // the reply stays within the job's own context, as it would alone, though its KV slot may be larger
    const room = processor.contextFor(prompt.ids.length, spec.options) - prompt.ids.length;
    const options = {
      ...spec.options,
      maxNewTokens: Math.min(room, resolveOptions(processor.generation, spec.options).maxNewTokens),
    };
    const r = await collect(this.batcher.submit(prompt, options));
    const usage = {
      prompt_tokens: r.stats.promptTokens,
      completion_tokens: r.stats.generatedTokens,
      total_tokens: r.stats.promptTokens + r.stats.generatedTokens,
    };
    return {
      id: spec.id,
      answer: r.answer,
      thinking: r.thinking,
      finish_reason: r.finishReason,
      usage,
      seed: r.stats.seed,
    };
  }

  /** Jobs decoded together per decode step so far, on average (0 before the first step). */
  get meanBatch(): number {
    const s = this.batcher.stats;
    return s.decodeSteps ? s.decodeRows / s.decodeSteps : 0;
  }

  close(): Promise<void> {
    return this.batcher.close();
  }
}

/**
 * What a failed job means. 'job': the job itself is bad (input, file, context, size): record it, go on, never
 * retry. 'fatal': this machine's GPU failed: stop taking jobs (a queue hands the job to another worker).
 * 'retry': anything else (a network error, an unexpected failure): worth another attempt.
 */
export function errorKind(e: unknown): 'job' | 'fatal' | 'retry' {
  if (e instanceof DeviceLostError || e instanceof DeviceError || e instanceof ShaderCompileError) return 'fatal';
  if (
    e instanceof InputError ||
    e instanceof ContextOverflowError ||
    e instanceof LimitError ||
    e instanceof OutOfMemoryError
  )
    return 'job';
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR') return 'job';
  return 'retry';
}

/** The error's stable code (`INPUT`, `CONTEXT_OVERFLOW`, `ENOENT`, …) and its first line. */
export function describeError(e: unknown): { code: string; message: string } {
  const code =
    e instanceof Glm4vError
      ? e.code
      : typeof (e as NodeJS.ErrnoException)?.code === 'string'
        ? (e as NodeJS.ErrnoException).code!
        : 'ERROR';
  return { code, message: (e instanceof Error ? e.message : String(e)).split('\n')[0] };
}

export function errorResult(id: string | number, error: { code: string; message: string }): JobResult {
  return { id, answer: null, thinking: null, finish_reason: 'error', usage: null, error };
}
