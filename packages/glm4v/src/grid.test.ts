import { describe, expect, it } from 'vitest';
import { InputError } from '@glm4v/core';
import { checkGrid, type Grid } from './grid.js';
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

describe('checkGrid: one rule for every consumer of [t, h, w] grids', () => {
  it('accepts positive integer grids with h, w divisible by the merge size', () => {
    for (const g of [[1, 2, 2], [3, 4, 6], [1, 96, 2]] as Grid[]) expect(() => checkGrid(g, 2, 'x')).not.toThrow();
    expect(() => checkGrid([1, 3, 6], 3, 'x')).not.toThrow();
  });

  for (const [what, g] of BAD) {
    it(`refuses ${what}, in expandPlaceholders, ropeIndex and visionLayout alike`, () => {
      const grid = g as Grid;
      const msg = `grid ${JSON.stringify(g)} must be 3 positive integers [t, h, w] with h and w divisible by 2`;
      const calls: [string, () => unknown][] = [
        ['checkGrid', () => checkGrid(grid, 2, 'checkGrid')],
        ['expandPlaceholders: image 0', () => expandPlaceholders('<|image|>', [grid], [], 2)],
        ['expandPlaceholders: video 0', () => expandPlaceholders('<|video|>', [], [{ grid, timestamps: [0] }], 2)],
        ['ropeIndex: image 0', () => ropeIndex([303], [grid], [], TOKENS, 2)],
        ['ropeIndex: video 0', () => ropeIndex([303], [], [grid], TOKENS, 2)],
        ['visionLayout: entry 0', () => visionLayout([grid], 2)],
      ];
      for (const [prefix, call] of calls) {
        expect(call).toThrow(InputError);
        expect(call).toThrow(`${prefix} ${msg}`);
      }
    });
  }
});
