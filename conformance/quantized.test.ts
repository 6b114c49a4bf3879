// Quantised weights on the conformance cases. Two questions, kept apart:
// 1. Are the quantised kernels and loader right? The model with q8/q4 weights must give the logits of the float
//    model whose weights are the dequantised values (within the f32 conformance tolerance): any difference is a bug.
// 2. What does quantisation cost? For each case and format: top-1 agreement with the reference at every prompt
//    position, the max relative logit error, and the 8 greedy tokens (free-running, and teacher-forced on the
//    reference's own continuation), printed as a table. These tiny checkpoints have random weights, whose layers
//    amplify weight noise several-fold, so the figures are harsher than a real checkpoint's (docs/quantization.md).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkedTensor, Device } from '@glm4v/core';
import { QUANT_FORMATS, dequantizeRows, quantizeRows, widenToF32 } from '@glm4v/kernels';
import {
  Checkpoint,
  Glm4vModel,
  type LogitsResult,
  type PrefillInput,
  type QuantRequest,
  SafetensorsFile,
  WeightLoader,
  type WeightSource,
  computeLogits,
  loadModel,
  readConfigs,
  readLogitsInputs,
} from '@glm4v/runtime/internal';
import { runCli } from '@glm4v/runtime/testing';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const MANIFEST: { case: string; checkpoint: string }[] = JSON.parse(
  readFileSync(join(FIXTURES, 'manifest.json'), 'utf8'),
);
const REL_TOL = 1e-4;
/** The text format, and the vision tower's where it is quantised too (the configuration for 8 GB GPUs). */
const CONFIGS: { label: string; formats: QuantRequest }[] = [
  { label: 'q8', formats: { text: 'q8' } },
  { label: 'q4', formats: { text: 'q4' } },
  { label: 'q4, vision q8', formats: { text: 'q4', vision: 'q8' } },
];

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

/** The checkpoint's weights, the linear ones of each group in `formats` replaced by their quantised-then-dequantised values (f32). */
function dequantised(w: WeightSource, ckpt: Checkpoint, formats: QuantRequest, prefix = ''): WeightSource {
  const key = (n: string) => (prefix ? `${prefix}.${n}` : n);
  return {
    scope: (p) => dequantised(w.scope(p), ckpt, formats, key(p)),
    get: (n, shape, o) => w.get(n, shape, o),
    matrix: (n, shape, o) => w.matrix(n, shape, o),
    quantizable: async (n, [N, K], group, ranges = [[0, N]]) => {
      const format = formats[group];
      if (!format) return w.quantizable(n, [N, K], group, ranges);
      const info = ckpt.tensors.get(key(n))!;
      const bytes = await ckpt.read(info);
      const src = widenToF32(info.dtype === 'BF16' ? 'bf16' : 'f32', bytes, new Float32Array(N * K));
      const layout = QUANT_FORMATS[format];
      const values = Float32Array.from(dequantizeRows(layout, quantizeRows(layout, src, N, K, n), N, K));
      return Promise.all(
        ranges.map(([a, b]) => ChunkedTensor.fromArray(device, 'f32', [b - a, K], values.subarray(a * K, b * K), n)),
      );
    },
  };
}

async function floatOfDequantised(checkpoint: string, formats: QuantRequest): Promise<Glm4vModel> {
  const dir = join(FIXTURES, checkpoint);
  const { model: config } = await readConfigs(dir);
  const ckpt = await Checkpoint.open(dir);
  const loader = new WeightLoader(ckpt, device);
  try {
    return await Glm4vModel.build(device, config, dequantised(loader.scope(''), ckpt, formats));
  } finally {
    await ckpt.close();
  }
}

async function readRef(file: string): Promise<{ logits: Float32Array; greedy: number[] }> {
  const f = await SafetensorsFile.open(file);
  try {
    const l = await f.read(f.tensors.get('logits')!);
    const g = await f.read(f.tensors.get('greedy_tokens')!);
    return {
      logits: new Float32Array(l.buffer.slice(l.byteOffset, l.byteOffset + l.byteLength)),
      greedy: Array.from(new BigInt64Array(g.buffer.slice(g.byteOffset, g.byteOffset + g.byteLength)), Number),
    };
  } finally {
    await f.close();
  }
}

function argmax(v: ArrayLike<number>, from: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (v[from + i] > v[from + best]) best = i;
  return best;
}

function maxRel(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < ref.length; i++) {
    d = Math.max(d, Number.isNaN(got[i]) ? Infinity : Math.abs(got[i] - ref[i]));
    s = Math.max(s, Math.abs(ref[i]));
  }
  return d / s;
}

