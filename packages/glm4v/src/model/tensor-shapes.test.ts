import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Device } from '@glm4v/core';
import { Checkpoint } from '../checkpoint/checkpoint.js';
import { WeightLoader } from '../checkpoint/weight-loader.js';
import { readConfigs } from '../config.js';
import { checkpointShapes } from './tensor-shapes.js';
import { glm41v9bConfig } from './glm41v-9b.js';
import { Glm4vModel } from './glm4v.js';
import type { WeightSource } from './weight-source.js';

const FIXTURES = join(import.meta.dirname, '../../../../conformance/fixtures');

describe('checkpointShapes', () => {
  it('lists exactly the tensors of the reference tiny checkpoint, with their shapes', async () => {
    const dir = join(FIXTURES, 'tiny-glm4v-f32');
    const { model } = await readConfigs(dir);
    const ckpt = await Checkpoint.open(dir);
    const stored = new Map([...ckpt.tensors.values()].map((t) => [t.name, t.shape]));
    await ckpt.close();
    const listed = new Map(checkpointShapes(model).map((t) => [t.name, t.shape]));
    expect([...listed.keys()].sort()).toEqual([...stored.keys()].sort());
    for (const [name, shape] of listed) expect(shape, name).toEqual(stored.get(name));
  });

  it("adds up to the real model's 704 tensors and 10,292,777,472 parameters (docs/model.md#sizes)", () => {
    const all = checkpointShapes(glm41v9bConfig());
    expect(all).toHaveLength(704);
    expect(all.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0)).toBe(10_292_777_472);
  });

  it('marks exactly the weights the model loads as linear layers, with their groups', async () => {
    const dir = join(FIXTURES, 'tiny-glm4v-f32');
    const { model: config } = await readConfigs(dir);
    const device = await Device.create();
    const ckpt = await Checkpoint.open(dir);
    const loader = new WeightLoader(ckpt, device);
    const asked = new Map<string, string>();
    const join2 = (a: string, b: string) => (a && b ? `${a}.${b}` : a || b);
    const record = (w: WeightSource, prefix: string): WeightSource => ({
      scope: (p) => record(w.scope(p), join2(prefix, p)),
      get: (n, shape, o) => w.get(n, shape, o),
      matrix: (n, shape, o) => w.matrix(n, shape, o),
      quantizable: (n, shape, group, ranges) => {
        asked.set(join2(prefix, n), group);
        return w.quantizable(n, shape, group, ranges);
      },
    });
    try {
      (await Glm4vModel.build(device, config, record(loader.scope(''), ''))).dispose();
      loader.finish();
    } finally {
      loader.dispose();
      await ckpt.close();
      device.dispose();
    }
    const listed = checkpointShapes(config)
      .filter((t) => t.quant)
      .map((t) => [t.name, t.quant!] as const);
    expect([...asked].sort()).toEqual(listed.sort());
  });
});
