// A compile error in a kernel built from prelude + embedded .wgsl files names the .wgsl file and its line.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device, ShaderCompileError } from '@glm4v/core';
import RMSNORM_WGSL from './rmsnorm.wgsl.js';
import WORKGROUP_SUM_WGSL from './workgroup_sum.wgsl.js';
import { prelude } from './prelude.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

describe('WGSL compile errors', () => {
  it('point at the line of the .wgsl file, after the generated prelude and another embedded file', async () => {
    const file = readFileSync(new URL('./rmsnorm.wgsl', import.meta.url), 'utf8').split('\n');
    const line = file.findIndex((l) => l.includes('inverseSqrt(')) + 1;
    const broken = RMSNORM_WGSL.replace('inverseSqrt(', 'inverse_sqrt_typo(');
    const code = prelude({ act: 'f32', weights: { w: 'f32' } }) + WORKGROUP_SUM_WGSL + broken;
    const err = await device.pipelines.get({ label: 'rmsnorm_typo', code }, []).catch((e) => e);
    expect(err).toBeInstanceOf(ShaderCompileError);
    expect(err.messages[0].source).toEqual({ file: 'kernels/src/rmsnorm.wgsl', line });
    expect(err.message).toMatch(new RegExp(`kernels/src/rmsnorm\\.wgsl:${line}:\\d+ error: .*inverse_sqrt_typo`));
    device.check();
  });
});
