import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Device } from './device.js';
import { Graph } from './graph.js';
import { Tensor } from './tensor.js';
import { DeviceError, DeviceLostError } from './errors.js';

describe('Device', () => {
  it('describes the adapter, its features and limits', async () => {
    const device = await Device.create();
    expect(device.describe()).toMatch(/max storage binding \d+ MiB/);
    expect(device.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(device.adapter.backend).toBe(process.env.GLM4V_BACKEND ?? 'vulkan');
    device.dispose();
    device.dispose(); // twice is fine
    expect(() => device.check()).toThrow(/disposed/);
  });

  it('turns a lost device into DeviceLostError at the next operation', async () => {
    const device = await Device.create();
    const t = await Tensor.fromArray(device, 'f32', [4], [1, 2, 3, 4]);
    const g = new Graph(device, 'after-loss');
    g.copy(t, g.keep(g.tensor('f32', [4])));
    device.gpu.destroy(); // what a driver reset looks like from here
    await new Promise((r) => setTimeout(r, 50));
    expect(device.isLost).toBe(true);
    await expect(g.run()).rejects.toBeInstanceOf(DeviceLostError);
    await expect(t.read()).rejects.toBeInstanceOf(DeviceLostError);
    await expect(Tensor.empty(device, 'f32', [4])).rejects.toThrow(/GPU device lost \(destroyed\)/);
    device.dispose();
  });

  it('surfaces an uncaptured GPU error as a typed error at the next sync point', async () => {
    const device = await Device.create();
    // A bind group for a layout of two bindings with one entry: a validation error Dawn reports asynchronously.
    device.gpu.createBindGroup({ layout: device.pipelines.bindGroupLayout(['read', 'write']), entries: [] });
    await expect(device.sync()).rejects.toBeInstanceOf(DeviceError);
    await device.sync(); // reported once
    device.dispose();
  });

  it('opens a GPU adapter with the tensor-core toggles, unless subgroup matrices are disabled', async (ctx) => {
    // Dawn's null backend stands in for a GPU: it offers subgroup matrices only under allow_unsafe_apis.
    const gpu = await Device.create({ backend: 'null' }).catch(() => undefined);
    if (!gpu) return ctx.skip("Dawn's null backend is unavailable");
    expect(gpu.has('chromium-experimental-subgroup-matrix')).toBe(true);
    gpu.dispose();
    const without = await Device.create({
      backend: 'null',
      disableFeatures: ['chromium-experimental-subgroup-matrix'],
    });
    expect(without.has('chromium-experimental-subgroup-matrix')).toBe(false);
    expect(without.adapter.subgroupMatrixConfigs).toEqual([]);
    without.dispose();
  });

  it('refuses an unknown backend with a DeviceError that says how to fix it', async () => {
    const err = await Device.create({ backend: 'null' as never, adapter: 'no such adapter' }).catch((e) => e);
    expect(err).toBeInstanceOf(DeviceError);
    expect(err.message).toMatch(/No WebGPU adapter found|could not start Dawn/);
  });

  it('lets a process that made and dropped many devices exit cleanly', async () => {
    // Dawn instances collected while the process runs used to abort Node at exit (segfault, "Owner died").
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const script =
      `import { Device } from '${dist}';` +
      'for (let i = 0; i < 8; i++) { (await Device.create()).dispose(); gc(); await new Promise((r) => setTimeout(r, 10)); }' +
      "console.log('done');";
    const run = promisify(execFile)(process.execPath, ['--expose-gc', '--input-type=module', '-e', script]);
    await expect(run).resolves.toMatchObject({ stdout: 'done\n' });
  });
});
