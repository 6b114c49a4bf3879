// 3-D rotary position ids for the decoder (Glm4vModel.get_rope_index; docs/model.md#rope-index), prefill of one sequence.
// Tokens are grouped into runs of one type: TEXT, IMAGE (<|image|> outside a video) and VIDEO (<|image|> between
// <|begin_of_video|> and <|end_of_video|>). Each run starts at base = 1 + the largest position assigned so far
// on any stream (0 at the start). Text advances all three streams together; an image run lays its merged grid
// out as (base + t, base + row, base + col); a video run is one temporal patch at (base, base + row, base + col).
// Decoding continues at position (cache index + ropeDelta) on all streams (docs/model.md#decode-positions).

import { InputError } from '@glm4v/core';
import type { TokenIds } from './config.js';
import type { MediaPlan } from './media-plan.js';

const TEXT = 0;
const IMAGE = 1;
const VIDEO = 2;
const TYPE_NAMES = ['text', 'image', 'video'];

/** Token type of each position: placeholders inside <|begin_of_video|> … <|end_of_video|> are video. */
function tokenTypes(ids: ArrayLike<number>, tokens: TokenIds): Uint8Array {
  const types = new Uint8Array(ids.length);
  let inVideo = false;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id === tokens.videoStart) inVideo = true;
    else if (id === tokens.videoEnd) inVideo = false;
    types[i] = id === tokens.image ? (inVideo ? VIDEO : IMAGE) : TEXT;
  }
  return types;
}

export interface RopeIndex {
  /** [3, L]: rows t, h, w. */
  positions: Int32Array;
  /** (max position + 1) − L. */
  ropeDelta: number;
  /** [start, end) of each placeholder run of the prompt, in the order of `plan.runs`. */
  spans: [number, number][];
}

/**
 * Positions of a prompt of L tokens whose <|image|> runs are, in order, the runs of `plan` (an image's run, or
 * one per temporal patch of a video). Run kinds and lengths must match the plan exactly.
 */
export function ropeIndex(ids: Int32Array | readonly number[], plan: MediaPlan, tokens: TokenIds): RopeIndex {
  const L = ids.length;
  const types = tokenTypes(ids, tokens);
  const pos = new Int32Array(3 * L);
  const spans: [number, number][] = [];
  let next = 0; // 1 + the largest position assigned so far (0 before any)
  for (let start = 0; start < L;) {
    const type = types[start];
    let end = start + 1;
    while (end < L && types[end] === type) end++;
    const base = next;
    if (type === TEXT) {
      for (let k = 0; k < end - start; k++) pos[start + k] = pos[L + start + k] = pos[2 * L + start + k] = base + k;
      next = base + end - start;
    } else {
      const run = plan.runs[spans.length];
      const kind = TYPE_NAMES[type];
      if (run === undefined || plan.kind !== kind) {
        const given = plan.kind === kind ? plan.grids.length : 0;
        throw new InputError(
          `ropeIndex: ${kind} placeholder run at token ${start} has no grid: only ${given} ${kind} grid(s) given`,
        );
      }
      if (end - start !== run.tokens) {
        const which = type === IMAGE ? `image ${run.media}` : `video ${run.media} temporal patch ${run.frame}`;
        throw new InputError(
          `ropeIndex: ${which} (grid ${JSON.stringify(plan.grids[run.media])}) needs ${run.tokens} placeholder tokens, the run at token ${start} has ${end - start}`,
        );
      }
      let i = start;
      for (let tt = 0; tt < run.frames; tt++) {
        for (let r = 0; r < run.rows; r++) {
          for (let c = 0; c < run.cols; c++, i++) {
            pos[i] = base + tt;
            pos[L + i] = base + r;
            pos[2 * L + i] = base + c;
          }
        }
      }
      next = base + Math.max(run.frames, run.rows, run.cols);
      spans.push([start, end]);
    }
    start = end;
  }
  if (spans.length !== plan.runs.length) throw new InputError(missingRuns(plan, spans.length));
  return { positions: pos, ropeDelta: next - L, spans };
}

/** The message for a prompt with fewer placeholder runs than the plan: which images or videos it lacks. */
function missingRuns(plan: MediaPlan, found: number): string {
  if (plan.kind === 'image')
    return `ropeIndex: ${plan.grids.length} image grid(s) given but the prompt has ${found} image placeholder run(s)`;
  const last = plan.runs[found - 1];
  const videos = last === undefined ? 0 : last.frame + 1 === plan.grids[last.media][0] ? last.media + 1 : last.media;
  const extra = last === undefined || videos === last.media + 1 ? 0 : last.frame + 1;
  return `ropeIndex: ${plan.grids.length} video grid(s) given but the prompt's video placeholder runs cover ${videos} video(s) and ${extra} extra temporal patch(es)`;
}
