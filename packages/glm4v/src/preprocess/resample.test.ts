import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InputError } from '@glm4v/core';
import { readSafetensors } from '../../test-fixtures/read-safetensors.js';
import { resizeBicubic } from './resample.js';
import type { RgbImage } from './types.js';

const DIR = new URL('../../test-fixtures/preprocess/', import.meta.url);

/** The pattern of tools/make-preprocess-fixtures.py: noise, gradient and 0/255 checker blocks. */
export function patternImage(h: number, w: number, seed = 0): RgbImage {
  const data = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        const region = ((x >> 3) + (y >> 3)) % 3;
        let v: number;
        if (region === 0) {
          const hsh = (Math.imul(x, 2654435761 | 0) + y * 40503 + c * 97 + seed * 7919) >>> 0;
          v = (hsh >>> 7) & 255;
        } else if (region === 1) {
          v = (Math.floor((x * 255) / Math.max(w - 1, 1)) + y * 97 + c * 50) % 256;
        } else {
          v = ((x >> 1) + (y >> 1) + c) % 2 === 1 ? 255 : 0;
        }
        data[(y * w + x) * 3 + c] = v;
      }
    }
  }
  return { data, height: h, width: w };
}

function firstDiff(got: Uint8Array, want: Uint8Array, w: number): string {
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      const p = Math.floor(i / 3);
      return `first difference at (y=${Math.floor(p / w)}, x=${p % w}, c=${i % 3}): got ${got[i]}, PIL ${want[i]}`;
    }
  }
  return 'identical';
}

describe('resizeBicubic matches Pillow 9 Image.resize(BICUBIC) bit for bit', () => {
  const fixtures = readSafetensors(new URL('resize.safetensors', DIR).pathname);
  it('has fixtures', () => expect(fixtures.size).toBeGreaterThanOrEqual(10));
  for (const [name, t] of fixtures) {
    const [, h, w, H, W] = /^resize_(\d+)x(\d+)_to_(\d+)x(\d+)$/.exec(name)!.map(Number);
    it(`${h}x${w} -> ${H}x${W}`, () => {
      const out = resizeBicubic(patternImage(h, w, h * 1000 + w), H, W);
      expect([out.height, out.width]).toEqual([H, W]);
      expect(t.shape).toEqual([H, W, 3]);
      expect(firstDiff(out.data, t.data as Uint8Array, W)).toBe('identical');
    });
  }

  const hashes = JSON.parse(readFileSync(new URL('resize-hashes.json', DIR), 'utf8')) as Record<string, string>;
  for (const [name, sha] of Object.entries(hashes)) {
    const [, h, w, H, W] = /^resize_(\d+)x(\d+)_to_(\d+)x(\d+)$/.exec(name)!.map(Number);
    it(`${h}x${w} -> ${H}x${W} (sha256 of the whole output)`, () => {
      const out = resizeBicubic(patternImage(h, w, h * 1000 + w), H, W);
      expect(createHash('sha256').update(out.data).digest('hex')).toBe(sha);
    });
  }

  it('same size is an exact copy, not an alias', () => {
    const img = patternImage(9, 11);
    const out = resizeBicubic(img, 9, 11);
    expect(out.data).toEqual(img.data);
    expect(out.data).not.toBe(img.data);
  });

  it('rejects a buffer that does not match its size, and empty targets', () => {
    expect(() => resizeBicubic({ data: new Uint8Array(10), height: 2, width: 2 }, 4, 4)).toThrow(InputError);
    expect(() => resizeBicubic(patternImage(4, 4), 0, 4)).toThrow(/height must be a positive integer/);
  });
});
