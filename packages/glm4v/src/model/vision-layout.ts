// Host-side bookkeeping for the vision tower: which image each patch belongs to, its row and column in that
// image's patch grid (merge-window order, docs/model.md#patchify), and the attention segments: one per frame of the
// media plan (media-plan.ts), an image's or a video's temporal patch (docs/model.md#video).

export interface VisionLayout {
  /** Patches in total (rows of pixel_values). */
  patches: number;
  /** i32 [S, 4]: (row, col, gh, gw) of every patch, for the position-table resampling. */
  patchInfo: Int32Array;
  /** i32 [S, 2]: (row, col) of every patch, for the 2-D rotary. */
  coords: Int32Array;
  /** Attention segment offsets [0, s1, ..., S]: one segment per frame. */
  segments: number[];
}

/** The layout of `frames` ([h, w] each, a media plan's frames: checked there). */
export function visionLayout(frames: readonly (readonly [number, number])[], mergeSize: number): VisionLayout {
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
