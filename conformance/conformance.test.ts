// The port against the reference dumps (conformance/fixtures, see its README): for every case, the taps in
// forward order, then the logits at every position, then 8 greedy tokens through the KV-cache decode path, and
// decode-step logits against a full recompute. A failure names the first tap that diverges.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device } from '@glm4v/core';
import { type Glm4vModel, type LogitsResult, SafetensorsFile, computeLogits, loadModel, readLogitsInputs } from '@glm4v/runtime/internal';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const MANIFEST: { case: string; checkpoint: string; description: string }[] = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8'));
/** f32 activations: max |Δ| ≤ 1e-4 · max |ref| for every tap and the logits (fixtures README). */
const REL_TOL = 1e-4;
const TAP_ORDER = ['image_embeds', 'inputs_embeds', 'hidden_states_layer0', 'last_hidden_state', 'logits'];

let device: Device;
const models = new Map<string, Glm4vModel>();
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => {
  for (const m of models.values()) m.dispose();
  device?.dispose();
});

async function model(checkpoint: string): Promise<Glm4vModel> {
  let m = models.get(checkpoint);
  if (!m) {
    m = (await loadModel(join(FIXTURES, checkpoint), device)).model;
    models.set(checkpoint, m);
  }
  return m;
}

async function readExpected(file: string): Promise<Map<string, Float64Array>> {
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

function maxAbsDiff(got: ArrayLike<number>, ref: ArrayLike<number>): { diff: number; scale: number; at: number } {
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

function argmaxRows(v: ArrayLike<number>, rows: number, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (v[r * cols + c] > v[r * cols + best]) best = c;
    out.push(best);
  }
  return out;
}

describe.each(MANIFEST)('conformance $case ($checkpoint): $description', ({ case: name, checkpoint }) => {
  const file = join(FIXTURES, `case-${name}.safetensors`);
  let result: LogitsResult;
  let expected: Map<string, Float64Array>;

  beforeAll(async () => {
    expected = await readExpected(file);
    result = await computeLogits(await model(checkpoint), await readLogitsInputs(file), { greedy: 8, taps: true });
  });

  it('positions and rope delta are exact', () => {
    expect(Array.from(result.taps!.position_ids)).toEqual(Array.from(expected.get('position_ids')!));
    expect(result.ropeDelta).toBe(expected.get('rope_delta')![0]);
  });

  it('every tap, then the logits, within 1e-4 of the largest |reference| (first divergence named)', () => {
    const worst: string[] = [];
    for (const tap of TAP_ORDER) {
      const ref = expected.get(tap);
      if (!ref) continue;
      const got = tap === 'logits' ? result.logits : result.taps![tap];
      expect(got, `tap '${tap}' missing from the output`).toBeDefined();
      expect(got.length, `tap '${tap}' length`).toBe(ref.length);
      const { diff, scale, at } = maxAbsDiff(got, ref);
      worst.push(`${tap} ${(diff / scale).toExponential(2)}`);
      if (!(diff <= REL_TOL * scale)) {
        expect.fail(`first divergence at tap '${tap}': max |Δ| ${diff.toExponential(3)} at [${at}] (got ${got[at]}, expected ${ref[at]}) > ${REL_TOL} × ${scale.toExponential(3)}`);
      }
    }
    console.log(`${name}: max |Δ| / max |ref| — ${worst.join(', ')}`);
  });

  it('the same argmax at every position', () => {
    const [S, V] = result.shape;
    expect(argmaxRows(result.logits, S, V)).toEqual(argmaxRows(expected.get('logits')!, S, V));
  });

  it('8 greedy tokens through the KV-cache decode path', () => {
    expect(Array.from(result.greedyTokens!)).toEqual(Array.from(expected.get('greedy_tokens')!));
  });

  it('decode-step logits equal full-recompute logits', async () => {
    const m = await model(checkpoint);
    const input = await readLogitsInputs(file);
    const S = input.ids.length;
    const steps = 3;
    const session = await m.createSession(S + steps + 1);
    const generated: number[] = [];
    const stepLogits: Float32Array[] = [];
    try {
      await m.prefill(session, input);
      const step = await m.recordDecode(session.pool, 1, { keepLogits: true });
      for (let i = 0; i < steps; i++) {
        generated.push(await session.readToken());
        await step.run([session]);
        stepLogits.push((await step.logits!.read()) as Float32Array);
      }
      step.dispose();
    } finally {
      session.dispose();
    }
    const full = await computeLogits(m, { ...input, ids: Int32Array.from([...input.ids, ...generated]) });
    const V = m.config.text.vocabSize;
    for (let i = 0; i < steps; i++) {
      const ref = full.logits.subarray((S + i) * V, (S + i + 1) * V);
      const { diff, scale } = maxAbsDiff(stepLogits[i], ref);
      expect(diff, `decode step ${i}`).toBeLessThanOrEqual(REL_TOL * scale);
    }
  });

  it('a prefill in chunks of 5 tokens equals one pass', async () => {
    const m = await model(checkpoint);
    const input = await readLogitsInputs(file);
    const session = await m.createSession(input.ids.length);
    try {
      const chunked = await m.prefill(session, input, { allLogits: true, taps: true, chunkTokens: 5 });
      for (const tap of ['inputs_embeds', 'hidden_states_layer0', 'last_hidden_state']) {
        const { diff, scale } = maxAbsDiff(chunked.taps![tap], result.taps![tap]);
        expect(diff, tap).toBeLessThanOrEqual(REL_TOL * scale);
      }
      const { diff, scale } = maxAbsDiff(chunked.logits!, result.logits);
      expect(diff, 'logits').toBeLessThanOrEqual(REL_TOL * scale);
    } finally {
      session.dispose();
    }
  });
});

describe('glm4v-run logits (the black-box entry point)', () => {
  it('writes the logits, greedy tokens and taps of a case, named and typed as the fixtures', async () => {
    const cli = join(import.meta.dirname, '../packages/glm4v/dist/cli.js');
    const out = join(mkdtempSync(join(tmpdir(), 'glm4v-logits-')), 'out.safetensors');
    const file = join(FIXTURES, 'case-b_image.safetensors');
    const r = spawnSync(process.execPath, [cli, 'logits', '--model', join(FIXTURES, 'tiny-glm4v-f32'), '--inputs', file, '--out', out, '--greedy', '8', '--taps'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const got = await readExpected(out);
    const ref = await readExpected(file);
    for (const name of ['logits', 'image_embeds', 'inputs_embeds', 'hidden_states_layer0', 'last_hidden_state']) {
      const { diff, scale } = maxAbsDiff(got.get(name)!, ref.get(name)!);
      expect(diff, name).toBeLessThanOrEqual(REL_TOL * scale);
    }
    for (const name of ['greedy_tokens', 'position_ids', 'rope_delta']) expect(Array.from(got.get(name)!), name).toEqual(Array.from(ref.get(name)!));
    rmSync(out, { force: true });
    const bad = spawnSync(process.execPath, [cli, 'logits', '--model', join(FIXTURES, 'tiny-glm4v-f32'), '--inputs', join(FIXTURES, 'nope.safetensors'), '--out', out], { encoding: 'utf8' });
    expect(bad.status).toBe(3);
    expect(bad.stderr).toMatch(/nope\.safetensors/);
  });
});
