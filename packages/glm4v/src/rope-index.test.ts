import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InputError } from '@glm4v/core';
import { readSafetensors, toNumbers } from '../test-fixtures/read-safetensors.js';
import { parseModelConfig, type TokenIds } from './config.js';
import { type Grid, planMedia } from './media-plan.js';
import { ropeIndex } from './rope-index.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const cfgFile = `${ROOT}conformance/fixtures/tiny-glm4v-f32/config.json`;
const TINY: TokenIds = parseModelConfig(JSON.parse(readFileSync(cfgFile, 'utf8')), cfgFile).tokens;
const REAL: TokenIds = {
  imageStart: 151339,
  imageEnd: 151340,
  videoStart: 151341,
  videoEnd: 151342,
  image: 151343,
  video: 151344,
  eos: [151329],
};

/**
 * Independent reference: the running-offset form (docs/model.md#rope-index): a text token advances the
 * offset by 1, an image or one video temporal patch by max(gh, gw)/2, with all media tokens at the offset.
 */
function runningOffset(
  ids: number[],
  images: number[][],
  videos: number[][],
  tok: TokenIds,
): { pos: number[][]; delta: number } {
  const pos: number[][] = [[], [], []];
  let cur = 0;
  let inVideo = false;
  let img = 0;
  let vid = 0;
  let frame = 0;
  for (let i = 0; i < ids.length;) {
    if (ids[i] === tok.videoStart) inVideo = true;
    if (ids[i] === tok.videoEnd) inVideo = false;
    if (ids[i] !== tok.image) {
      for (const s of pos) s.push(cur);
      cur++;
      i++;
      continue;
    }
    const [, gh, gw] = inVideo ? videos[vid] : images[img];
    for (let r = 0; r < gh / 2; r++) {
      for (let c = 0; c < gw / 2; c++, i++) {
        pos[0].push(cur);
        pos[1].push(cur + r);
        pos[2].push(cur + c);
      }
    }
    cur += Math.max(gh, gw) / 2;
    if (!inVideo) img++;
    else if (++frame === videos[vid][0]) {
      vid++;
      frame = 0;
    }
  }
  return { pos, delta: cur - ids.length };
}

/** ropeIndex over the plan of `images` or `videos` (merge size 2). */
const rope = (ids: Int32Array | number[], images: Grid[], videos: Grid[], tok: TokenIds) =>
  ropeIndex(ids, planMedia(images, videos, 2, 'ropeIndex'), tok);

function rows(p: Int32Array, L: number): number[][] {
  return [0, 1, 2].map((r) => Array.from(p.subarray(r * L, (r + 1) * L)));
}

describe('ropeIndex against the conformance dumps', () => {
  for (const name of ['case-a_text', 'case-b_image', 'case-d_bf16_image']) {
    it(name, () => {
      const f = readSafetensors(`${ROOT}conformance/fixtures/${name}.safetensors`);
      const ids = toNumbers(f.get('input_ids')!);
      const grids = f.has('image_grid_thw') ? [toNumbers(f.get('image_grid_thw')!) as [number, number, number]] : [];
      const { positions, ropeDelta } = rope(ids, grids, [], TINY);
      expect(Array.from(positions)).toEqual(toNumbers(f.get('position_ids')!));
      expect(ropeDelta).toBe(toNumbers(f.get('rope_delta')!)[0]);
    });
  }
});

