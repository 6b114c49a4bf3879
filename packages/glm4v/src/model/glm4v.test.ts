// Model-level behaviour the conformance cases do not reach: vision batching under a binding limit, several
// images and a video in one request, inputs that must be refused.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { CheckpointError, ChunkedTensor, Device, Graph, InputError, LimitError, Tensor } from '@glm4v/core';
import { normal } from '@glm4v/core/testing';
import { visionLayout } from './vision-layout.js';
import { loadModel } from './load-model.js';
import type { Glm4vModel, Taps } from './glm4v.js';
import { computeLogits, readLogitsInputs } from '../logits-tool.js';

const FIXTURES = join(import.meta.dirname, '../../../../conformance/fixtures');
let device: Device;
let model: Glm4vModel;
beforeAll(async () => {
  device = await Device.create();
  model = (await loadModel(join(FIXTURES, 'tiny-glm4v-f32'), device)).model;
});
afterAll(() => {
  model?.dispose();
  device?.dispose();
});

describe('Glm4vModel.encodeVision', () => {
  it('gives the same embeddings when the images run in separate batches, and refuses an image that cannot fit', async () => {
    const { images } = await readLogitsInputs(join(FIXTURES, 'case-b_image.safetensors'));
    const [t, h, w] = images!.grids[0];
    const two = {
      pixelValues: Float32Array.from([...images!.pixelValues, ...images!.pixelValues.map((v) => -v)]),
      grids: [images!.grids[0], [t, h, w]] as [number, number, number][],
    };
    const together = await model.encodeVision(two);
    // room for one image's widest activation (the merger's inner width per patch here), not two
    const v = model.config.vision;
    const perPatch = 4 * Math.max(1176, v.hiddenSize, v.outHiddenSize / 4);
    const apart = await model.encodeVision(two, h * w * perPatch);
    expect(Array.from(await apart.read())).toEqual(Array.from(await together.read()));
    const rows = (h * w) / 4;
    const a = await together.read();
    expect(Array.from(a.subarray(0, 8))).not.toEqual(Array.from(a.subarray(rows * 64, rows * 64 + 8))); // two different images
    await expect(model.encodeVision(two, h * w * perPatch - 4)).rejects.toBeInstanceOf(LimitError);
    together.dispose();
    apart.dispose();
  });

  it('collects the vision taps of every batch, in patch order', async () => {
    const { images } = await readLogitsInputs(join(FIXTURES, 'case-b_image.safetensors'));
    const [, h, w] = images!.grids[0];
    const pixelValues = Float32Array.from([...images!.pixelValues, ...images!.pixelValues.map((v) => -v)]);
    const two = { pixelValues, grids: [images!.grids[0], images!.grids[0]] };
    const whole: Taps = {};
    const apart: Taps = {};
    (await model.encodeVision(two, undefined, whole)).dispose();
    (await model.encodeVision(two, h * w * 4 * 1176, apart)).dispose(); // one image per batch
    const c = model.config.vision;
    const D = c.hiddenSize;
    const valuesPerPatch = {
      vision_patch_embed: D,
      vision_embeddings: D,
      vision_block0: D,
      vision_downsample: c.outHiddenSize / 4,
    };
    for (const [name, n] of Object.entries(valuesPerPatch)) {
      expect(whole[name].length, name).toBe(2 * h * w * n);
      expect(Array.from(apart[name]), name).toEqual(Array.from(whole[name]));
    }
  });

  it('gives the same embeddings when the MLP and the merger run in row blocks', async () => {
    const layout = visionLayout([[32, 16]], 2); // 512 patches: 8 MLP blocks and 2 merger blocks of 64 rows
    const pixels = await Tensor.fromArray(device, 'f32', [512, 1176], normal(512 * 1176, 3));
    const info = await Tensor.fromArray(device, 'i32', [512, 4], layout.patchInfo);
    const coords = await Tensor.fromArray(device, 'i32', [512, 2], layout.coords);
    const run = async (maxBindingBytes: number) => {
      const g = new Graph(device);
      const out = g.keep(
        model.vision.forward(g, { pixels, patchInfo: info, coords, segments: layout.segments, maxBindingBytes }),
      );
      await g.run();
      const r = await out.read();
      g.dispose();
      return r;
    };
    const whole = await run(device.limits.maxStorageBufferBindingSize);
    const blocked = await run(64 * 4 * model.config.vision.outHiddenSize); // exactly 64 rows of the MLP's [rows, F]
    const scale = Math.max(...whole.map(Math.abs));
    expect(Math.max(...whole.map((x, i) => Math.abs(x - blocked[i])))).toBeLessThanOrEqual(1e-6 * scale);
    [pixels, info, coords].forEach((t) => t.dispose());
  });

  it('refuses pixel values that disagree with the grids, and placeholder counts that disagree with the images', async () => {
    const input = await readLogitsInputs(join(FIXTURES, 'case-b_image.safetensors'));
    await expect(
      model.encodeVision({ pixelValues: input.images!.pixelValues.subarray(1176), grids: input.images!.grids }),
    ).rejects.toBeInstanceOf(InputError);
    const session = await model.createSession(64);
    const ids = input.ids.filter((id, i) => !(id === model.config.tokens.image && i === 6)); // one placeholder short
    await expect(model.prefill(session, { ...input, ids: Int32Array.from(ids) })).rejects.toThrow(
      /5 image placeholder tokens.*give 6/,
    );
    await expect(model.prefill(session, { ids: Int32Array.from([1, 2, 9999]) })).rejects.toThrow(
      /9999 at 2 is outside the vocabulary/,
    );
    session.dispose();
  });
});

