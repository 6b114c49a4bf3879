import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Checkpoint } from '../checkpoint/checkpoint.js';
import { readConfigs } from '../config.js';
import { checkpointShapes } from './tensor-shapes.js';
import { glm41v9bConfig } from './glm41v-9b.js';

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

  it('adds up to the real model\'s 704 tensors and 10,292,777,472 parameters (spec §1.1, §3.2)', () => {
    const all = checkpointShapes(glm41v9bConfig());
    expect(all).toHaveLength(704);
    expect(all.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0)).toBe(10_292_777_472);
  });
});
