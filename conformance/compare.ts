// What the conformance suites share (conformance.test.ts under Node, web/browser.test.ts in a page): the cases,
// the tolerance, the tap order, the reference dumps, and the comparisons.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '@glm4v/runtime/internal';

export const FIXTURES = join(import.meta.dirname, 'fixtures');
export const MANIFEST: { case: string; checkpoint: string; description: string }[] = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8'));
/** f32 activations: max |Δ| ≤ 1e-4 · max |ref| for every tap and the logits (fixtures README). */
export const REL_TOL = 1e-4;
export const TAP_ORDER = ['image_embeds', 'inputs_embeds', 'hidden_states_layer0', 'last_hidden_state', 'logits'];

export async function readExpected(file: string): Promise<Map<string, Float64Array>> {
  const f = await SafetensorsFile.open(file);
  const out = new Map<string, Float64Array>();
  try {
    for (const info of f.tensors.values()) {
      const b = await f.read(info);
      const buf = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
      if (info.dtype === 'F32') out.set(info.name, Float64Array.from(new Float32Array(buf)));
      else if (info.dtype === 'I64') out.set(info.name, Float64Array.from(new BigInt64Array(buf), Number));
    }
  } finally {
    await f.close();
  }
  return out;
}

export function maxAbsDiff(got: ArrayLike<number>, ref: ArrayLike<number>): { diff: number; scale: number; at: number } {
  let diff = 0;
  let scale = 0;
  let at = -1;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= diff)) {
      diff = Number.isNaN(d) ? Infinity : d;
      at = i;
    }
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return { diff, scale, at };
}

export function argmaxRows(v: ArrayLike<number>, rows: number, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (v[r * cols + c] > v[r * cols + best]) best = c;
    out.push(best);
  }
  return out;
}


/**
 * The taps in forward order, then the logits, each within REL_TOL of the largest |reference|: the worst ratio of
 * each, and a message naming the first that diverges (undefined when none does).
 */
export function compareTaps(got: (tap: string) => ArrayLike<number> | undefined, expected: Map<string, Float64Array>): { worst: string[]; failure?: string } {
  const worst: string[] = [];
  for (const tap of TAP_ORDER) {
    const ref = expected.get(tap);
    if (!ref) continue;
    const g = got(tap);
    if (!g) return { worst, failure: `tap '${tap}' missing from the output` };
    if (g.length !== ref.length) return { worst, failure: `tap '${tap}': ${g.length} values, expected ${ref.length}` };
    const { diff, scale, at } = maxAbsDiff(g, ref);
    worst.push(`${tap} ${(diff / scale).toExponential(2)}`);
    if (!(diff <= REL_TOL * scale)) {
      return { worst, failure: `first divergence at tap '${tap}': max |Δ| ${diff.toExponential(3)} at [${at}] (got ${g[at]}, expected ${ref[at]}) > ${REL_TOL} × ${scale.toExponential(3)}` };
    }
  }
  return { worst };
}