describe('ropeIndex layouts', () => {
  const { imageStart: BOI, imageEnd: EOI, videoStart: BOV, videoEnd: EOV, image: IMG } = REAL;

  it('docs/model.md#worked-example: grid [1,4,6], m = 3 trailing tokens → ropeDelta −3', () => {
    const m = 3;
    const ids = [151331, 151333, 151336, 198, BOI, ...Array(6).fill(IMG), EOI, ...Array(m).fill(100)];
    const { positions, ropeDelta } = rope(ids, [[1, 4, 6]], [], REAL);
    const L = ids.length;
    expect(L).toBe(12 + m);
    const [t, h, w] = rows(positions, L);
    expect(t).toEqual([0, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 8, 9, 10, 11]);
    expect(h).toEqual([0, 1, 2, 3, 4, 5, 5, 5, 6, 6, 6, 8, 9, 10, 11]);
    expect(w).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8, 9, 10, 11]);
    expect(ropeDelta).toBe(-3);
    expect(rope(ids, [[1, 4, 6]], [], REAL).spans).toEqual([[5, 11]]);
    // The first generated token (cache index L) sits at max + 1.
    expect(L + ropeDelta).toBe(9 + m);
  });

  it('text only: 0 … L−1 on every stream, delta 0', () => {
    const { positions, ropeDelta } = rope(new Int32Array([5, 6, 7, 8]), [], [], REAL);
    expect(rows(positions, 4)).toEqual([
      [0, 1, 2, 3],
      [0, 1, 2, 3],
      [0, 1, 2, 3],
    ]);
    expect(ropeDelta).toBe(0);
  });

  it('a tall image pushes the following text by its height, two images in order', () => {
    const ids = [1, BOI, ...Array(8).fill(IMG), EOI, 2, BOI, ...Array(6).fill(IMG), EOI, 3];
    const grids: [number, number, number][] = [
      [1, 8, 4],
      [1, 4, 6],
    ];
    const got = rope(ids, grids, [], REAL);
    const ref = runningOffset(ids, grids, [], REAL);
    expect(rows(got.positions, ids.length)).toEqual(ref.pos);
    expect(got.ropeDelta).toBe(ref.delta);
    expect(got.positions[ids.length + 2 + 7]).toBe(2 + 3); // last token of image 0: row 3 of 4 (h stream)
  });

  it('video: one run per temporal patch, separated by timestamps; equal to the running-offset form', () => {
    // 2 videos, grids [3, 4, 6] and [1, 2, 2]; frames <boi> 6×<img> <eoi> ts
    const frame = (n: number, ts: number) => [BOI, ...Array(n).fill(IMG), EOI, 15 + ts];
    const ids = [7, 8, BOV, ...frame(6, 0), ...frame(6, 1), ...frame(6, 2), EOV, 9, BOV, ...frame(1, 0), EOV, 10, 11];
    const videos: [number, number, number][] = [
      [3, 4, 6],
      [1, 2, 2],
    ];
    const got = rope(ids, [], videos, REAL);
    const ref = runningOffset(ids, [], videos, REAL);
    expect(rows(got.positions, ids.length)).toEqual(ref.pos);
    expect(got.ropeDelta).toBe(ref.delta);
    // every temporal patch has a constant t equal to its base
    const t0 = got.positions[4];
    expect(Array.from(got.positions.subarray(4, 10))).toEqual(Array(6).fill(t0));
  });

  it('placeholder counts that disagree with the grids are InputErrors', () => {
    const ids = [1, BOI, ...Array(5).fill(IMG), EOI];
    expect(() => rope(ids, [[1, 4, 6]], [], REAL)).toThrow(
      /image 0 \(grid \[1,4,6\]\) needs 6 placeholder tokens, the run at token 2 has 5/,
    );
    expect(() => rope(ids, [], [], REAL)).toThrow(/image placeholder run at token 2 has no grid/);
    expect(() => rope([1, 2], [[1, 2, 2]], [], REAL)).toThrow(/1 image grid\(s\) given but the prompt has 0/);
    expect(() => rope([1], [[1, 3, 2]], [], REAL)).toThrow(InputError);
    const vids = [BOV, BOI, IMG, EOI, EOV];
    expect(() => rope(vids, [], [[2, 2, 2]], REAL)).toThrow(/cover 0 video\(s\) and 1 extra temporal patch/);
    expect(() =>
      rope(
        [...vids, ...vids],
        [],
        [
          [1, 2, 2],
          [2, 2, 2],
        ],
        REAL,
      ),
    ).toThrow(/cover 1 video\(s\) and 1 extra temporal patch/);
  });
});
