// The OpenAI-compatible HTTP server (Node's own http): a thin layer over one Batcher, which does the work.
//   POST /v1/chat/completions   chat completion, whole or streamed (completion.ts; request.ts checks the body)
//   GET  /v1/models[/ID]        the one model served
//   GET  /health                200 while serving, 503 while shutting down (for load balancers)
//   GET  /metrics               Prometheus text (metrics.ts)
// /v1/ paths need `Authorization: Bearer KEY` when a key is set. Limits: a body over maxBodyBytes is 413; more than
// maxBatch + maxQueue requests at once is 429 with Retry-After. The server keeps no state between requests, so
// replicas behind any HTTP load balancer scale it out. shutdown() stops accepting, lets the requests in flight
// finish for a grace period, cancels the rest, and closes every connection.

import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Glm4v } from '../glm4v.js';
import type { Batcher } from '../generate/batcher.js';
import type { GenerateOptions } from '../generate/options.js';
import { answerStream, answerWhole, cancelOnClose, newIds, sendJson } from './completion.js';
import { ApiError, invalid, toApiError } from './api-errors.js';
import type { MediaPolicy } from './media.js';
import { Metrics } from './metrics.js';
import { parseChatRequest } from './request.js';

export interface ServerOptions {
  /** The model's name in requests and /v1/models. */
  modelId: string;
  host?: string;
  /** 0: any free port (see `url`). */
  port?: number;
  /** Bearer key required on /v1/ paths; none: open. */
  apiKey?: string;
  maxBatch?: number;
  /** KV-cache size of each sequence (prompt + reply), in tokens. */
  contextLength?: number;
  prefillChunkTokens?: number;
  /** Requests accepted beyond those decoding, waiting for a slot (default 4 × maxBatch). */
  maxQueue?: number;
  maxBodyBytes?: number;
  /** Options of every request that its own fields do not set (glm4v-run serve's generation flags). */
  defaults?: GenerateOptions;
  media: MediaPolicy;
  /** One line per request and per event of note (default: none). */
  log?: (line: string) => void;
}

export const DEFAULT_MAX_BODY_BYTES = 32 * 2 ** 20;

export class ApiServer {
  private readonly http: Server;
  private readonly metrics = new Metrics();
  private inflight = 0;
  private draining = false;
  private stopped: Promise<void> | undefined;
  private idleWaiters: (() => void)[] = [];
  private readonly maxConcurrent: number;
  private readonly log: (line: string) => void;

  private constructor(
    private readonly batcher: Batcher,
    private readonly opts: ServerOptions,
  ) {
    this.maxConcurrent = batcher.maxBatch + (opts.maxQueue ?? 4 * batcher.maxBatch);
    this.log = opts.log ?? (() => undefined);
    this.http = createServer((req, res) => void this.handle(req, res));
  }

  /** Creates the batcher (the KV pool is allocated now) and listens. */
  static async start(model: Glm4v, opts: ServerOptions): Promise<ApiServer> {
    const batcher = await model.batcher({
      maxBatch: opts.maxBatch,
      contextLength: opts.contextLength,
      prefillChunkTokens: opts.prefillChunkTokens,
    });
    const server = new ApiServer(batcher, opts);
    try {
      await new Promise<void>((resolve, reject) => {
        server.http.once('error', reject);
        server.http.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', () => resolve());
      });
    } catch (e) {
      await batcher.close();
      throw e;
    }
    return server;
  }

  get url(): string {
    const a = this.http.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  get maxBatch(): number {
    return this.batcher.maxBatch;
  }

  get contextLength(): number {
    return this.batcher.contextLength;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    let status: number;
    try {
      status = await this.route(req, res, path);
    } catch (e) {
      const err = toApiError(e);
      status = err.status;
      if (!res.headersSent)
        sendJson(res, err.status, err.body, {
          ...err.headers,
          ...(this.draining || err.status === 413 ? { connection: 'close' } : {}),
        });
      else res.destroy();
      if (err.status >= 500) this.log(`error: ${req.method} ${path}: ${err.message}`);
    }
    if (path === '/v1/chat/completions') this.metrics.countRequest(status);
    this.log(`${req.method} ${path} ${status} ${Math.round(performance.now() - t0)} ms`);
  }

  /** Dispatches by path; returns the status sent. */
  private async route(req: IncomingMessage, res: ServerResponse, path: string): Promise<number> {
    const method = req.method ?? 'GET';
    const only = (m: string) => {
      if (method !== m)
        throw new ApiError(405, `${method} ${path}: use ${m}`, 'invalid_request_error', 'method_not_allowed', null, {
          allow: m,
        });
    };
    if (path === '/health') {
      only('GET');
      sendJson(res, this.draining ? 503 : 200, { status: this.draining ? 'shutting_down' : 'ok' });
      return this.draining ? 503 : 200;
    }
    if (path === '/metrics') {
      only('GET');
      const s = this.batcher.stats;
      const text = this.metrics.render(s, Math.max(0, this.inflight - s.waiting - s.active));
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(text);
      return 200;
    }
    if (!path.startsWith('/v1/'))
      throw new ApiError(404, `unknown URL: ${method} ${path}`, 'invalid_request_error', 'not_found');
    this.authorize(req);
    if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      only('GET');
      return this.models(res, path);
    }
    if (path === '/v1/chat/completions') {
      only('POST');
      return this.chat(req, res);
    }
    throw new ApiError(404, `unknown URL: ${method} ${path}`, 'invalid_request_error', 'not_found');
  }

