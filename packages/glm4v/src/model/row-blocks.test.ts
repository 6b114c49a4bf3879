import { describe, expect, it } from 'vitest';
import { rowBlocks } from './row-blocks.js';

describe('rowBlocks', () => {
  it('covers every row in blocks of a multiple of 64 rows that fit the binding', () => {
    const limit = 128 * 2 ** 20;
    const blocks = rowBlocks(limit, 10764, 4096); // a 1920×1080 image through the real ViT MLP
    expect(blocks).toEqual([
      [0, 8192],
      [8192, 10764],
    ]);
    for (const [a, b] of blocks) expect((b - a) * 4 * 4096).toBeLessThanOrEqual(limit);
    expect(rowBlocks(limit, 1296, 13696).map(([a, b]) => b - a)).toEqual([1296]);
    expect(rowBlocks(limit, 6032, 13696).every(([a]) => a % 64 === 0)).toBe(true);
    expect(rowBlocks(100, 130, 4096)).toEqual([
      [0, 64],
      [64, 128],
      [128, 130],
    ]); // never below 64 rows
    expect(rowBlocks(limit, 0, 8)).toEqual([]);
  });
});