describe('Glm4vModel.prefill', () => {
  it('appending to a session equals one prefill of everything (positions continue after an image)', async () => {
    const input = await readLogitsInputs(join(FIXTURES, 'case-b_image.safetensors'));
    const more = Int32Array.from([12, 40, 7, 99]);
    const whole = { ...input, ids: Int32Array.from([...input.ids, ...more]) };
    const one = await model.createSession(64);
    const two = await model.createSession(64);
    try {
      const a = await model.prefill(one, whole, { allLogits: true });
      await model.prefill(two, input);
      const b = await model.prefill(two, { ids: more }, { allLogits: true });
      expect(two.length).toBe(one.length);
      expect(two.ropeDelta).toBe(one.ropeDelta);
      const V = model.config.text.vocabSize;
      const tail = a.logits!.subarray((whole.ids.length - more.length) * V);
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < tail.length; i++) {
        diff = Math.max(diff, Math.abs(tail[i] - b.logits![i]));
        scale = Math.max(scale, Math.abs(tail[i]));
      }
      expect(diff).toBeLessThanOrEqual(1e-5 * scale);
      // and the next decode step agrees
      const steps = await Promise.all([one, two].map((s) => model.recordDecode(s.pool, 1, { keepLogits: true })));
      await Promise.all(steps.map((st, i) => st.run([[one, two][i]])));
      const [la, lb] = await Promise.all(steps.map((st) => st.logits!.read()));
      expect(Math.max(...la.map((v, i) => Math.abs(v - lb[i])))).toBeLessThanOrEqual(1e-5 * scale);
      steps.forEach((st) => st.dispose());
    } finally {
      one.dispose();
      two.dispose();
    }
  });
});