  private authorize(req: IncomingMessage): void {
    const key = this.opts.apiKey;
    if (!key) return;
    const auth = req.headers.authorization ?? '';
    if (!auth)
      throw new ApiError(
        401,
        "no API key given: send 'Authorization: Bearer KEY'",
        'invalid_request_error',
        'invalid_api_key',
      );
    if (auth !== `Bearer ${key}`)
      throw new ApiError(401, 'incorrect API key', 'invalid_request_error', 'invalid_api_key');
  }

  private models(res: ServerResponse, path: string): number {
    const card = {
      id: this.opts.modelId,
      object: 'model',
      created: 0,
      owned_by: 'glm4v-runtime',
      max_model_len: this.batcher.contextLength,
    };
    if (path === '/v1/models') {
      sendJson(res, 200, { object: 'list', data: [card] });
      return 200;
    }
    const id = decodeURIComponent(path.slice('/v1/models/'.length));
    if (id !== this.opts.modelId)
      throw new ApiError(
        404,
        `the model '${id}' does not exist; this server serves '${this.opts.modelId}'`,
        'invalid_request_error',
        'model_not_found',
        'model',
      );
    sendJson(res, 200, card);
    return 200;
  }

  private async chat(req: IncomingMessage, res: ServerResponse): Promise<number> {
    if (this.draining) throw new ApiError(503, 'the server is shutting down', 'server_error', 'shutting_down');
    if (this.inflight >= this.maxConcurrent) {
      throw new ApiError(
        429,
        `the server is busy: ${this.inflight} requests in progress (max batch ${this.batcher.maxBatch} + queue ${this.maxConcurrent - this.batcher.maxBatch}); retry shortly`,
        'rate_limit_error',
        'rate_limit_exceeded',
        null,
        { 'retry-after': '1' },
      );
    }
    this.inflight++;
    try {
      const body = await readJson(req, this.opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
      const model = (body as { model?: unknown })?.model;
      if (model !== undefined && typeof model !== 'string') throw invalid("'model' must be a string", 'model');
      if (model !== undefined && model !== this.opts.modelId)
        throw new ApiError(
          404,
          `the model '${model}' does not exist; this server serves '${this.opts.modelId}'`,
          'invalid_request_error',
          'model_not_found',
          'model',
        );
      const chat = await parseChatRequest(body, this.opts.media);
      const sub = this.batcher.submit({ messages: chat.messages }, { ...this.opts.defaults, ...chat.options });
      cancelOnClose(res, sub);
      await sub.accepted; // a prompt past the context, a bad image: an error status, before the response starts
      const ids = newIds(this.opts.modelId);
      return await (chat.stream ? answerStream(res, sub, ids, chat.includeUsage) : answerWhole(res, sub, ids));
    } finally {
      this.inflight--;
      if (this.inflight === 0) this.idleWaiters.splice(0).forEach((w) => w());
    }
  }

  /**
   * Stops accepting connections and requests (503), lets those in flight finish for up to `graceMs`, cancels the
   * rest, closes every connection and frees the batcher's KV pool. The model stays loaded (the caller owns it).
   * Safe to call more than once (the same promise).
   */
  shutdown(graceMs = 30_000): Promise<void> {
    this.stopped ??= this.stop(graceMs);
    return this.stopped;
  }

  private async stop(graceMs: number): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((r) => this.http.close(() => r()));
    this.http.closeIdleConnections();
    const idle = () => (this.inflight === 0 ? Promise.resolve() : new Promise<void>((r) => this.idleWaiters.push(r)));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([idle(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    if (this.inflight > 0) this.log(`shutdown: cancelling ${this.inflight} requests still in progress`);
    await this.batcher.close();
    await Promise.race([idle(), new Promise((r) => (timer = setTimeout(r, 2000)))]);
    clearTimeout(timer);
    this.http.closeAllConnections();
    await closed;
  }
}

/**
 * The request body as JSON, at most `max` bytes: 413 beyond (the rest of the body is read and dropped, so the
 * client can read the answer), 400 when it does not parse.
 */
function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const tooLarge = () =>
    new ApiError(
      413,
      `the request body is over this server's limit of ${max} bytes (--max-body)`,
      'invalid_request_error',
      'request_too_large',
    );
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    let over = Number(req.headers['content-length'] ?? 0) > max;
    if (over) reject(tooLarge());
    req.on('data', (part: Buffer) => {
      size += part.length;
      if (over) return;
      if (size > max) {
        over = true;
        parts.length = 0;
        reject(tooLarge());
      } else parts.push(part);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (over) return;
      try {
        resolve(JSON.parse(Buffer.concat(parts).toString('utf8')));
      } catch (e) {
        reject(invalid(`the request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json'));
      }
    });
  });
}
