// The tensor-core kernel where no tensor cores are: its WGSL with the real subgroup-matrix builtins checked by
// Dawn's shader compiler (the null backend exposes the feature but runs nothing), and the choice of matrix shape
// from an adapter's configs. Its arithmetic is checked in matmul.test.ts: on the matrix units where the adapter has
// them, and with scalar stand-ins for the builtins everywhere.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device } from '@glm4v/core';
import { LINEAR_PRESETS, linearSource, matmulWeightDType, selectLinearPreset } from './matmul.js';
import {
  type MatrixShape,
  type SubgroupMatrixPreset,
  matrixShapeFor,
  subgroupMatrixKernel,
  subgroupMatrixSource,
  subgroupMatrixBytes,
} from './matmul_subgroup_matrix.js';

let nullDevice: Device | undefined;
let why = '';
beforeAll(async () => {
  try {
    nullDevice = await Device.create({ backend: 'null' });
    if (!nullDevice.has('chromium-experimental-subgroup-matrix'))
      why = "Dawn's null backend does not offer chromium-experimental-subgroup-matrix here";
  } catch (e) {
    why = `Dawn's null backend is unavailable: ${(e as Error).message}`;
  }
});
afterAll(() => nullDevice?.dispose());

/** Compiler messages for a module (errors and warnings: the builtins' older forms warn as deprecated). */
async function messages(device: Device, code: string): Promise<string[]> {
  const m = device.gpu.createShaderModule({ code, label: 'subgroup-matrix-check' });
  const info = await m.getCompilationInfo();
  return info.messages.map((x) => `${x.type} ${x.lineNum}:${x.linePos} ${x.message.split('\n')[0]}`);
}

// The shapes real adapters report (NVIDIA and AMD f16 16×16×16, Intel f16 8×16×16, Apple f32 8×8×8) with their
// subgroup sizes, in every dtype combination the wrapper can build.
const SHAPES: [MatrixShape, number][] = [
  [{ operand: 'f16', M: 16, N: 16, K: 16 }, 32],
  [{ operand: 'f16', M: 8, N: 16, K: 16 }, 16],
  [{ operand: 'f32', M: 8, N: 8, K: 8 }, 32],
];

describe('tensor-core kernel WGSL (Dawn null backend)', () => {
  for (const [shape, sg] of SHAPES) {
    for (const [act, vector] of [
      ['f32', true],
      ['f16', false],
    ] as const) {
      it(`compiles cleanly with ${shape.operand} ${shape.M}×${shape.N}×${shape.K} matrices, subgroups of ${sg}, ${act} x, ${vector ? 'vec4' : 'per-element'} weights`, async (ctx) => {
        if (!nullDevice || why) return ctx.skip(why);
        const k = subgroupMatrixSource(LINEAR_PRESETS.sm128x128, shape, sg, 16, false);
        const code = linearSource(
          { head: k.head, code: k.tail, subgroups: true },
          { act, wd: vector ? 'f16' : 'bf16', bias: act, vector },
        );
        expect(await messages(nullDevice, code)).toEqual([]);
      });
    }
  }

  it('builds a pipeline where the limits allow it', async (ctx) => {
    if (!nullDevice || why) return ctx.skip(why);
    // The null adapter's subgroups are up to 128 wide and its workgroups at most 256: one row of two subgroups.
    const preset: SubgroupMatrixPreset = { kind: 'subgroupMatrix', BM: 32, BN: 64, SGM: 1, SGN: 2 };
    const shape: MatrixShape = { operand: 'f16', M: 16, N: 16, K: 16 };
    const k = subgroupMatrixKernel(nullDevice, preset, 'sm32x64', { shape });
    expect(k.WG).toBe(2 * nullDevice.adapter.subgroupMaxSize!);
    const code = linearSource(
      { head: k.head, code: k.tail, subgroups: true },
      { act: 'f32', wd: 'f16', bias: 'f32', vector: true },
    );
    await expect(
      nullDevice.pipelines.get({ label: 'sm32x64_check', code }, ['uniform', 'read', 'read', 'read', 'write']),
    ).resolves.toBeDefined();
  });
});

