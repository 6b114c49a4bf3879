// Placeholder expansion of the rendered prompt (docs/model.md#placeholders, #video; Glm4vProcessor.replace_image_token /
// replace_video_token): each <|image|> becomes t·gh·gw/merge² copies of itself; each <|video|> becomes, per
// temporal patch g, <|begin_of_image|> + <|image|>×(gh·gw/merge²) + <|end_of_image|> + int(timestamp_g).

import { InputError } from '@glm4v/core';
import type { TokenIds } from '../config.js';
import { checkGrid, type Grid } from '../grid.js';

export const IMAGE_TOKEN = '<|image|>';
export const VIDEO_TOKEN = '<|video|>';
const BOI = '<|begin_of_image|>';
const EOI = '<|end_of_image|>';

function tokensPerFrame(grid: Grid, mergeSize: number, what: string): number {
  checkGrid(grid, mergeSize, `expandPlaceholders: ${what}`);
  return (grid[1] * grid[2]) / (mergeSize * mergeSize);
}

/** The text that replaces one video's <|video|>: one image block and one timestamp per temporal patch. */
function videoText(grid: Grid, timestamps: readonly number[], mergeSize: number, what: string): string {
  const n = tokensPerFrame(grid, mergeSize, what);
  const frame = IMAGE_TOKEN.repeat(n);
  let s = '';
  for (let g = 0; g < grid[0]; g++) {
    // As the processor: missing timestamps repeat the last one (0 when there are none).
    const ts = timestamps[Math.min(g, timestamps.length - 1)] ?? 0;
    if (!Number.isFinite(ts) || ts < 0) throw new InputError(`expandPlaceholders: ${what} timestamp ${g} is ${ts}`);
    s += `${BOI}${frame}${EOI}${Math.trunc(ts)}`;
  }
  return s;
}

/** A prompt carries images or videos, not both (docs/model.md#placeholders). */
export function checkOneMediaKind(images: number, videos: number): void {
  if (images > 0 && videos > 0) {
    throw new InputError(`a prompt may carry images or videos, not both (got ${images} image(s) and ${videos} video(s)): GLM-4.1V uses one placeholder token for both`);
  }
}

/**
 * [start, end) of each image or video block of an expanded prompt's ids, in order: <|begin_of_image|> … <|end_of_image|>
 * for an image, <|begin_of_video|> … <|end_of_video|> for a video (its frames' image blocks inside).
 */
export function mediaSpans(ids: ArrayLike<number>, tokens: Pick<TokenIds, 'imageStart' | 'imageEnd' | 'videoStart' | 'videoEnd'>): [number, number][] {
  const spans: [number, number][] = [];
  let open = -1; // start of the block being read
  let inVideo = false;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id === tokens.videoStart) {
      open = i;
      inVideo = true;
    } else if (id === tokens.videoEnd && inVideo) {
      spans.push([open, i + 1]);
      inVideo = false;
    } else if (!inVideo && id === tokens.imageStart) {
      open = i;
    } else if (!inVideo && id === tokens.imageEnd && open >= 0) {
      spans.push([open, i + 1]);
      open = -1;
    }
  }
  return spans;
}

/**
 * Expand every <|image|> (in order, one per entry of `images`) and <|video|> (one per entry of `videos`) of the
 * rendered prompt. Counts must match; a prompt with both images and videos is refused (docs/model.md#placeholders).
 */
export function expandPlaceholders(
  text: string, images: readonly Grid[], videos: readonly { grid: Grid; timestamps: number[] }[], mergeSize: number,
): string {
  if (!Number.isInteger(mergeSize) || mergeSize < 1) throw new InputError(`expandPlaceholders: mergeSize must be a positive integer, got ${mergeSize}`);
  checkOneMediaKind(images.length, videos.length);
  const pieces = text.split(/(<\|image\|>|<\|video\|>)/);
  const nImg = pieces.filter((p) => p === IMAGE_TOKEN).length;
  const nVid = pieces.filter((p) => p === VIDEO_TOKEN).length;
  if (nImg !== images.length) throw new InputError(`the prompt has ${nImg} ${IMAGE_TOKEN} placeholder(s) but ${images.length} image(s) were given`);
  if (nVid !== videos.length) throw new InputError(`the prompt has ${nVid} ${VIDEO_TOKEN} placeholder(s) but ${videos.length} video(s) were given`);
  let img = 0;
  let vid = 0;
  return pieces.map((p) => {
    if (p === IMAGE_TOKEN) {
      const g = images[img];
      const n = g[0] * tokensPerFrame(g, mergeSize, `image ${img}`);
      img++;
      return IMAGE_TOKEN.repeat(n);
    }
    if (p === VIDEO_TOKEN) {
      const v = videos[vid];
      const s = videoText(v.grid, v.timestamps, mergeSize, `video ${vid}`);
      vid++;
      return s;
    }
    return p;
  }).join('');
}
