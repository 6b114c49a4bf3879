import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fileURLToPath } from 'node:url';
import { Device, LimitError, OutOfMemoryError, sizeClass } from '@glm4v/core';
import { rejectionOf } from '@glm4v/core/testing';
import { loadModel } from '../model/load-model.js';
import { Checkpoint } from './checkpoint.js';
import { planWeights, quantizedWeights } from './plan.js';
import { readConfigs } from '../config.js';
import { asFolder } from '../files/folder.js';
import { SafetensorsFile } from './safetensors.js';

const FIXTURE = fileURLToPath(new URL('../../../../conformance/fixtures/tiny-glm4v-f32/', import.meta.url));

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

describe('planWeights / checkWeightsFit: the weights measured against the device before any data is read', () => {
  it('plans one buffer per row chunk, as the loader allocates them', async () => {
    const ckpt = await Checkpoint.open(FIXTURE);
    const whole = planWeights(ckpt, device);
    expect(whole.buffers.length).toBe(ckpt.tensors.size); // the tiny tensors fit one binding each
    expect(whole.bytes).toBe([...ckpt.tensors.values()].reduce((s, t) => s + sizeClass(t.byteLength), 0));
    const chunked = planWeights(ckpt, device, { maxChunkBytes: 8192 }); // 8 KiB chunks: [512, 64] f32 rows of 256 B, 32 rows each
    expect(chunked.buffers.length).toBeGreaterThan(whole.buffers.length);
    expect(chunked.buffers.filter((b) => b > 8192)).toEqual([]);
    await ckpt.close();
  });

  it('a row that cannot fit is a LimitError naming the tensor and the limit', async () => {
    const ckpt = await Checkpoint.open(FIXTURE);
    const e = (() => {
      try {
        planWeights(ckpt, device, { maxChunkBytes: 128 });
      } catch (err) {
        return err as Error;
      }
    })();
    expect(e).toBeInstanceOf(LimitError);
    expect(e!.message).toMatch(
      /model.safetensors: tensor '.*' \[\d+, \d+\]: one row of \d+ bytes does not fit a storage binding of 128 bytes \(the maxChunkBytes option\)/,
    );
    await ckpt.close();
  });

  it('too little GPU memory: an OutOfMemoryError with what is needed and what was had, before any tensor byte is read', async () => {
    const probe = vi.spyOn(device.pool, 'probe').mockResolvedValue(123_456);
    const reads = vi.spyOn(SafetensorsFile.prototype, 'readInto');
    try {
      const e = await rejectionOf(loadModel(FIXTURE, device));
      expect(e).toBeInstanceOf(OutOfMemoryError);
      expect(e.message).toMatch(
        /tiny-glm4v-f32: the weights need 0\.00 GiB of GPU memory; this device ran out after 0\.00 GiB/,
      );
      expect(reads).not.toHaveBeenCalled();
      expect(device.pool.stats.bytesInUse).toBe(0);
    } finally {
      probe.mockRestore();
      reads.mockRestore();
    }
  });

  it('quantised on load: the plan counts the packed weights, so a model that fits quantised is not refused for its float size', async () => {
    const ckpt = await Checkpoint.open(FIXTURE);
    const config = (await readConfigs(asFolder(FIXTURE))).model;
    const float = planWeights(ckpt, device);
    const q4 = planWeights(ckpt, device, { quantized: quantizedWeights(ckpt, config, { text: 'q4', vision: 'q4' }) });
    await ckpt.close();
    expect(q4.bytes).toBeLessThan(float.bytes / 2.5); // f32 → 4.5 bits a weight for most of it (norms, biases stay f32)
    // a device with room for the q4 weights only
    const probe = vi.spyOn(device.pool, 'probe').mockImplementation(async (buffers) =>
      Math.min(
        q4.bytes,
        buffers.reduce((a, b) => a + b, 0),
      ),
    );
    try {
      expect(await rejectionOf(loadModel(FIXTURE, device))).toBeInstanceOf(OutOfMemoryError);
      const before = device.pool.stats.bytesInUse;
      const { model } = await loadModel(FIXTURE, device, { quantFormats: { text: 'q4', vision: 'q4' } });
      // the plan is what the load holds, within the layout steps the model takes itself (the permuted downsample weight)
      expect(Math.abs(device.pool.stats.bytesInUse - before - q4.bytes)).toBeLessThan(0.1 * q4.bytes);
      model.dispose();
    } finally {
      probe.mockRestore();
    }
  });
});
