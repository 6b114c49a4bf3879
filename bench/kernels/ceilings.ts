// The device's own ceilings, measured in the same run as the kernels: copy bandwidth (a vec4<u32> copy of
// 64 MiB) for memory-bound kernels, FMA throughput (independent fma chains in registers) for compute-bound, and
// where the adapter has subgroup matrices the matrix units' throughput (independent multiply-accumulates on
// matrices in registers) for the tensor-core matmul.

import { type Device, Graph, type KernelSpec, Tensor, UniformLayout } from '@glm4v/core';
import { LINEAR_PRESETS, type MatrixShape, matrixShapeFor, maxSubgroupSize } from '@glm4v/kernels';
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

/** 4 independent accumulators per subgroup, ITERS multiply-accumulates each, on the matmul's matrix shape. */
function matrixKernel(s: MatrixShape, sg: number): KernelSpec {
  return {
    label: `ceiling_mma_${s.operand}_${s.M}x${s.N}x${s.K}`,
    code: /* wgsl */ `
${s.operand === 'f16' ? 'enable f16;' : ''}
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
alias L = subgroup_matrix_left<${s.operand}, ${s.K}, ${s.M}>;
alias R = subgroup_matrix_right<${s.operand}, ${s.N}, ${s.K}>;
alias C = subgroup_matrix_result<f32, ${s.N}, ${s.M}>;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
override ITERS: u32 = 1024u;
@compute @workgroup_size(${4 * sg}) fn main(@builtin(workgroup_id) w: vec3u, @builtin(subgroup_id) sg: u32) {
  if (sg >= 4u) { return; } // a driver running smaller subgroups than the largest makes more of them: 4 count
  let a = L(${s.operand}(0.001));
  let b = R(${s.operand}(0.002));
  var c0 = C(); var c1 = C(0.5); var c2 = C(1.0); var c3 = C(1.5);
  for (var i = 0u; i < ITERS; i++) {
    c0 = subgroupMatrixMultiplyAccumulate(a, b, c0); c1 = subgroupMatrixMultiplyAccumulate(a, b, c1);
    c2 = subgroupMatrixMultiplyAccumulate(a, b, c2); c3 = subgroupMatrixMultiplyAccumulate(a, b, c3);
  }
  let at = (w.x * 4u + sg) * 4u * ${s.M * s.N}u;
  subgroupMatrixStore<row_major>(&out, at, c0, ${s.N}u);
  subgroupMatrixStore<row_major>(&out, at + ${s.M * s.N}u, c1, ${s.N}u);
  subgroupMatrixStore<row_major>(&out, at + ${2 * s.M * s.N}u, c2, ${s.N}u);
  subgroupMatrixStore<row_major>(&out, at + ${3 * s.M * s.N}u, c3, ${s.N}u);
}`,
    constants: { ITERS: 1024 },
  };
}

export interface Ceilings {
  copyGBps: number;
  fmaGflops: number;
  fmaF16Gflops?: number;
  /** Subgroup-matrix multiply-accumulate throughput on the tensor-core matmul's shape, where the adapter has one. */
  matrixGflops?: number;
  /** Why matrixGflops is missing where the adapter has subgroup matrices. */
  matrixError?: string;
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
    g.dispatch({
      kernel: fmaKernel(type),
      uniforms: { layout: new UniformLayout('seed: f32'), values: { seed: 0.5 } },
      outputs: [out],
      workgroups: [threads / 256],
    });
    const t = await timeCase(device, { graph: g, dispose: () => g.dispose() }, budgetMs);
    g.dispose();
    out.dispose();
    return (threads * 512 * 4 * 4 * 2) / (t.ms * 1e6); // 4 chains × vec4 × 2 flops per fma
  };
  const matrix = async (shape: MatrixShape) => {
    const sg = maxSubgroupSize(device);
    const groups = 1024;
    const out = await Tensor.empty(device, 'f32', [groups * 4 * 4 * shape.M * shape.N], 'mma_out');
    const g = new Graph(device, 'ceiling-mma');
    g.dispatch({ kernel: matrixKernel(shape, sg), outputs: [out], workgroups: [groups] });
    try {
      const t = await timeCase(device, { graph: g, dispose: () => g.dispose() }, budgetMs);
      return (groups * 4 * 1024 * 4 * 2 * shape.M * shape.N * shape.K) / (t.ms * 1e6); // subgroups × iterations × chains
    } finally {
      g.dispose();
      out.dispose();
    }
  };
  const shape = matrixShapeFor(device, LINEAR_PRESETS.sm128x128);
  let matrixGflops: number | undefined;
  let matrixError: string | undefined;
  if (shape) matrixGflops = await matrix(shape).catch((e) => ((matrixError = (e as Error).message), undefined));
  return {
    copyGBps: (2 * bytes) / (copy.ms * 1e6),
    fmaGflops: await fma('f32'),
    fmaF16Gflops: device.has('shader-f16') ? await fma('f16') : undefined,
    matrixGflops,
    matrixError,
  };
}
