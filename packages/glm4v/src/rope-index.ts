// 3-D rotary position ids for the decoder (Glm4vModel.get_rope_index; docs/model.md#rope-index), prefill of one sequence.
// Tokens are grouped into runs of one type: TEXT, IMAGE (<|image|> outside a video) and VIDEO (<|image|> between
// <|begin_of_video|> and <|end_of_video|>). Each run starts at base = 1 + the largest position assigned so far
// on any stream (0 at the start). Text advances all three streams together; an image run lays its merged grid
// out as (base + t, base + row, base + col); a video run is one temporal patch at (base, base + row, base + col).
// Decoding continues at position (cache index + ropeDelta) on all streams (docs/model.md#decode-positions).

import { InputError } from '@glm4v/core';
import type { TokenIds } from './config.js';
import { checkGrid, type Grid } from './grid.js';

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

/**
 * positions [3, L] (rows t, h, w) and ropeDelta = (max position + 1) − L for a prompt of L tokens whose
 * <|image|> runs are described, in order, by `imageGrids` (one run per image) and `videoGrids` (one run per
 * temporal patch, gt runs per video). Run lengths must match the grids exactly.
 */
export function ropeIndex(
  ids: Int32Array | readonly number[], imageGrids: readonly Grid[], videoGrids: readonly Grid[],
  tokens: TokenIds, mergeSize: number,
): { positions: Int32Array; ropeDelta: number } {
  if (!Number.isInteger(mergeSize) || mergeSize < 1) throw new InputError(`ropeIndex: mergeSize must be a positive integer, got ${mergeSize}`);
  imageGrids.forEach((g, i) => checkGrid(g, mergeSize, `ropeIndex: image ${i}`));
  videoGrids.forEach((g, i) => checkGrid(g, mergeSize, `ropeIndex: video ${i}`));
  const L = ids.length;
  const types = tokenTypes(ids, tokens);
  const pos = new Int32Array(3 * L);
  let next = 0; // 1 + the largest position assigned so far (0 before any)
  let img = 0;
  let vid = 0;
  let frame = 0;
  for (let start = 0; start < L;) {
    const type = types[start];
    let end = start + 1;
    while (end < L && types[end] === type) end++;
    const len = end - start;
    const base = next;
    if (type === TEXT) {
      for (let k = 0; k < len; k++) pos[start + k] = pos[L + start + k] = pos[2 * L + start + k] = base + k;
      next = base + len;
    } else {
      const isImage = type === IMAGE;
      const grids = isImage ? imageGrids : videoGrids;
      const gi = isImage ? img : vid;
      if (gi >= grids.length) {
        throw new InputError(`ropeIndex: ${TYPE_NAMES[type]} placeholder run at token ${start} has no grid: only ${grids.length} ${TYPE_NAMES[type]} grid(s) given`);
      }
      const [gt, gh, gw] = grids[gi];
      const hm = gh / mergeSize;
      const wm = gw / mergeSize;
      const frames = isImage ? gt : 1; // a video run is one temporal patch
      if (len !== frames * hm * wm) {
        const which = isImage ? `image ${gi}` : `video ${gi} temporal patch ${frame}`;
        throw new InputError(`ropeIndex: ${which} (grid ${JSON.stringify(grids[gi])}) needs ${frames * hm * wm} placeholder tokens, the run at token ${start} has ${len}`);
      }
      let i = start;
      for (let tt = 0; tt < frames; tt++) {
        for (let r = 0; r < hm; r++) {
          for (let c = 0; c < wm; c++, i++) {
            pos[i] = base + tt;
            pos[L + i] = base + r;
            pos[2 * L + i] = base + c;
          }
        }
      }
      next = base + Math.max(frames, hm, wm);
      if (isImage) img++;
      else if (++frame === gt) {
        vid++;
        frame = 0;
      }
    }
    start = end;
  }
  if (img !== imageGrids.length) throw new InputError(`ropeIndex: ${imageGrids.length} image grid(s) given but the prompt has ${img} image placeholder run(s)`);
  if (vid !== videoGrids.length || frame !== 0) {
    throw new InputError(`ropeIndex: ${videoGrids.length} video grid(s) given but the prompt's video placeholder runs cover ${vid} video(s) and ${frame} extra temporal patch(es)`);
  }
  return { positions: pos, ropeDelta: next - L };
}
