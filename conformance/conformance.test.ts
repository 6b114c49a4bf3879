// The port against the reference dumps (conformance/fixtures, see its README): for every case, and again with an
// f16 KV cache, the taps in forward order with per-tap budgets (taps.ts), the argmax at every position, 8 greedy
// tokens through the KV-cache decode path, decode-step logits against a full recompute, and a chunked prefill.
// A failure names the first tap that diverges; each tap's measured error is printed.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device } from '@glm4v/core';
import { compare } from '@glm4v/core/testing';
import type { KvDType } from '@glm4v/kernels';
import {
  type Glm4vModel,
  type LogitsResult,
  SafetensorsFile,
  computeLogits,
  loadModel,
  readLogitsInputs,
} from '@glm4v/runtime/internal';
import { runCli } from '@glm4v/runtime/testing';
import { FIXTURES, LOGITS_TAP, MANIFEST, TAPS, argmaxRows, compareTaps, readTensors, tolerance } from './taps.js';

const RUNS = MANIFEST.flatMap((m) => (['f32', 'f16'] as KvDType[]).map((kv) => ({ ...m, kv })));

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

describe.each(RUNS)('conformance $case ($checkpoint, $kv KV cache): $description', ({ case: name, checkpoint, kv }) => {
  const file = join(FIXTURES, `case-${name}.safetensors`);
  const logitsTol = tolerance(LOGITS_TAP, kv);
  let result: LogitsResult;
  let expected: Map<string, Float64Array>;
  let skip: string | undefined;

  beforeAll(async () => {
    if (kv === 'f16' && !device.has('shader-f16')) {
      skip = 'the adapter lacks shader-f16';
      return;
    }
    expected = await readTensors(file);
    result = await computeLogits(await model(checkpoint), await readLogitsInputs(file), {
      greedy: 8,
      taps: true,
      kvCacheDType: kv,
    });
  });

  it('positions and rope delta are exact', (ctx) => {
    if (skip) return ctx.skip(skip);
    expect(Array.from(result.taps!.position_ids)).toEqual(Array.from(expected.get('position_ids')!));
    expect(result.ropeDelta).toBe(expected.get('rope_delta')![0]);
  });

  it(`every tap of the case's modality, in forward order, within its budget (first divergence named)`, (ctx) => {
    if (skip) return ctx.skip(skip);
    const report = compareTaps(result, expected, kv);
    console.log(`${name} (${kv} KV):\n  ${report.lines.join('\n  ')}`);
    if (report.firstFailure) expect.fail(report.firstFailure);
  });

  it('the same argmax at every position', (ctx) => {
    if (skip) return ctx.skip(skip);
    const [S, V] = result.shape;
    expect(argmaxRows(result.logits, S, V)).toEqual(argmaxRows(expected.get('logits')!, S, V));
  });

  it('8 greedy tokens through the KV-cache decode path', (ctx) => {
    if (skip) return ctx.skip(skip);
    expect(Array.from(result.greedyTokens!)).toEqual(Array.from(expected.get('greedy_tokens')!));
  });

  it('decode-step logits equal full-recompute logits', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const m = await model(checkpoint);
    const input = await readLogitsInputs(file);
    const S = input.ids.length;
    const steps = 3;
    const session = await m.createSession(S + steps + 1, kv);
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
    const full = await computeLogits(
      m,
      { ...input, ids: Int32Array.from([...input.ids, ...generated]) },
      { kvCacheDType: kv },
    );
    const V = m.config.text.vocabSize;
    for (let i = 0; i < steps; i++) {
      const r = compare(
        stepLogits[i],
        full.logits.subarray((S + i) * V, (S + i + 1) * V),
        logitsTol,
        `decode step ${i}`,
      );
      expect(r.ok, r.message).toBe(true);
    }
  });

  it('a prefill in chunks of 5 tokens equals one pass', async (ctx) => {
    if (skip) return ctx.skip(skip);
    const m = await model(checkpoint);
    const input = await readLogitsInputs(file);
    const session = await m.createSession(input.ids.length, kv);
    try {
      const chunked = await m.prefill(session, input, { allLogits: true, taps: true, chunkTokens: 5 });
      for (const tap of TAPS.filter((t) => t.afterAttention || t.name === 'inputs_embeds')) {
        const got = tap.name === 'logits' ? chunked.logits! : chunked.taps![tap.name];
        const r = compare(
          got,
          tap.name === 'logits' ? result.logits : result.taps![tap.name],
          tolerance(tap, kv),
          tap.name,
        );
        expect(r.ok, r.message).toBe(true);
      }
    } finally {
      session.dispose();
    }
  });
});

async function shapes(file: string): Promise<Map<string, number[]>> {
  const f = await SafetensorsFile.open(file);
  try {
    return new Map([...f.tensors.values()].map((t) => [t.name, [...t.shape]]));
  } finally {
    await f.close();
  }
}

describe('glm4v-run logits (the black-box entry point)', () => {
  it('writes the logits, greedy tokens and every tap of a case, named, shaped and typed as the fixtures', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'glm4v-logits-')), 'out.safetensors');
    const file = join(FIXTURES, 'case-b_image.safetensors');
    const r = await runCli([
      'logits',
      '--model',
      join(FIXTURES, 'tiny-glm4v-f32'),
      '--inputs',
      file,
      '--out',
      out,
      '--greedy',
      '8',
      '--taps',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const got = await readTensors(out);
    const ref = await readTensors(file);
    const taps = Object.fromEntries([...got].map(([k, v]) => [k, Float32Array.from(v)]));
    const report = compareTaps({ logits: taps.logits, shape: [0, 0], ropeDelta: 0, taps }, ref);
    if (report.firstFailure) expect.fail(report.firstFailure);
    for (const name of ['greedy_tokens', 'position_ids', 'rope_delta'])
      expect(Array.from(got.get(name)!), name).toEqual(Array.from(ref.get(name)!));
    const [gotShapes, refShapes] = [await shapes(out), await shapes(file)];
    for (const [name, shape] of gotShapes) expect(shape, name).toEqual(refShapes.get(name));
    rmSync(out, { force: true });
    const bad = await runCli([
      'logits',
      '--model',
      join(FIXTURES, 'tiny-glm4v-f32'),
      '--inputs',
      join(FIXTURES, 'nope.safetensors'),
      '--out',
      out,
    ]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/nope\.safetensors/);
  });
});
