// The tensor-core matmul (matmul_subgroup_matrix.wgsl): which of the adapter's subgroup-matrix shapes it uses, the
// depth of its k-tiles, and the WGSL around the kernel — directives, tile constants and the four matrix functions,
// either Dawn's `chromium-experimental-subgroup-matrix` builtins or, for tests on adapters without the feature,
// scalar code of the same meaning (every invocation holds whole matrices), so the kernel's tiling is checked on
// every machine and only the builtins themselves need the hardware.

import { type Device, InputError } from '@glm4v/core';
import { maxSubgroupSize, minSubgroupSize } from './adapter.js';
import SUBGROUP_MATRIX_WGSL from './matmul_subgroup_matrix.wgsl.js';

/** SGM × SGN subgroups per workgroup computing a BM × BN tile of y. */
export type SubgroupMatrixPreset = { kind: 'subgroupMatrix'; BM: number; BN: number; SGM: number; SGN: number };

/** A matrix shape the kernel multiplies: [M, K] · [K, N] with `operand` inputs and f32 results. */
export interface MatrixShape {
  operand: 'f16' | 'f32';
  M: number;
  N: number;
  K: number;
}

/** The WGSL and layout of one tensor-core kernel variant. */
export interface SubgroupMatrixKernel {
  /** Directives, tile constants, TS and the matrix functions; the dtype prelude and BINDINGS go between. */
  head: string;
  tail: string;
  WG: number;
  BK: number;
  workgroupBytes: number;
}

/**
 * The shape the kernel uses on this device for `preset`: an f16 → f32 one where the adapter has it (NVIDIA, AMD,
 * Intel), else f32 → f32 (Apple's 8 × 8 × 8); undefined without the feature, or when no shape divides the
 * preset's subgroup blocks or fits the workgroup limits.
 */
export function matrixShapeFor(device: Device, preset: SubgroupMatrixPreset): MatrixShape | undefined {
  if (!device.has('chromium-experimental-subgroup-matrix') || !device.has('subgroups')) return undefined;
  const shapes: MatrixShape[] = [];
  for (const operand of ['f16', 'f32'] as const) {
    if (operand === 'f16' && !device.has('shader-f16')) continue;
    for (const c of device.adapter.subgroupMatrixConfigs) {
      if (c.componentType === operand && c.resultComponentType === 'f32')
        shapes.push({ operand, M: c.M, N: c.N, K: c.K });
    }
  }
  return shapes.find((s) => layoutError(device, preset, s, maxSubgroupSize(device)) === undefined);
}

/** Why `shape` cannot run `preset` on this device with subgroups of `sg`, or undefined when it can. */
function layoutError(device: Device, p: SubgroupMatrixPreset, s: MatrixShape, sg: number): string | undefined {
  const WG = p.SGM * p.SGN * sg;
  if (p.BM % (p.SGM * s.M) !== 0 || p.BN % (p.SGN * s.N) !== 0)
    return `its ${p.BM}×${p.BN} tile does not split into ${s.M}×${s.N} matrices over ${p.SGM}×${p.SGN} subgroups`;
  if (WG === 0 || WG > device.limits.maxComputeInvocationsPerWorkgroup || WG > device.limits.maxComputeWorkgroupSizeX)
    return `a workgroup of ${p.SGM * p.SGN} subgroups of ${sg} exceeds the device's limits`;
  if (subgroupMatrixDepth(p, s, device.limits.maxComputeWorkgroupStorageSize) === undefined)
    return `its tiles do not fit ${device.limits.maxComputeWorkgroupStorageSize} bytes of workgroup memory`;
  return undefined;
}

/** Workgroup bytes: two buffers of x and w tiles of depth BK in the operand type, and one result matrix per subgroup. */
export function subgroupMatrixBytes(p: SubgroupMatrixPreset, s: MatrixShape, BK: number): number {
  return 2 * (p.BM + p.BN) * BK * (s.operand === 'f16' ? 2 : 4) + p.SGM * p.SGN * s.M * s.N * 4;
}

/** The deepest k-tile (32, 16 or 8: a multiple of the shape's K and of the 8-weight groups) within `maxBytes`. */
export function subgroupMatrixDepth(p: SubgroupMatrixPreset, s: MatrixShape, maxBytes: number): number | undefined {
  return [32, 16, 8].find((BK) => BK % s.K === 0 && subgroupMatrixBytes(p, s, BK) <= maxBytes);
}

export interface SubgroupMatrixOptions {
  /** Use this shape instead of the adapter's. */
  shape?: MatrixShape;
  /** Scalar stand-ins for the matrix builtins (tests on adapters without them); subgroups of the adapter's smallest size. */
  emulate?: boolean;
}

