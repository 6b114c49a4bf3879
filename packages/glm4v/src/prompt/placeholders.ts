// Placeholder expansion of the rendered prompt (docs/model.md#placeholders, #video; Glm4vProcessor.replace_image_token /
// replace_video_token): each <|image|> becomes t·gh·gw/merge² copies of itself; each <|video|> becomes, per
// temporal patch g, <|begin_of_image|> + <|image|>×(gh·gw/merge²) + <|end_of_image|> + int(timestamp_g).

import { InputError } from '@glm4v/core';
import type { TokenIds } from '../config.js';
import type { MediaPlan, PlaceholderRun } from '../media-plan.js';

export const IMAGE_TOKEN = '<|image|>';
export const VIDEO_TOKEN = '<|video|>';
const BOI = '<|begin_of_image|>';
const EOI = '<|end_of_image|>';

/** The text that replaces one video's <|video|>: one image block and one timestamp per temporal patch (run). */
function videoText(runs: readonly PlaceholderRun[], timestamps: readonly number[], what: string): string {
  let s = '';
  for (const { frame, tokens } of runs) {
    // As the processor: missing timestamps repeat the last one (0 when there are none).
    const ts = timestamps[Math.min(frame, timestamps.length - 1)] ?? 0;
    if (!Number.isFinite(ts) || ts < 0) throw new InputError(`expandPlaceholders: ${what} timestamp ${frame} is ${ts}`);
    s += `${BOI}${IMAGE_TOKEN.repeat(tokens)}${EOI}${Math.trunc(ts)}`;
  }
  return s;
}

/**
 * [start, end) of each image or video block of an expanded prompt's ids, in order: <|begin_of_image|> … <|end_of_image|>
 * for an image, <|begin_of_video|> … <|end_of_video|> for a video (its frames' image blocks inside).
 */
export function mediaSpans(
  ids: ArrayLike<number>,
  tokens: Pick<TokenIds, 'imageStart' | 'imageEnd' | 'videoStart' | 'videoEnd'>,
): [number, number][] {
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
 * Expand every <|image|> (in order, one per image of `plan`) or <|video|> (one per video, with its entry of
 * `timestamps`) of the rendered prompt. Counts must match the plan.
 */
export function expandPlaceholders(
  text: string,
  plan: MediaPlan,
  timestamps: readonly (readonly number[])[] = [],
): string {
  const pieces = text.split(/(<\|image\|>|<\|video\|>)/);
  const images = plan.kind === 'image' ? plan.grids.length : 0;
  const videos = plan.kind === 'video' ? plan.grids.length : 0;
  const nImg = pieces.filter((p) => p === IMAGE_TOKEN).length;
  const nVid = pieces.filter((p) => p === VIDEO_TOKEN).length;
  if (nImg !== images)
    throw new InputError(`the prompt has ${nImg} ${IMAGE_TOKEN} placeholder(s) but ${images} image(s) were given`);
  if (nVid !== videos)
    throw new InputError(`the prompt has ${nVid} ${VIDEO_TOKEN} placeholder(s) but ${videos} video(s) were given`);
  let media = 0;
  return pieces
    .map((p) => {
      if (p !== IMAGE_TOKEN && p !== VIDEO_TOKEN) return p;
      const i = media++;
      const runs = plan.runs.filter((r) => r.media === i);
      return p === IMAGE_TOKEN
        ? IMAGE_TOKEN.repeat(runs[0].tokens)
        : videoText(runs, timestamps[i] ?? [], `video ${i}`);
    })
    .join('');
}
