// Model folders over HTTP: every file under a base URL, read with Range requests so that a 5 GB shard is
// streamed piece by piece into the loader's staging arrays and never held whole. Works in a page and under Node
// (both have fetch). The server must answer Range requests (206 Partial Content with Content-Range), as static
// file servers and the Hugging Face hub do; cross-origin, it must also expose Content-Range (CORS
// Access-Control-Expose-Headers).

import { InputError } from '@glm4v/core';
import type { FileSource, ModelFolder } from './folder.js';

export interface HttpFolderOptions {
  /** Extra request headers, e.g. an Authorization header for a private repository. */
  headers?: Record<string, string>;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

export class HttpFolder implements ModelFolder {
  readonly location: string;
  private readonly base: URL;

  /** `base` may be relative to the page (`./models/glm/`); a missing final slash is added. */
  constructor(
    base: string | URL,
    private readonly opts: HttpFolderOptions = {},
  ) {
    const href = typeof base === 'string' ? base : base.href;
    const page = (globalThis as { location?: { href?: string } }).location?.href;
    if (!URL.canParse(href, page))
      throw new InputError(`'${href}' is not a URL${page ? '' : ' (outside a page it must be absolute)'}`);
    this.base = new URL(href.endsWith('/') ? href : `${href}/`, page);
    this.location = this.base.href;
  }

  path(name: string): string {
    return new URL(name, this.base).href;
  }

  open(name: string): Promise<FileSource | undefined> {
    return HttpFile.open(this.path(name), this.opts);
  }

  async readText(name: string): Promise<string | undefined> {
    const res = await request(this.path(name), this.opts, {});
    if (res.status === 404) return undefined;
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
    return res.text();
  }
}

/** fetch with the folder's headers; network failures become an Error naming the URL's server. */
async function request(url: string, opts: HttpFolderOptions, headers: Record<string, string>): Promise<Response> {
  try {
    return await (opts.fetch ?? fetch)(url, { headers: { ...opts.headers, ...headers } });
  } catch (e) {
    throw new Error(
      `request failed (${(e as Error).message}): is the server at ${new URL(url).origin} reachable, and does it allow this origin (CORS)?`,
      { cause: e },
    );
  }
}

/** The total size in a Content-Range header: the number after the slash (`bytes 0-7/1234`). */
function totalSize(res: Response): number | undefined {
  const m = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
  return m ? Number(m[1]) : undefined;
}

export class HttpFile implements FileSource {
  private constructor(
    readonly path: string,
    readonly size: number,
    private readonly opts: HttpFolderOptions,
  ) {}

  /** Asks for the first byte to learn the size; undefined on 404. */
  static async open(url: string, opts: HttpFolderOptions = {}): Promise<HttpFile | undefined> {
    const res = await request(url, opts, { range: 'bytes=0-0' });
    await res.body?.cancel().catch(() => undefined);
    if (res.status === 404) return undefined;
    if (res.status === 200) {
      throw new Error(
        'the server ignores HTTP Range requests (it answered 200 instead of 206): serve the model from a server that supports them',
      );
    }
    if (res.status !== 206 && res.status !== 416) throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
    const size = totalSize(res);
    if (size === undefined) {
      throw new Error(
        'the response has no readable Content-Range header (cross-origin servers must list it in Access-Control-Expose-Headers)',
      );
    }
    if (!Number.isSafeInteger(size)) throw new Error(`file size ${size} is beyond 2^53 bytes`);
    return new HttpFile(url, size, opts);
  }

  /** One Range request for [position, position + target.byteLength), streamed into `target`. */
  async read(target: Uint8Array, position: number): Promise<number> {
    const end = Math.min(position + target.byteLength, this.size);
    if (end <= position) return 0;
    const res = await request(this.path, this.opts, { range: `bytes=${position}-${end - 1}` });
    if (res.status === 416) {
      await res.body?.cancel().catch(() => undefined);
      return 0; // the file is shorter now than when it was opened
    }
    if (res.status !== 206) {
      await res.body?.cancel().catch(() => undefined);
      throw new Error(`HTTP ${res.status} ${res.statusText} for bytes ${position}-${end - 1}`.replace(/ +/g, ' '));
    }
    const start = Number(/bytes (\d+)-/.exec(res.headers.get('content-range') ?? '')?.[1]);
    if (start !== position) {
      await res.body?.cancel().catch(() => undefined);
      throw new Error(`asked for bytes from ${position}, the server sent them from ${start}`);
    }
    return streamInto(res, target.subarray(0, end - position));
  }

  async close(): Promise<void> {}
}

/** Copies a response body into `target` as it arrives; the count copied (short if the body ends early). */
async function streamInto(res: Response, target: Uint8Array): Promise<number> {
  if (!res.body) return 0;
  const reader = res.body.getReader();
  let done = 0;
  try {
    while (done < target.byteLength) {
      const { value, done: end } = await reader.read();
      if (end) break;
      const n = Math.min(value.byteLength, target.byteLength - done);
      target.set(value.subarray(0, n), done);
      done += n;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return done;
}
