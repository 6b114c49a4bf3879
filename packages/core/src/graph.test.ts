import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device } from './device.js';
import { Graph } from './graph.js';
import { Tensor } from './tensor.js';
import { UniformLayout } from './uniforms.js';
import { InputError, LimitError } from './errors.js';
import type { KernelSpec } from './pipeline-cache.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

// y = a·x + b over n elements
const AFFINE: KernelSpec = {
  label: 'test_affine',
  code: /* wgsl */ `
struct Params { n: u32, a: f32, b: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < p.n) { y[g.x] = p.a * x[g.x] + p.b; }
}`,
};
const AFFINE_PARAMS = new UniformLayout('n: u32, a: f32, b: f32');

function affine(
  g: Graph,
  x: Tensor,
  a: number | ((p: Record<string, number>) => number),
  b: number,
  out?: Tensor,
): Tensor {
  const y = out ?? g.tensor('f32', x.shape, 'affine_out');
  const n = x.numel;
  g.dispatch({
    kernel: AFFINE,
    uniforms: { layout: AFFINE_PARAMS, values: typeof a === 'function' ? (p) => ({ n, a: a(p), b }) : { n, a, b } },
    inputs: [x],
    outputs: [y],
    workgroups: [Math.ceil(n / 64)],
  });
  return y;
}

