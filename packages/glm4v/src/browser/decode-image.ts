// Image decoding in a page: the browser's own decoder (createImageBitmap) drawn on an OffscreenCanvas and read
// back as RGBA, alpha dropped, then the same resize and patchify as under Node (preprocess/image.ts). As in the
// Node decoder (preprocess/decode-image.ts): EXIF orientation applied, no colour management (the stored values), the
// first frame of an animation, the same size limit. What differs: a canvas holds premultiplied alpha, so under a
// fully transparent pixel the stored colour reads back black (PIL keeps it), and partly transparent pixels may
// differ by rounding; and JPEG decoders may differ from libjpeg-turbo's by a level here and there.

import { InputError } from '@glm4v/core';
import { bytesGiven, checkImageSize, describeImage } from '../preprocess/image-input.js';
import type { ImageInput, RgbImage } from '../preprocess/types.js';

/** Magic numbers of the formats accepted, as under Node (browsers decode TIFF and HEIF rarely; they fail clearly). */
const SIGNATURES: [string, number[]][] = [
  ['PNG', [0x89, 0x50, 0x4e, 0x47]],
  ['JPEG', [0xff, 0xd8, 0xff]],
  ['GIF', [0x47, 0x49, 0x46, 0x38]],
  ['WebP', [0x52, 0x49, 0x46, 0x46]],
  ['TIFF', [0x49, 0x49, 0x2a, 0x00]],
  ['TIFF', [0x4d, 0x4d, 0x00, 0x2a]],
];

function format(bytes: Uint8Array): string | undefined {
  for (const [name, sig] of SIGNATURES) if (sig.every((b, i) => bytes[i] === b)) return name;
  // ISO-BMFF (HEIF/AVIF): 'ftyp' at byte 4
  if (bytes[4] === 0x66 && bytes[5] === 0x74 && bytes[6] === 0x79 && bytes[7] === 0x70) return 'HEIF/AVIF';
  return undefined;
}

async function readInput(input: ImageInput, what: string): Promise<Uint8Array> {
  const given = bytesGiven(input, what);
  if (given) return given;
  let res: Response;
  try {
    res = await fetch(input.path as string);
  } catch (e) {
    throw new InputError(`${what}: cannot be fetched (${(e as Error).message})`, { cause: e });
  }
  if (!res.ok)
    throw new InputError(`${what}: ${res.status === 404 ? 'no such file' : `cannot be fetched (HTTP ${res.status})`}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes.length === 0) throw new InputError(`${what}: empty file`);
  return bytes;
}

/** Decode an image (URL or encoded bytes) to 8-bit RGB. Throws InputError naming the image on any failure. */
export async function decodeImage(input: ImageInput, index?: number): Promise<RgbImage> {
  const what = describeImage(input, index);
  const bytes = await readInput(input, what);
  const kind = format(bytes);
  if (!kind) throw new InputError(`${what}: unsupported format: expected PNG, JPEG, WebP, GIF, TIFF or HEIF/AVIF`);
  let bitmap: ImageBitmap;
  try {
    const blob = new Blob([bytes as Uint8Array<ArrayBuffer>]);
    bitmap = await createImageBitmap(blob, {
      imageOrientation: 'from-image',
      premultiplyAlpha: 'none',
      colorSpaceConversion: 'none',
    });
  } catch (e) {
    throw new InputError(`${what}: not a readable image (${kind}: ${(e as Error).message})`, { cause: e });
  }
  try {
    const { width: w, height: h } = bitmap;
    checkImageSize(w, h, what);
    const ctx = new OffscreenCanvas(w, h).getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new InputError(`${what}: the browser gave no 2D canvas to decode into`);
    ctx.drawImage(bitmap, 0, 0);
    const rgba = ctx.getImageData(0, 0, w, h, { colorSpace: 'srgb' }).data;
    const rgb = new Uint8Array(w * h * 3);
    for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
      rgb[i] = rgba[j];
      rgb[i + 1] = rgba[j + 1];
      rgb[i + 2] = rgba[j + 2];
    }
    return { data: rgb, height: h, width: w };
  } finally {
    bitmap.close();
  }
}
