// Images and videos in chat messages. Images come as `data:` URLs (base64) or `file://` URLs; videos as `file://`
// URLs or paths. Files are read only from under --media-dir (after resolving links), so a client cannot make the
// server read anything else; remote URLs are not fetched. An image's size is read from its header and checked
// against the pixel cap before anything decodes it.

import { realpath } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { ContentPart } from '../prompt/chat-template.js';
import { invalid } from './api-errors.js';

export interface MediaPolicy {
  /** Folder that file:// URLs and video paths must lie under; without it they are refused. */
  mediaDir?: string;
  /** Largest image accepted, in pixels (width × height of the encoded image). */
  maxImagePixels: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The URL of an image_url / video_url field: a string, or {url: string}. */
function urlOf(v: unknown, at: string): string {
  const url = isObject(v) ? v.url : v;
  if (typeof url !== 'string' || url.length === 0)
    throw invalid(`${at} must be a URL string or an object with a 'url' string`, at);
  return url;
}

/** A path under the media folder, after following links; the client's own spelling in messages. */
async function mediaPath(spec: string, at: string, media: MediaPolicy): Promise<string> {
  if (!media.mediaDir)
    throw invalid(
      `${at}: files are served only from a media folder, and this server has none (start it with --media-dir)`,
      at,
      'invalid_url',
    );
  const root = await realpath(media.mediaDir);
  const asked = spec.startsWith('file:') ? fileURLToPath(spec) : isAbsolute(spec) ? spec : join(root, spec);
  let real: string;
  try {
    real = await realpath(asked);
  } catch {
    throw invalid(`${at}: ${spec} does not exist or cannot be read`, at, 'invalid_url');
  }
  const rel = relative(root, real);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel))
    throw invalid(`${at}: ${spec} is outside the media folder`, at, 'invalid_url');
  return real;
}

/** Checks an encoded image's dimensions against the cap (reading its header only). */
async function checkPixels(input: Buffer | string, at: string, media: MediaPolicy): Promise<void> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw invalid(`${at}: not a readable image (${(e as Error).message})`, at, 'invalid_image');
  }
  const [w, h] = [meta.width ?? 0, meta.height ?? 0];
  if (w * h > media.maxImagePixels) {
    throw invalid(
      `${at}: the image is ${w}×${h} = ${w * h} pixels, over this server's limit of ${media.maxImagePixels} (--max-image-pixels)`,
      at,
      'image_too_large',
    );
  }
}

/** An image_url part: a data: URL (base64) or a file:// URL under the media folder. */
export async function imagePart(v: unknown, at: string, media: MediaPolicy): Promise<ContentPart> {
  const url = urlOf(v, at);
  if (url.startsWith('data:')) {
    const m = /^data:(image\/[\w.+-]+)?(;[^,]*)?,(.*)$/s.exec(url);
    if (!m || !(m[2] ?? '').includes(';base64'))
      throw invalid(`${at}: expected a base64 data URL (data:image/...;base64,...)`, at, 'invalid_url');
    const data = Buffer.from(m[3], 'base64');
    if (data.length === 0) throw invalid(`${at}: the data URL holds no bytes`, at, 'invalid_image');
    await checkPixels(data, at, media);
    return { type: 'image', image: { data } };
  }
  if (url.startsWith('file:')) {
    const path = await mediaPath(url, at, media);
    await checkPixels(path, at, media);
    return { type: 'image', image: { path } };
  }
  throw invalid(
    `${at}: only data: URLs and file:// URLs (under --media-dir) are accepted; remote URLs are not fetched`,
    at,
    'invalid_url',
  );
}

/** A video_url part: a file:// URL or a path, under the media folder. */
export async function videoPart(v: unknown, at: string, media: MediaPolicy): Promise<ContentPart> {
  const url = urlOf(v, at);
  if (/^[a-z][\w+.-]*:/i.test(url) && !url.startsWith('file:'))
    throw invalid(`${at}: videos are read from files under --media-dir (file:// URLs or paths)`, at, 'invalid_url');
  return { type: 'video', video: await mediaPath(url, at, media) };
}