/** The kernel for `preset` on this device; throws InputError naming `name` when it cannot run here. */
export function subgroupMatrixKernel(
  device: Device,
  preset: SubgroupMatrixPreset,
  name: string,
  opts: SubgroupMatrixOptions = {},
): SubgroupMatrixKernel {
  if (!device.has('subgroups'))
    throw new InputError(`variant '${name}' needs the subgroups feature, which this adapter lacks`);
  const shape = opts.shape ?? matrixShapeFor(device, preset);
  if (!shape)
    throw new InputError(
      `variant '${name}' needs the chromium-experimental-subgroup-matrix feature with a matrix shape fitting its tile, which this adapter lacks`,
    );
  if (shape.operand === 'f16' && !device.has('shader-f16'))
    throw new InputError(`variant '${name}' with f16 operands needs shader-f16, which this adapter lacks`);
  // The builtins need a workgroup of whole subgroups of the largest size; the scalar stand-ins any size.
  const sg = opts.emulate ? minSubgroupSize(device) : maxSubgroupSize(device);
  const problem = layoutError(device, preset, shape, sg);
  if (problem)
    throw new InputError(
      `variant '${name}' cannot run with ${shape.operand} ${shape.M}×${shape.N}×${shape.K} matrices on this device: ${problem}`,
    );
  return subgroupMatrixSource(
    preset,
    shape,
    sg,
    subgroupMatrixDepth(preset, shape, device.limits.maxComputeWorkgroupStorageSize)!,
    opts.emulate ?? false,
  );
}

/** The kernel's WGSL for a given subgroup size and k-tile depth (no device checks). */
export function subgroupMatrixSource(
  preset: SubgroupMatrixPreset,
  shape: MatrixShape,
  sg: number,
  BK: number,
  emulate: boolean,
): SubgroupMatrixKernel {
  const WG = preset.SGM * preset.SGN * sg;
  const directives =
    (emulate
      ? ''
      : 'enable chromium_experimental_subgroup_matrix;\ndiagnostic(off, chromium.subgroup_matrix_uniformity);\n') +
    (shape.operand === 'f16' ? 'enable f16;\n' : '');
  const constants =
    `const SM = ${shape.M}u;\nconst SN = ${shape.N}u;\nconst SK = ${shape.K}u;\nconst BM = ${preset.BM}u;\nconst BN = ${preset.BN}u;\n` +
    `const BK = ${BK}u;\nconst SGM = ${preset.SGM}u;\nconst SGN = ${preset.SGN}u;\nconst WG = ${WG}u;\nalias TS = ${shape.operand};\n`;
  return {
    head: directives,
    tail: constants + (emulate ? EMULATED : BUILTINS) + SUBGROUP_MATRIX_WGSL,
    WG,
    BK,
    workgroupBytes: subgroupMatrixBytes(preset, shape, BK),
  };
}

/** The matrix functions on Dawn's builtins. */
const BUILTINS = `
alias Left = subgroup_matrix_left<TS, SK, SM>;
alias Right = subgroup_matrix_right<TS, SN, SK>;
alias Acc = subgroup_matrix_result<f32, SN, SM>;
fn load_left(at: u32) -> Left { return subgroupMatrixLoad<Left, row_major>(&xs, at, BK); }
fn load_right(at: u32) -> Right { return subgroupMatrixLoad<Right, col_major>(&ws, at, BK); }
fn mma(l: Left, r: Right, c: Acc) -> Acc { return subgroupMatrixMultiplyAccumulate(l, r, c); }
fn store_acc(c: Acc, at: u32) { subgroupMatrixStore<row_major>(&cs, at, c, SN); }
`;

/** The same functions in scalar code: every invocation holds whole matrices (tests only; slow). */
const EMULATED = `
struct Left { v: array<f32, SM * SK> }
struct Right { v: array<f32, SK * SN> }
struct Acc { v: array<f32, SM * SN> }
fn load_left(at: u32) -> Left {
  var l: Left;
  for (var i = 0u; i < SM * SK; i++) { l.v[i] = f32(xs[at + (i / SK) * BK + i % SK]); }
  return l;
}
fn load_right(at: u32) -> Right {
  var r: Right;
  for (var i = 0u; i < SK * SN; i++) { r.v[i] = f32(ws[at + (i % SN) * BK + i / SN]); }
  return r;
}
fn mma(l: Left, r: Right, c: Acc) -> Acc {
  var out = c;
  for (var m = 0u; m < SM; m++) {
    for (var n = 0u; n < SN; n++) {
      for (var k = 0u; k < SK; k++) { out.v[m * SN + n] = fma(l.v[m * SK + k], r.v[k * SN + n], out.v[m * SN + n]); }
    }
  }
  return out;
}
fn store_acc(c: Acc, at: u32) {
  for (var i = 0u; i < SM * SN; i++) { cs[at + i] = c.v[i]; }
}
`;
