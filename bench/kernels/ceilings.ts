// The device's own ceilings, measured in the same run as the kernels: copy bandwidth (a vec4<u32> copy of
// 64 MiB) for memory-bound kernels, FMA throughput (independent fma chains in registers) for compute-bound.

import { type Device, Graph, type KernelSpec, Tensor, UniformLayout } from '@glm4v/core';
import { timeCase } from './harness.js';

const COPY: KernelSpec = {
  label: 'ceiling_copy_vec4u32',
  code: /* wgsl */ `
@group(0) @binding(0) var<storage, read> a: array<vec4u>;
@group(0) @binding(1) var<storage, read_write> b: array<vec4u>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) n: vec3u) {
  let stride = n.x * 256u;
  for (var i = g.x; i < arrayLength(&a); i += stride) { b[i] = a[i]; }
}`,
};

function fmaKernel(type: 'f32' | 'f16'): KernelSpec {
  return {
    label: `ceiling_fma_${type}`,
    code: /* wgsl */ `
${type === 'f16' ? 'enable f16;' : ''}
alias T = ${type};
struct Params { seed: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
override ITERS: u32 = 512u;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u) {
  var a = vec4<T>(T(p.seed) * T(f32(g.x & 7u)), T(1), T(2), T(3));
  var b = a + vec4<T>(T(0.5)); var c = a + vec4<T>(T(0.25)); var d = a + vec4<T>(T(0.125));
  let m = vec4<T>(T(0.999)); let k = vec4<T>(T(0.001));
  for (var i = 0u; i < ITERS; i++) { a = fma(a, m, k); b = fma(b, m, k); c = fma(c, m, k); d = fma(d, m, k); }
  let s = a + b + c + d;
  out[g.x] = f32(s.x + s.y + s.z + s.w);
}`,
    constants: { ITERS: 512 },
  };
}

export interface Ceilings {
  copyGBps: number;
  fmaGflops: number;
  fmaF16Gflops?: number;
}

export async function measureCeilings(device: Device, budgetMs: number): Promise<Ceilings> {
  const bytes = Math.min(64 * 2 ** 20, device.limits.maxStorageBufferBindingSize);
  const a = await Tensor.empty(device, 'u32', [bytes / 4], 'copy_src');
  const b = await Tensor.empty(device, 'u32', [bytes / 4], 'copy_dst');
  const copyGraph = new Graph(device, 'ceiling-copy');
  copyGraph.dispatch({ kernel: COPY, inputs: [a], outputs: [b], workgroups: [Math.min(4096, bytes / 16 / 256)] });
  const copy = await timeCase(device, { graph: copyGraph, dispose: () => copyGraph.dispose() }, budgetMs);
  copyGraph.dispose();
  a.dispose();
  b.dispose();

  const fma = async (type: 'f32' | 'f16') => {
    const threads = 256 * 1024;
    const out = await Tensor.empty(device, 'f32', [threads], 'fma_out');
    const g = new Graph(device, `ceiling-fma-${type}`);
    g.dispatch({ kernel: fmaKernel(type), uniforms: { layout: new UniformLayout('seed: f32'), values: { seed: 0.5 } }, outputs: [out], workgroups: [threads / 256] });
    const t = await timeCase(device, { graph: g, dispose: () => g.dispose() }, budgetMs);
    g.dispose();
    out.dispose();
    return (threads * 512 * 4 * 4 * 2) / (t.ms * 1e6); // 4 chains × vec4 × 2 flops per fma
  };
  return {
    copyGBps: (2 * bytes) / (copy.ms * 1e6),
    fmaGflops: await fma('f32'),
    fmaF16Gflops: device.has('shader-f16') ? await fma('f16') : undefined,
  };
}
