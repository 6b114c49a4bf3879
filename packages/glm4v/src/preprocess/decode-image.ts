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
import { MAX_INPUT_PIXELS, bytesGiven, checkImageSize, describeImage } from './image-input.js';
import type { ImageInput, RgbImage } from './types.js';

export { MAX_INPUT_PIXELS } from './image-input.js';

/** Encoded formats accepted (sharp's names). SVG and other vector/raw formats are refused. */
const FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);

async function readInput(input: ImageInput, what: string): Promise<Uint8Array> {
  const given = bytesGiven(input, what);
  if (given) return given;
  const path = input.path as string;
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new InputError(`${what}: not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${what}: ${code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? String(e)})`}`, {
      cause: e,
    });
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
    throw new InputError(
      `${what}: unsupported format '${meta.format}': expected PNG, JPEG, WebP, GIF, TIFF or HEIF/AVIF`,
    );
  }
  checkImageSize(meta.width ?? 0, meta.pageHeight ?? meta.height ?? 0, what);
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