/** A stand-in device with the given subgroup-matrix configs and limits. */
function fakeDevice(
  configs: { componentType: string; resultComponentType: string; M: number; N: number; K: number }[],
  o: { f16?: boolean; sg?: number; storage?: number } = {},
): Device {
  const features = new Set([
    'subgroups',
    'chromium-experimental-subgroup-matrix',
    ...(o.f16 === false ? [] : ['shader-f16']),
  ]);
  return {
    has: (f: string) => features.has(f),
    adapter: {
      subgroupMinSize: o.sg ?? 32,
      subgroupMaxSize: o.sg ?? 32,
      subgroupMatrixConfigs: configs,
      isFallbackAdapter: false,
      architecture: 'fake',
    },
    limits: {
      maxComputeInvocationsPerWorkgroup: 1024,
      maxComputeWorkgroupSizeX: 1024,
      maxComputeWorkgroupStorageSize: o.storage ?? 32768,
    },
  } as unknown as Device;
}

describe('matrix shape choice', () => {
  const preset = LINEAR_PRESETS.sm128x128;
  const f16f16 = { componentType: 'f16', resultComponentType: 'f16', M: 16, N: 16, K: 16 };
  const f16f32 = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
  const f32f32 = { componentType: 'f32', resultComponentType: 'f32', M: 8, N: 8, K: 8 };

  it('takes f16 operands with f32 results, never f16 accumulation', () => {
    expect(matrixShapeFor(fakeDevice([f16f16, f16f32]), preset)).toEqual({ operand: 'f16', M: 16, N: 16, K: 16 });
    expect(matrixShapeFor(fakeDevice([f16f16, f32f32]), preset)).toEqual({ operand: 'f32', M: 8, N: 8, K: 8 });
    expect(matrixShapeFor(fakeDevice([f16f16]), preset)).toBeUndefined();
  });

  it('needs shader-f16 for f16 operands', () => {
    expect(matrixShapeFor(fakeDevice([f16f32], { f16: false }), preset)).toBeUndefined();
  });

  it('picks the deepest k-tile that fits workgroup memory, and refuses when none does', () => {
    const d = fakeDevice([f16f32]);
    const k = subgroupMatrixKernel(d, preset, 'sm128x128');
    expect(k.BK).toBe(16); // 32 would need 2·256·32·2 + 8·256·4 = 40960 bytes
    expect(k.workgroupBytes).toBe(subgroupMatrixBytes(preset, { operand: 'f16', M: 16, N: 16, K: 16 }, 16));
    expect(k.workgroupBytes).toBeLessThanOrEqual(32768);
    expect(matrixShapeFor(fakeDevice([f16f32], { storage: 16384 }), preset)).toBeUndefined();
    expect(() => subgroupMatrixKernel(fakeDevice([f16f32], { storage: 16384 }), preset, 'sm128x128')).toThrow(
      /sm128x128.*lacks/,
    );
  });

  it('refuses a workgroup larger than the device allows', () => {
    expect(matrixShapeFor(fakeDevice([f16f32], { sg: 256 }), preset)).toBeUndefined();
  });
});

describe('GPU variant choice', () => {
  it('takes the matrix units from 64 rows when they take the weight, else 128-row tiles by width', () => {
    const tc = fakeDevice([{ componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 }]);
    expect(matmulWeightDType(tc)).toBe('f16');
    expect(selectLinearPreset(tc, 8, 'matvec', { N: 4096, dtype: 'f16' })).toBe('sk32u4');
    expect(selectLinearPreset(tc, 63, 'matmul', { N: 4096, dtype: 'f16' })).toBe('32x64x16');
    expect(selectLinearPreset(tc, 64, 'matmul', { N: 4096, dtype: 'f16' })).toBe('sm128x128');
    // a bf16 weight (not converted: the patch embedding) cannot feed f16 operands unchecked
    expect(selectLinearPreset(tc, 64, 'matmul', { N: 4096, dtype: 'bf16' })).toBe('64x64x16');
    expect(selectLinearPreset(tc, 512, 'matmul', { N: 4096, dtype: 'bf16' })).toBe('128x64x8'); // 4 · 32 = 128 large tiles
    expect(selectLinearPreset(tc, 2048, 'matmul', { N: 4096, dtype: 'bf16' })).toBe('128x128x8'); // 16 · 32 = 512
    const apple = fakeDevice([{ componentType: 'f32', resultComponentType: 'f32', M: 8, N: 8, K: 8 }]);
    expect(matmulWeightDType(apple)).toBeUndefined(); // f32 operands take the weights as stored
    expect(selectLinearPreset(apple, 512, 'matmul', { N: 4096, dtype: 'bf16' })).toBe('sm128x128');
    const none = fakeDevice([]);
    expect(matmulWeightDType(none)).toBeUndefined();
    expect(selectLinearPreset(none, 100, 'matmul', { N: 4096, dtype: 'f16' })).toBe('64x64x16');
  });
});
