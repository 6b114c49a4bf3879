// The [t, h, w] patch grid of an image or video (docs/model.md#patchify, #video): t temporal patches of h×w patches each, h and w
// multiples of the spatial merge size. One check for every consumer (placeholders, rope index, vision layout).

import { InputError } from '@glm4v/core';

export type Grid = readonly [number, number, number];

/** InputError (prefixed by `what`) unless `g` is 3 positive integers with h and w divisible by `mergeSize`. */
export function checkGrid(g: Grid, mergeSize: number, what: string): void {
  const ok = Array.isArray(g) && g.length === 3 && g.every((v) => Number.isInteger(v) && v >= 1) && g[1] % mergeSize === 0 && g[2] % mergeSize === 0;
  if (!ok) throw new InputError(`${what} grid ${JSON.stringify(g)} must be 3 positive integers [t, h, w] with h and w divisible by ${mergeSize}`);
}
