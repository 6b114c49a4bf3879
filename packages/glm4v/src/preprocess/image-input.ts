// What both image decoders (sharp under Node, the browser's own in a page) check the same way: how an image is
// named in messages, the bytes given in memory, and the decoded-size limit.

import { InputError } from '@glm4v/core';
import type { ImageInput } from './types.js';

/** Decoded-pixel limit: larger inputs are refused before decoding (100 MP ≈ 300 MB of RGB). */
export const MAX_INPUT_PIXELS = 100_000_000;

/** A short name for the image in error messages: its path, or "image #k (N bytes)". */
export function describeImage(input: ImageInput, index?: number): string {
  if (input.path !== undefined) return `image file '${input.path}'`;
  const k = index === undefined ? '' : ` #${index}`;
  return `image${k} (${input.data?.length ?? 0} bytes in memory)`;
}

/** The encoded bytes given in memory, checked; undefined when the image is given by path. */
export function bytesGiven(input: ImageInput, what: string): Uint8Array | undefined {
  if ((input.path === undefined) === (input.data === undefined)) {
    throw new InputError(`${what}: give exactly one of 'path' or 'data'`);
  }
  if (input.data === undefined) return undefined;
  if (!(input.data instanceof Uint8Array))
    throw new InputError(`${what}: 'data' must be a Uint8Array or Buffer of encoded image bytes`);
  if (input.data.length === 0) throw new InputError(`${what}: empty data`);
  return input.data;
}

/** Refuses an image with no pixels or more than MAX_INPUT_PIXELS, from its header's size. */
export function checkImageSize(w: number, h: number, what: string): void {
  if (w < 1 || h < 1) throw new InputError(`${what}: image has no pixels (${w}x${h})`);
  if (w * h > MAX_INPUT_PIXELS) {
    throw new InputError(
      `${what}: ${w}x${h} = ${((w * h) / 1e6).toFixed(1)} MP exceeds the ${MAX_INPUT_PIXELS / 1e6} MP input limit`,
    );
  }
}
