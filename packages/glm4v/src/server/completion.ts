// One chat completion, answered as OpenAI's API answers it: a chat.completion object, or (stream) server-sent
// chat.completion.chunk events ending with `data: [DONE]`. The thinking goes to `reasoning_content` (as vLLM's
// GLM reasoning parser does), the answer to `content` (box markers removed by ReplyText). A client that goes away
// cancels the request, which frees its slot at once.

import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { AbortError } from '@glm4v/core';
import type { FinishReason, GenerateEvent, GenerationStats } from '../glm4v.js';
import type { Submission } from '../generate/batcher.js';
import { toApiError } from './api-errors.js';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

interface Ids {
  id: string;
  created: number;
  model: string;
}

const usageOf = (s: GenerationStats): Usage => ({
  prompt_tokens: s.promptTokens,
  completion_tokens: s.generatedTokens,
  total_tokens: s.promptTokens + s.generatedTokens,
});

/** OpenAI's finish reasons; 'abort' (the server cancelled the request at shutdown) is this server's own. */
const finishOf = (r: FinishReason): string => r;

export function newIds(model: string): Ids {
  return { id: `chatcmpl-${randomBytes(12).toString('hex')}`, created: Math.floor(Date.now() / 1000), model };
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Cancels the submission when the client disconnects before the response is complete (call it as soon as the
 * request is submitted: a client may leave while its images are being prepared).
 */
export function cancelOnClose(res: ServerResponse, sub: Submission): void {
  res.on('close', () => {
    if (!res.writableFinished) sub.cancel();
  });
  if (res.destroyed) sub.cancel();
}

/** The whole reply as one chat.completion object. Returns the HTTP status sent. */
export async function answerWhole(res: ServerResponse, sub: Submission, ids: Ids): Promise<number> {
  const text = { thinking: '', answer: '' };
  let done: Extract<GenerateEvent, { type: 'done' }> | undefined;
  for await (const ev of sub) {
    if (ev.type === 'text') text[ev.phase] += ev.text;
    else if (ev.type === 'done') done = ev;
  }
  if (!done || done.finishReason === 'abort') {
    const e = toApiError(
      new AbortError('the request was cancelled before it finished (the server is shutting down, or the client left)'),
    );
    if (!res.destroyed) sendJson(res, e.status, e.body);
    return e.status;
  }
  sendJson(res, 200, {
    ...ids,
    object: 'chat.completion',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: text.answer, reasoning_content: text.thinking || null },
        logprobs: null,
        finish_reason: finishOf(done.finishReason),
      },
    ],
    usage: usageOf(done.stats),
  });
  return 200;
}

/** The reply as server-sent events. Returns the HTTP status sent (200: the stream started). */
export async function answerStream(
  res: ServerResponse,
  sub: Submission,
  ids: Ids,
  includeUsage: boolean,
): Promise<number> {
  res.socket?.setNoDelay(true); // each event goes out as it is written (no Nagle delay behind an unacknowledged one)
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const send = (data: unknown) => {
    if (!res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  const chunk = (delta: Record<string, string>, finish: string | null = null) => ({
    ...ids,
    object: 'chat.completion.chunk',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
  send(chunk({ role: 'assistant', content: '' }));
  try {
    for await (const ev of sub) {
      if (ev.type === 'text')
        send(chunk(ev.phase === 'thinking' ? { reasoning_content: ev.text } : { content: ev.text }));
      else if (ev.type === 'done') {
        send(chunk({}, finishOf(ev.finishReason)));
        if (includeUsage) send({ ...ids, object: 'chat.completion.chunk', choices: [], usage: usageOf(ev.stats) });
      }
    }
  } catch (e) {
    // the stream has started: the error goes in an event, as vLLM sends it
    send(toApiError(e).body);
  }
  if (!res.destroyed) res.end('data: [DONE]\n\n');
  return 200;
}