interface Fidelity {
  case: string;
  format: string;
  top1: number;
  maxRelLogitError: number;
  greedySame: boolean;
  teacherForcedSame: number;
}
const table: Fidelity[] = [];
afterAll(() => {
  console.log('quantised weights on the conformance cases (vision tower bf16 unless said):');
  console.table(
    table.map((r) => ({
      ...r,
      top1: `${(100 * r.top1).toFixed(1)}%`,
      maxRelLogitError: r.maxRelLogitError.toExponential(2),
      teacherForcedSame: `${r.teacherForcedSame}/8`,
    })),
  );
});

describe.each(MANIFEST)('quantised $case ($checkpoint)', ({ case: name, checkpoint }) => {
  const file = join(FIXTURES, `case-${name}.safetensors`);
  let input: PrefillInput;
  let ref: { logits: Float32Array; greedy: number[] };
  beforeAll(async () => {
    input = await readLogitsInputs(file);
    ref = await readRef(file);
  });

  for (const { label, formats } of CONFIGS) {
    it(`${label}: the logits of the float model on the dequantised weights; fidelity reported`, async (ctx) => {
      if (formats.vision && !input.images) return ctx.skip('no image: the vision tower does not run');
      const { model } = await loadModel(join(FIXTURES, checkpoint), device, { quantFormats: formats });
      const float = await floatOfDequantised(checkpoint, formats);
      let got: LogitsResult;
      let forced: LogitsResult;
      try {
        got = await computeLogits(model, input, { greedy: 8 });
        const want = await computeLogits(float, input);
        const e = maxRel(got.logits, want.logits);
        expect(e, `${label} kernels vs the float model on dequantised weights`).toBeLessThanOrEqual(REL_TOL);
        forced = await computeLogits(model, {
          ...input,
          ids: Int32Array.from([...input.ids, ...ref.greedy.slice(0, 7)]),
        });
      } finally {
        model.dispose();
        float.dispose();
      }
      const S = input.ids.length;
      const V = got.shape[1];
      let agree = 0;
      for (let s = 0; s < S; s++) agree += argmax(got.logits, s * V, V) === argmax(ref.logits, s * V, V) ? 1 : 0;
      let forcedSame = 0;
      for (let i = 0; i < 8; i++) forcedSame += argmax(forced.logits, (S - 1 + i) * V, V) === ref.greedy[i] ? 1 : 0;
      const row = {
        case: name,
        format: label,
        top1: agree / S,
        maxRelLogitError: maxRel(got.logits, ref.logits),
        greedySame: Array.from(got.greedyTokens!).join() === ref.greedy.join(),
        teacherForcedSame: forcedSame,
      };
      table.push(row);
      // Floors below the measured figures (docs/quantization.md): they fail when quantisation breaks, not
      // when a near-tie flips. A random vocabulary of 512 would agree at 0.2% of positions.
      if (formats.text === 'q8') {
        expect(row.top1).toBeGreaterThanOrEqual(0.8); // e_video: 28 of 33
        expect(row.maxRelLogitError).toBeLessThan(0.1); // e_video: 7.1e-2
        expect(row.teacherForcedSame).toBeGreaterThanOrEqual(7);
      } else {
        expect(row.top1).toBeGreaterThanOrEqual(0.25);
        expect(row.maxRelLogitError).toBeLessThan(0.9);
      }
    });
  }
});

describe('glm4v-run logits --quant (the black-box entry point)', () => {
  it('writes the logits of the in-process quantised model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'glm4v-qlogits-'));
    const out = join(dir, 'out.safetensors');
    const file = join(FIXTURES, 'case-a_text.safetensors');
    const r = await runCli([
      'logits',
      '--model',
      join(FIXTURES, 'tiny-glm4v-f32'),
      '--inputs',
      file,
      '--out',
      out,
      '--quant',
      'q4',
      '--greedy',
      '8',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const { model } = await loadModel(join(FIXTURES, 'tiny-glm4v-f32'), device, { quantFormats: { text: 'q4' } });
    const want = await computeLogits(model, await readLogitsInputs(file), { greedy: 8 });
    model.dispose();
    const got = await readRef(out);
    expect(maxRel(got.logits, want.logits)).toBeLessThanOrEqual(REL_TOL);
    expect(got.greedy).toEqual(Array.from(want.greedyTokens!));
    rmSync(dir, { recursive: true, force: true });
    const bad = await runCli([
      'logits',
      '--model',
      join(FIXTURES, 'tiny-glm4v-f32'),
      '--inputs',
      file,
      '--out',
      out,
      '--quant',
      'q5',
    ]);
    expect(bad.code).toBe(2);
  });
});
