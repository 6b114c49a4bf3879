// Host-side bookkeeping for the vision tower: which image each patch belongs to, its row and column in that
// image's patch grid (merge-window order, docs/model.md#patchify), and the attention segments. A video's temporal patches are
// each their own "image" with grid [1, h, w] (docs/model.md#video).

import { checkGrid, type Grid } from '../grid.js';

export type { Grid };

export interface VisionLayout {
  /** Patches in total (rows of pixel_values). */
  patches: number;
  /** i32 [S, 4]: (row, col, gh, gw) of every patch, for the position-table resampling. */
  patchInfo: Int32Array;
  /** i32 [S, 2]: (row, col) of every patch, for the 2-D rotary. */
  coords: Int32Array;
  /** Attention segment offsets [0, s1, ..., S]: one segment per image or video temporal patch. */
  segments: number[];
}

export function visionLayout(grids: readonly Grid[], mergeSize: number): VisionLayout {
  const frames: [number, number][] = [];
  grids.forEach((g, i) => checkGrid(g, mergeSize, `visionLayout: entry ${i}`));
  for (const [t, gh, gw] of grids) {
    for (let i = 0; i < t; i++) frames.push([gh, gw]);
  }
  const patches = frames.reduce((s, [h, w]) => s + h * w, 0);
  const patchInfo = new Int32Array(patches * 4);
  const coords = new Int32Array(patches * 2);
  const segments = [0];
  let k = 0;
  for (const [gh, gw] of frames) {
    for (let bh = 0; bh < gh / mergeSize; bh++) {
      for (let bw = 0; bw < gw / mergeSize; bw++) {
        for (let mh = 0; mh < mergeSize; mh++) {
          for (let mw = 0; mw < mergeSize; mw++, k++) {
            const r = bh * mergeSize + mh;
            const c = bw * mergeSize + mw;
            patchInfo.set([r, c, gh, gw], 4 * k);
            coords.set([r, c], 2 * k);
          }
        }
      }
    }
    segments.push(k);
  }
  return { patches, patchInfo, coords, segments };
}
