import { describe, expect, it } from 'vitest';
import { InputError } from '@glm4v/core';
import { checkGrid, type Grid, planMedia } from './media-plan.js';
import { visionLayout } from './model/vision-layout.js';
import { expandPlaceholders } from './prompt/placeholders.js';
import { ropeIndex } from './rope-index.js';

const TOKENS = { imageStart: 299, imageEnd: 300, videoStart: 301, videoEnd: 302, image: 303, video: 304, eos: [289] };
const BAD: [string, unknown][] = [
  ['h not divisible by the merge size', [1, 3, 2]],
  ['w not divisible by the merge size', [1, 2, 5]],
  ['a zero t', [0, 2, 2]],
  ['a negative h', [1, -2, 2]],
  ['a fractional w', [1, 2, 2.5]],
  ['two entries', [2, 2]],
  ['four entries', [1, 2, 2, 1]],
  ['not an array', 'x'],
];

describe('checkGrid: one rule, checked when the media plan is made', () => {
  it('accepts positive integer grids with h, w divisible by the merge size', () => {
    for (const g of [
      [1, 2, 2],
      [3, 4, 6],
      [1, 96, 2],
    ] as Grid[])
      expect(() => checkGrid(g, 2, 'x')).not.toThrow();
    expect(() => checkGrid([1, 3, 6], 3, 'x')).not.toThrow();
  });

  for (const [what, g] of BAD) {
    it(`refuses ${what}, for images and videos alike`, () => {
      const grid = g as Grid;
      const msg = `grid ${JSON.stringify(g)} must be 3 positive integers [t, h, w] with h and w divisible by 2`;
      const calls: [string, () => unknown][] = [
        ['checkGrid', () => checkGrid(grid, 2, 'checkGrid')],
        ['prepare: image 0', () => planMedia([grid], [], 2, 'prepare')],
        ['prepare: video 0', () => planMedia([], [grid], 2, 'prepare')],
        ['prefill: image 1', () => planMedia([[1, 2, 2], grid], [], 2, 'prefill')],
      ];
      for (const [prefix, call] of calls) {
        expect(call).toThrow(InputError);
        expect(call).toThrow(`${prefix} ${msg}`);
      }
    });
  }
});

describe("planMedia: the one reading of a prompt's images or video", () => {
  it('an image is one run and t frames; a video is one frame and one run per temporal patch', () => {
    const images = planMedia(
      [
        [1, 4, 6],
        [2, 2, 2],
      ],
      [],
      2,
      'x',
    );
    expect(images.kind).toBe('image');
    expect(images.frames).toEqual([
      [4, 6],
      [2, 2],
      [2, 2],
    ]);
    expect(images.runs.map((r) => [r.media, r.frame, r.frames, r.rows, r.cols, r.tokens])).toEqual([
      [0, 0, 1, 2, 3, 6],
      [1, 0, 2, 1, 1, 2],
    ]);
    expect([images.patches, images.tokens]).toEqual([32, 8]);
    const video = planMedia(
      [],
      [
        [3, 4, 4],
        [1, 2, 2],
      ],
      2,
      'x',
    );
    expect(video.kind).toBe('video');
    expect(video.frames).toEqual([
      [4, 4],
      [4, 4],
      [4, 4],
      [2, 2],
    ]);
    expect(video.runs.map((r) => [r.media, r.frame, r.frames, r.tokens])).toEqual([
      [0, 0, 1, 4],
      [0, 1, 1, 4],
      [0, 2, 1, 4],
      [1, 0, 1, 1],
    ]);
    expect([video.patches, video.tokens]).toEqual([52, 13]);
    expect(planMedia([], [], 2, 'x')).toMatchObject({ kind: undefined, frames: [], runs: [], patches: 0, tokens: 0 });
  });

  it('refuses images and videos together, and a bad merge size', () => {
    expect(() => planMedia([[1, 2, 2]], [[1, 2, 2]], 2, 'x')).toThrow(
      /images or videos, not both \(got 1 image\(s\) and 1 video\(s\)\)/,
    );
    expect(() => planMedia([], [], 0, 'x')).toThrow(/x: mergeSize must be a positive integer/);
  });

  it('placeholders, positions and the vision layout agree on one plan', () => {
    const plan = planMedia([], [[2, 2, 4]], 2, 'x');
    const text = expandPlaceholders('a<|video|>b', plan, [[0, 1.5]]);
    expect(text).toBe(
      'a<|begin_of_image|><|image|><|image|><|end_of_image|>0<|begin_of_image|><|image|><|image|><|end_of_image|>1b',
    );
    const ids = [1, TOKENS.videoStart, 299, 303, 303, 300, 2, 299, 303, 303, 300, 3, TOKENS.videoEnd, 4];
    const rope = ropeIndex(ids, plan, TOKENS);
    expect(rope.spans).toEqual([
      [3, 5],
      [8, 10],
    ]);
    expect(visionLayout(plan.frames, 2).segments).toEqual([0, 8, 16]);
  });
});
