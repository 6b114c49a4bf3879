// The conformance taps in forward order (docs/model.md#conformance-taps), each with its budget, and the one
// comparison every conformance test uses: it names the first tap outside its budget and prints each tap's
// measured error. A tap is required whenever the case has its modality: a fixture or an output without it fails.

import { type CloseReport, TOLERANCE, type Tolerance, compare } from '@glm4v/core/testing';
import type { KvDType } from '@glm4v/kernels';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type LogitsResult, SafetensorsFile } from '@glm4v/runtime/internal';

export const FIXTURES = join(import.meta.dirname, 'fixtures');
export const MANIFEST: { case: string; checkpoint: string; description: string }[] = JSON.parse(
  readFileSync(join(FIXTURES, 'manifest.json'), 'utf8'),
);

export type Modality = 'text' | 'image' | 'video';

export interface TapSpec {
  name: string;
  /** Only cases with this input have the tap; every other tap is in every case. */
  needs?: 'vision' | 'image' | 'video';
  /** The budget as a multiple of TOLERANCE.f32: the error of f32 arithmetic grows with depth. */
  f32: number;
  /** Computed after the decoder's first attention, so an f16 KV cache rounds into it (judged by TOLERANCE.f16). */
  afterAttention?: boolean;
}

/**
 * Forward order. The multiples leave at least 2× headroom over the errors measured on lavapipe (the f32 row
 * times 1 for the vision tower's taps, 2 for the merged embeddings, 4 after decoder layer 0, 8 at the end) and
 * are tight enough that an RMSNorm epsilon of 1e-6 instead of 1e-5, in either tower, fails (faults.test.ts).
 */
export const TAPS: readonly TapSpec[] = [
  { name: 'vision_patch_embed', needs: 'vision', f32: 1 },
  { name: 'vision_embeddings', needs: 'vision', f32: 1 },
  { name: 'vision_block0', needs: 'vision', f32: 1 },
  { name: 'vision_downsample', needs: 'vision', f32: 1 },
  { name: 'image_embeds', needs: 'image', f32: 2 },
  { name: 'video_embeds', needs: 'video', f32: 2 },
  { name: 'inputs_embeds', f32: 2 },
  { name: 'hidden_states_layer0', f32: 4, afterAttention: true },
  { name: 'last_hidden_state', f32: 8, afterAttention: true },
  { name: 'logits', f32: 8, afterAttention: true },
];

export const LOGITS_TAP = TAPS[TAPS.length - 1];

export function tolerance(tap: TapSpec, kv: KvDType = 'f32'): Tolerance {
  if (tap.afterAttention && kv === 'f16') return TOLERANCE.f16;
  return { atol: TOLERANCE.f32.atol * tap.f32, rtol: TOLERANCE.f32.rtol * tap.f32 };
}

/** Every F32, I64 and U8 tensor of a safetensors file, as float64. */
export async function readTensors(file: string): Promise<Map<string, Float64Array>> {
  const f = await SafetensorsFile.open(file);
  const out = new Map<string, Float64Array>();
  try {
    for (const info of f.tensors.values()) {
      const b = await f.read(info);
      const buf = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
      if (info.dtype === 'F32') out.set(info.name, Float64Array.from(new Float32Array(buf)));
      else if (info.dtype === 'I64') out.set(info.name, Float64Array.from(new BigInt64Array(buf), Number));
      else if (info.dtype === 'U8') out.set(info.name, Float64Array.from(new Uint8Array(buf)));
    }
  } finally {
    await f.close();
  }
  return out;
}

export function modalityOf(inputs: Map<string, Float64Array>): Modality {
  if (inputs.has('pixel_values_videos')) return 'video';
  return inputs.has('pixel_values') ? 'image' : 'text';
}

function applies(tap: TapSpec, m: Modality): boolean {
  return tap.needs === undefined || tap.needs === m || (tap.needs === 'vision' && m !== 'text');
}

export interface TapReport {
  /** Names the first tap outside its budget (or missing), with the worst element; undefined when all pass. */
  firstFailure?: string;
  /** One line per tap: max |Δ| / max |ref| and the worst error as a fraction of its budget. */
  lines: string[];
  /** The largest max |Δ| / max |ref| over the taps. */
  maxRelative: number;
}

/** Compares every tap of `expected`'s modality, in forward order, with the run's output. */
export function compareTaps(result: LogitsResult, expected: Map<string, Float64Array>, kv: KvDType = 'f32'): TapReport {
  const m = modalityOf(expected);
  const report: TapReport = { lines: [], maxRelative: 0 };
  const fail = (msg: string) => (report.firstFailure ??= msg);
  for (const tap of TAPS.filter((t) => applies(t, m))) {
    const ref = expected.get(tap.name);
    const got = tap.name === 'logits' ? result.logits : result.taps?.[tap.name];
    if (!ref || !got) {
      fail(`tap '${tap.name}' is missing from the ${ref ? 'output' : 'fixture'} (a ${m} case must have it)`);
      report.lines.push(`${tap.name.padEnd(21)} missing`);
      continue;
    }
    const r: CloseReport = compare(got, ref, tolerance(tap, kv), tap.name);
    const relative = r.maxAbs / ref.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
    report.maxRelative = Math.max(report.maxRelative, relative);
    report.lines.push(
      `${tap.name.padEnd(21)} max|Δ|/max|ref| ${relative.toExponential(2)}  worst ${r.ratio.toFixed(2)}× budget`,
    );
    if (!r.ok) fail(`first divergence at tap ${r.message}`);
  }
  return report;
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
