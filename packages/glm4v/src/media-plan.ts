// The media plan of a prompt: its images or its videos (never both) turned once into what every later step reads —
// the vision tower's frames (one attention segment each), and the placeholder runs of the prompt in order
// (docs/model.md#placeholders, #video). An image of grid [t, h, w] is one run of t·h·w/merge² placeholders and t
// frames; a video of grid [t, h, w] is t temporal patches, each its own frame [h, w] and its own run of h·w/merge²
// placeholders between <|begin_of_image|> and <|end_of_image|> (Glm4vProcessor.replace_video_token,
// Glm4vModel.get_rope_index). Placeholder expansion, the rope index, the vision layout and prefill all read it.

import { InputError } from '@glm4v/core';

/** [t, h, w]: t temporal patches of h×w patches each. */
export type Grid = readonly [number, number, number];

/** InputError (prefixed by `what`) unless `g` is 3 positive integers with h and w divisible by `mergeSize`. */
export function checkGrid(g: Grid, mergeSize: number, what: string): void {
  const ok =
    Array.isArray(g) &&
    g.length === 3 &&
    g.every((v) => Number.isInteger(v) && v >= 1) &&
    g[1] % mergeSize === 0 &&
    g[2] % mergeSize === 0;
  if (!ok)
    throw new InputError(
      `${what} grid ${JSON.stringify(g)} must be 3 positive integers [t, h, w] with h and w divisible by ${mergeSize}`,
    );
}

/** A prompt carries images or videos, not both (docs/model.md#placeholders): the one check of that rule. */
export function checkOneMediaKind(images: number, videos: number): void {
  if (images > 0 && videos > 0) {
    throw new InputError(
      `a prompt may carry images or videos, not both (got ${images} image(s) and ${videos} video(s)): GLM-4.1V uses one placeholder token for both`,
    );
  }
}

/** One run of consecutive <|image|> placeholders: a whole image, or one temporal patch of a video. */
export interface PlaceholderRun {
  /** Index of its image or video in the prompt. */
  media: number;
  /** Temporal patch of a video (0 for an image). */
  frame: number;
  /** Temporal patches the run lays out (t for an image, 1 for a video's run). */
  frames: number;
  /** The merged grid: rows = h / merge, cols = w / merge. */
  rows: number;
  cols: number;
  /** frames · rows · cols placeholders, as many vision embeddings. */
  tokens: number;
}

export interface MediaPlan {
  /** What the prompt carries; undefined for none. */
  kind: 'image' | 'video' | undefined;
  mergeSize: number;
  /** [t, h, w] of each image or video, in prompt order. */
  grids: readonly Grid[];
  /** [h, w] of every vision-tower frame in order (each temporal patch of each image or video). */
  frames: readonly (readonly [number, number])[];
  /** The placeholder runs in prompt order. */
  runs: readonly PlaceholderRun[];
  /** Patches over all frames (rows of pixel_values). */
  patches: number;
  /** Placeholders over all runs (rows of the vision tower's output). */
  tokens: number;
}

/** The plan of a prompt's `images` or `videos` (InputError, prefixed by `what`, on both or on a bad grid). */
export function planMedia(
  images: readonly Grid[],
  videos: readonly Grid[],
  mergeSize: number,
  what: string,
): MediaPlan {
  if (!Number.isInteger(mergeSize) || mergeSize < 1)
    throw new InputError(`${what}: mergeSize must be a positive integer, got ${mergeSize}`);
  checkOneMediaKind(images.length, videos.length);
  const kind = images.length > 0 ? 'image' : videos.length > 0 ? 'video' : undefined;
  const grids = kind === 'video' ? videos : images;
  const frames: [number, number][] = [];
  const runs: PlaceholderRun[] = [];
  grids.forEach((g, media) => {
    checkGrid(g, mergeSize, `${what}: ${kind} ${media}`);
    const [t, h, w] = g;
    const [rows, cols] = [h / mergeSize, w / mergeSize];
    for (let f = 0; f < t; f++) frames.push([h, w]);
    if (kind === 'image') runs.push({ media, frame: 0, frames: t, rows, cols, tokens: t * rows * cols });
    else for (let f = 0; f < t; f++) runs.push({ media, frame: f, frames: 1, rows, cols, tokens: rows * cols });
  });
  const patches = frames.reduce((n, [h, w]) => n + h * w, 0);
  const tokens = runs.reduce((n, r) => n + r.tokens, 0);
  return { kind, mergeSize, grids, frames, runs, patches, tokens };
}