describe('loadModel', () => {
  it('frees everything, the permuted downsample weight included, when the checkpoint has a key the model does not take', async () => {
    const { mkdtemp, copyFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { SafetensorsFile } = await import('../checkpoint/safetensors.js');
    const { writeSafetensors } = await import('../checkpoint/writer.js');
    const src = join(FIXTURES, 'tiny-glm4v-f32');
    const dir = await mkdtemp(join(tmpdir(), 'glm4v-extra-'));
    for (const f of ['config.json', 'generation_config.json', 'preprocessor_config.json'])
      await copyFile(join(src, f), join(dir, f));
    const file = await SafetensorsFile.open(join(src, 'model.safetensors'));
    const tensors = [];
    for (const info of file.tensors.values())
      tensors.push({ name: info.name, dtype: info.dtype, shape: info.shape, data: await file.read(info) });
    await file.close();
    tensors.push({ name: 'model.visual.extra.weight', dtype: 'F32' as const, shape: [4], data: new Uint8Array(16) });
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    const before = device.pool.stats.bytesInUse;
    await expect(loadModel(dir, device)).rejects.toThrow(/model\.visual\.extra\.weight/);
    expect(device.pool.stats.bytesInUse).toBe(before);
    await rm(dir, { recursive: true, force: true });
  });
});

describe("f16 matrices (the tensor-core matmul's weights, forced here)", () => {
  it('keep the bf16 conformance case within tolerance, with the same greedy tokens', async () => {
    const { SafetensorsFile } = await import('../checkpoint/safetensors.js');
    const file = join(FIXTURES, 'case-d_bf16_image.safetensors');
    const m = (await loadModel(join(FIXTURES, 'tiny-glm4v-bf16'), device, { f16Matrices: true })).model;
    try {
      expect(
        [m.text.layers[0].gateUpProj, m.vision.blocks[0].q, m.text.lmHead].map((w) =>
          w instanceof ChunkedTensor ? w.dtype : 'quantised',
        ),
      ).toEqual(['f16', 'f16', 'f16']);
      const got = await computeLogits(m, await readLogitsInputs(file), { greedy: 8 });
      const dump = await SafetensorsFile.open(file);
      const bytes = async (name: string) => {
        const b = await dump.read(dump.tensors.get(name)!);
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
      };
      const logits = new Float32Array(await bytes('logits'));
      const greedy = Array.from(new BigInt64Array(await bytes('greedy_tokens')), Number);
      await dump.close();
      // as conformance.test.ts: max |Δ| ≤ 1e-4 · max |reference|. bf16 → f16 is exact above 2⁻¹⁴; the weights
      // below it (|w| < 6.1e-5) round to f16 subnormals.
      const scale = Math.max(...logits.map(Math.abs));
      expect(Math.max(...got.logits.map((v, i) => Math.abs(v - logits[i])))).toBeLessThanOrEqual(1e-4 * scale);
      expect(Array.from(got.greedyTokens!)).toEqual(greedy);
    } finally {
      m.dispose();
    }
  });

  it("refuse a checkpoint value beyond f16's range, naming the tensor, and free everything", async () => {
    const { mkdtemp, copyFile, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { SafetensorsFile } = await import('../checkpoint/safetensors.js');
    const { writeSafetensors } = await import('../checkpoint/writer.js');
    const src = join(FIXTURES, 'tiny-glm4v-bf16');
    const dir = await mkdtemp(join(tmpdir(), 'glm4v-f16-'));
    for (const f of ['config.json', 'generation_config.json', 'preprocessor_config.json'])
      await copyFile(join(src, f), join(dir, f));
    const file = await SafetensorsFile.open(join(src, 'model.safetensors'));
    const tensors = [];
    const key = 'model.language_model.layers.0.mlp.down_proj.weight';
    for (const info of file.tensors.values()) {
      const data = new Uint8Array(await file.read(info));
      if (info.name === key) new DataView(data.buffer, data.byteOffset).setUint16(6, 0x47c3, true); // element 3 = 99840 (bf16)
      tensors.push({ name: info.name, dtype: info.dtype, shape: info.shape, data });
    }
    await file.close();
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    const before = device.pool.stats.bytesInUse;
    const err = await loadModel(dir, device, { f16Matrices: true }).catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.message).toMatch(
      /tensor 'model\.language_model\.layers\.0\.mlp\.down_proj\.weight': 1 value\(s\) beyond f16's range/,
    );
    expect(device.pool.stats.bytesInUse).toBe(before);
    const asStored = await loadModel(dir, device); // as stored (bf16), the value is fine
    asStored.model.dispose();
    await rm(dir, { recursive: true, force: true });
  });
});
