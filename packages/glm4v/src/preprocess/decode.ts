// Image decoding with sharp (libvips) to 8-bit RGB, with the semantics of the reference's loader
// (transformers' load_image: PIL open, ImageOps.exif_transpose, convert("RGB")):
//   - EXIF orientation applied (lossless transpose/rotate);
//   - alpha dropped WITHOUT compositing (PIL's convert("RGB") keeps the stored colour under any alpha);
//   - greyscale replicated to three channels, palettes expanded;
//   - GIF/WebP animations: the first frame;
//   - no colour management (PIL ignores embedded ICC profiles, so do we).
// Size is checked from the header before any pixel is decoded.

import { readFile, stat } from 'node:fs/promises';
import sharp from 'sharp';
import { InputError } from '@glm4v/core';
import type { ImageInput, RgbImage } from './types.js';

/** Decoded-pixel limit: larger inputs are refused before decoding (100 MP ≈ 300 MB of RGB). */
export const MAX_INPUT_PIXELS = 100_000_000;

/** Encoded formats accepted (sharp's names). SVG and other vector/raw formats are refused. */
const FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);

/** A short name for the image in error messages: its path, or "image #k (N bytes)". */
export function describeImage(input: ImageInput, index?: number): string {
  if (input.path !== undefined) return `image file '${input.path}'`;
  const k = index === undefined ? '' : ` #${index}`;
  return `image${k} (${input.data?.length ?? 0} bytes in memory)`;
}

async function readInput(input: ImageInput, what: string): Promise<Uint8Array> {
  if ((input.path === undefined) === (input.data === undefined)) {
    throw new InputError(`${what}: give exactly one of 'path' or 'data'`);
  }
  if (input.data !== undefined) {
    if (!(input.data instanceof Uint8Array)) throw new InputError(`${what}: 'data' must be a Uint8Array or Buffer of encoded image bytes`);
    if (input.data.length === 0) throw new InputError(`${what}: empty data`);
    return input.data;
  }
  const path = input.path as string;
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new InputError(`${what}: not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${what}: ${code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? String(e)})`}`, { cause: e });
  }
  if (size === 0) throw new InputError(`${what}: empty file`);
  return readFile(path);
}

/** Decode an image (path or encoded bytes) to 8-bit RGB. Throws InputError naming the file on any failure. */
export async function decodeImage(input: ImageInput, index?: number): Promise<RgbImage> {
  const what = describeImage(input, index);
  const bytes = await readInput(input, what);
  const opts = { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error', pages: 1, page: 0 } as const;
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    throw new InputError(`${what}: not a readable image (${(e as Error).message})`, { cause: e });
  }
  if (!meta.format || !FORMATS.has(meta.format)) {
    throw new InputError(`${what}: unsupported format '${meta.format}': expected PNG, JPEG, WebP, GIF, TIFF or HEIF/AVIF`);
  }
  const w = meta.width ?? 0;
  const h = meta.pageHeight ?? meta.height ?? 0;
  if (w < 1 || h < 1) throw new InputError(`${what}: image has no pixels (${w}x${h})`);
  if (w * h > MAX_INPUT_PIXELS) {
    throw new InputError(`${what}: ${w}x${h} = ${(w * h / 1e6).toFixed(1)} MP exceeds the ${MAX_INPUT_PIXELS / 1e6} MP input limit`);
  }
  try {
    const { data, info } = await sharp(bytes, opts)
      .rotate() // EXIF orientation
      .removeAlpha()
      .keepIccProfile() // no ICC transform: the stored values, as PIL reads them
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`decoder returned ${info.channels} channels for ${info.width}x${info.height}`);
    }
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), height: info.height, width: info.width };
  } catch (e) {
    throw new InputError(`${what}: cannot be decoded (${(e as Error).message})`, { cause: e });
  }
}