describe('Graph', () => {
  it('runs a chain of dispatches and reads the kept output', async () => {
    const x = await Tensor.fromArray(device, 'f32', [5], [1, 2, 3, 4, 5]);
    const g = new Graph(device, 'chain');
    const y = g.keep(affine(g, affine(g, x, 2, 1), 3, 0)); // 3·(2x + 1)
    await g.run();
    expect(Array.from(await y.read())).toEqual([9, 15, 21, 27, 33]);
    g.dispose();
    x.dispose();
  });

  it('plans peak memory as the largest live set, not the sum (chain of 12 ops)', async () => {
    const n = 100_000;
    const x = await Tensor.fromArray(device, 'f32', [n], new Float32Array(n).fill(1));
    const g = new Graph(device, 'long-chain');
    let t = x;
    for (let i = 0; i < 12; i++) t = affine(g, t, 1, 1);
    g.keep(t);
    const base = device.pool.stats.bytesInUse;
    await g.run();
    const s = g.stats;
    expect(s.intermediates).toBe(12);
    expect(s.plannedBytes).toBeLessThan(s.sumBytes);
    expect(s.plannedBytes).toBeLessThanOrEqual((2 * s.sumBytes) / 12); // two buffers ping-pong
    expect(device.pool.stats.bytesInUse - base).toBe(s.plannedBytes);
    const out = await t.read();
    expect(out[0]).toBe(13);
    expect(out[n - 1]).toBe(13);
    g.dispose();
    expect(device.pool.stats.bytesInUse).toBe(base);
    x.dispose();
  });

  it('never places an output in the buffer of an input of the same dispatch', async () => {
    const x = await Tensor.fromArray(device, 'f32', [64], new Float32Array(64).fill(2));
    const g = new Graph(device, 'alias');
    const a = affine(g, x, 1, 0);
    const b = affine(g, a, 1, 1); // a dies here; b must not share its buffer
    const c = g.keep(affine(g, b, 2, 0));
    await g.run();
    expect(a.buffer).not.toBe(b.buffer);
    expect(b.buffer).not.toBe(c.buffer);
    expect((await c.read())[0]).toBe(6);
    g.dispose();
    x.dispose();
  });

  it('replays with new uniform values exactly as a fresh recording would', async () => {
    const n = 1000;
    const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const x = await Tensor.fromArray(device, 'f32', [n], data);
    const replayed = new Graph(device, 'replay');
    const out = replayed.keep(
      affine(
        replayed,
        affine(replayed, x, (p) => p.scale, 0.5),
        2,
        0 as number,
      ),
    );
    for (const scale of [1, -3, 0.25]) {
      await replayed.run({ scale });
      const got = await out.read();
      const fresh = new Graph(device, 'fresh');
      const ref = fresh.keep(affine(fresh, affine(fresh, x, scale, 0.5), 2, 0));
      await fresh.run();
      const expected = await ref.read();
      fresh.dispose();
      expect(Array.from(got)).toEqual(Array.from(expected));
      expect(got[7]).toBeCloseTo(2 * (scale * Math.sin(7) + 0.5), 5);
    }
    replayed.dispose();
    x.dispose();
  });

  it('takes workgroup counts and copy sizes that depend on params', async () => {
    const x = await Tensor.fromArray(device, 'f32', [256], new Float32Array(256).fill(1));
    const y = await Tensor.fromArray(device, 'f32', [256], new Float32Array(256).fill(-1));
    const z = await Tensor.fromArray(device, 'f32', [256], new Float32Array(256).fill(-1));
    const g = new Graph(device, 'dynamic');
    g.dispatch({
      kernel: AFFINE,
      uniforms: { layout: AFFINE_PARAMS, values: (p) => ({ n: p.len, a: 5, b: 0 }) },
      inputs: [x],
      outputs: [y],
      workgroups: (p) => [Math.ceil(p.len / 64)],
    });
    g.copy(y, z, (p) => p.len * 4);
    await g.run({ len: 70 });
    const got = await z.read();
    expect(got[69]).toBe(5);
    expect(got[70]).toBe(-1);
    await g.run({ len: 0 }); // zero workgroups: skipped
    g.dispose();
    for (const t of [x, y, z]) t.dispose();
  });

  it('profiles each dispatch with timestamps', async (ctx) => {
    if (!device.has('timestamp-query')) return ctx.skip('the adapter lacks timestamp-query');
    const x = await Tensor.fromArray(device, 'f32', [4096], new Float32Array(4096));
    const g = new Graph(device, 'profile');
    g.keep(affine(g, affine(g, x, 1, 1), 1, 1));
    const prof = await g.profile();
    expect(prof.map((p) => p.label)).toEqual(['test_affine', 'test_affine']);
    for (const p of prof) expect(p.ms).toBeGreaterThanOrEqual(0);
    g.dispose();
    x.dispose();
  });

  it('profiles a graph of more dispatches than one query set holds (4096 queries)', async (ctx) => {
    if (!device.has('timestamp-query')) return ctx.skip('the adapter lacks timestamp-query');
    const x = await Tensor.fromArray(device, 'f32', [64], new Float32Array(64));
    const g = new Graph(device, 'profile-long');
    const n = 2 * 2048 + 5; // three query sets, the last one partly used
    let t = x;
    for (let i = 0; i < n; i++) t = affine(g, t, 1, 1);
    g.keep(t);
    const prof = await g.profile();
    expect(prof.length).toBe(n);
    for (const p of prof) expect(Number.isFinite(p.ms) && p.ms >= 0).toBe(true);
    // Each set is resolved into its own part of the buffer: where the adapter's timestamps are fine enough to
    // see a dispatch at all, the later sets' passes are timed too (not left at zero).
    const timed = (a: number, b: number) => prof.slice(a, b).filter((p) => p.ms > 0).length;
    if (timed(0, 2048) > 0) {
      expect(timed(2048, 4096)).toBeGreaterThan(0);
      expect(timed(4096, n)).toBeGreaterThan(0);
    }
    expect((await t.read())[0]).toBe(n);
    g.dispose();
    x.dispose();
  });

  it('refuses keep() once the graph is planned (its buffer may already be reused)', async () => {
    const x = await Tensor.fromArray(device, 'f32', [4], [1, 2, 3, 4]);
    const g = new Graph(device, 'late-keep');
    const a = affine(g, x, 1, 0);
    g.keep(affine(g, a, 1, 1));
    await g.plan();
    expect(() => g.keep(a)).toThrow(/'late-keep' is already planned/);
    g.dispose();
    x.dispose();
  });

  it('checks bindings, aliasing and workgroup limits when recording', async () => {
    const x = await Tensor.fromArray(device, 'f32', [4], [1, 2, 3, 4]);
    const g = new Graph(device, 'bad');
    expect(() => g.dispatch({ kernel: AFFINE, inputs: [x], outputs: [x], workgroups: [1] })).toThrow(InputError);
    expect(() =>
      g.dispatch({
        kernel: AFFINE,
        inputs: [x],
        outputs: [g.tensor('f32', [4])],
        workgroups: [device.limits.maxComputeWorkgroupsPerDimension + 1],
      }),
    ).toThrow(LimitError);
    const tooBig = g.tensor('f32', [device.limits.maxStorageBufferBindingSize / 4 + 1], 'lm_head');
    expect(() => g.dispatch({ kernel: AFFINE, inputs: [x], outputs: [tooBig], workgroups: [1] })).toThrow(
      /'lm_head'.*storage binding limit/,
    );
    const missing = new Graph(device, 'missing-uniform');
    missing.dispatch({
      kernel: AFFINE,
      uniforms: { layout: AFFINE_PARAMS, values: (p) => ({ n: 4, a: p.a, b: 0 }) },
      inputs: [x],
      outputs: [missing.tensor('f32', [4])],
      workgroups: [1],
    });
    await expect(missing.run({})).rejects.toThrow(/uniform 'a' is undefined/);
    missing.dispose();
    g.dispose();
    x.dispose();
  });

  it('refuses a dispatch whose WGSL uniform struct does not match its UniformLayout', async () => {
    const x = await Tensor.fromArray(device, 'f32', [4], [1, 2, 3, 4]);
    const g = new Graph(device, 'mismatch');
    const swapped = new UniformLayout('n: u32, b: f32, a: f32');
    expect(() =>
      g.dispatch({
        kernel: AFFINE,
        uniforms: { layout: swapped, values: { n: 4, a: 1, b: 0 } },
        inputs: [x],
        outputs: [g.tensor('f32', [4])],
        workgroups: [1],
      }),
    ).toThrow(/test_affine[\s\S]*byte 4: WGSL has 'a: f32', the layout 'b: f32'/);
    g.dispose();
    x.dispose();
  });
});

describe('views', () => {
  it('plans a view of an intermediate with its root, and binds it at its offset', async () => {
    const x = await Tensor.fromArray(
      device,
      'f32',
      [128],
      Float32Array.from({ length: 128 }, (_, i) => i),
    );
    const g = new Graph(device, 'views');
    const y = affine(g, x, 1, 0); // [128]
    const tail = y.view([64], 64, 'tail'); // 256 bytes in: aligned
    const z = g.keep(affine(g, tail, 2, 0));
    await g.run();
    const got = await z.read();
    expect(got[0]).toBe(128);
    expect(got[63]).toBe(254);
    expect(() => affine(new Graph(device), y.view([4], 1), 1, 0)).toThrow(/alignment/);
    expect(() => y.reshape([3, 5])).toThrow(/128 vs 15|does not fit/);
    g.dispose();
    x.dispose();
  });
});
