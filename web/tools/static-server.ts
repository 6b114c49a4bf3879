// A small static file server for the demo page and the browser tests: GET and HEAD, single HTTP Range requests
// (206 with Content-Range, 416 past the end), content types for the page's files, no caching. Folders are mounted
// under URL prefixes. It counts the body bytes sent per path, so tests can tell how much of a checkpoint a
// refused load downloaded. Local use only: it binds to 127.0.0.1 unless told otherwise.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.jinja': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.webp': 'image/webp',
  '.map': 'application/json',
};

export interface StaticServer {
  /** Base URL, ending in '/'. */
  url: string;
  /** Body bytes sent per URL path since the start (or the last reset). */
  bytesSent: Map<string, number>;
  close(): Promise<void>;
}

/** `mounts`: URL prefix ('/' or '/fixtures/') → folder. The longest matching prefix wins. */
export async function startServer(
  mounts: Record<string, string>,
  opts: { port?: number; host?: string } = {},
): Promise<StaticServer> {
  const bytesSent = new Map<string, number>();
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const server: Server = createServer((req, res) => {
    serve(req, res, mounts, prefixes, bytesSent).catch((e: Error) => {
      if (!res.headersSent) res.writeHead(500).end(e.message);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host ?? '127.0.0.1'}:${port}/`,
    bytesSent,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The file a URL path names, or undefined when it is outside every mount. */
function resolvePath(pathname: string, mounts: Record<string, string>, prefixes: string[]): string | undefined {
  const prefix = prefixes.find((p) => pathname.startsWith(p));
  if (prefix === undefined) return undefined;
  const rel = normalize(decodeURIComponent(pathname.slice(prefix.length)));
  if (rel.split(sep).includes('..')) return undefined;
  return join(mounts[prefix], rel.endsWith(sep) || rel === '.' ? join(rel, 'index.html') : rel);
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  mounts: Record<string, string>,
  prefixes: string[],
  bytesSent: Map<string, number>,
): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { allow: 'GET, HEAD' }).end();
  const pathname = new URL(req.url ?? '/', 'http://x').pathname;
  const file = resolvePath(pathname, mounts, prefixes);
  const st = file ? await stat(file).catch(() => undefined) : undefined;
  if (!file || !st?.isFile()) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  const headers: Record<string, string | number> = {
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    'accept-ranges': 'bytes',
    'cache-control': 'no-store',
  };
  let start = 0;
  let end = st.size - 1;
  const range = req.headers.range;
  if (range) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range);
    if (!m || (m[1] === '' && m[2] === ''))
      return void res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
    start = m[1] === '' ? Math.max(0, st.size - Number(m[2])) : Number(m[1]);
    end = m[1] === '' || m[2] === '' ? st.size - 1 : Math.min(Number(m[2]), st.size - 1);
    if (start >= st.size || start > end)
      return void res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
    headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
  }
  headers['content-length'] = end - start + 1;
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === 'HEAD' || end < start) return void res.end();
  bytesSent.set(pathname, (bytesSent.get(pathname) ?? 0) + end - start + 1);
  createReadStream(file, { start, end }).pipe(res);
}
