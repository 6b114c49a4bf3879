// Elementwise kernels (pointwise.wgsl): SwiGLU's silu(gate)·up, exact-erf GELU, and residual adds. One vec4 per
// invocation when the sizes divide by 4, else one element; f32 arithmetic for f32 and f16 activations.

import { type Graph, InputError, type Tensor, UniformLayout } from '@glm4v/core';
import POINTWISE_WGSL from './pointwise.wgsl.js';
import { type ActDType, assertDType, assertShape, checkActDType, prelude } from './prelude.js';
import { grid1d } from './grid.js';

const PARAMS = new UniformLayout('n: u32, cols: u32');
const WG = 256;

type Op = 'silu_mul_fused' | 'silu_mul' | 'gelu_erf' | 'add' | 'add_inplace';

/** The alias lines that pick the vector width of pointwise.wgsl (V, and its f32/u32/i32 counterparts). */
function widthPrelude(width: 1 | 4): string {
  return width === 4
    ? 'alias V = vec4<A>;\nalias VF = vec4f;\nalias VU = vec4u;\nalias VI = vec4i;\n'
    : 'alias V = A;\nalias VF = f32;\nalias VU = u32;\nalias VI = i32;\n';
}

function record(
  g: Graph,
  op: Op,
  act: ActDType,
  width: 1 | 4,
  numel: number,
  cols: number,
  inputs: Tensor[],
  outputs: Tensor[],
): void {
  const n = numel / width;
  g.dispatch({
    kernel: {
      label: `${op}_${act}a${width === 4 ? '_v4' : ''}`,
      code: prelude({ act }) + widthPrelude(width) + POINTWISE_WGSL,
      entryPoint: op,
      constants: { WG },
    },
    uniforms: { layout: PARAMS, values: { n, cols: cols / width } },
    inputs,
    outputs,
    workgroups: grid1d(g.device, Math.ceil(n / WG)),
  });
}

function checkAct(what: string, t: Tensor): ActDType {
  assertDType(`${what} '${t.label}'`, t.dtype, ['f32', 'f16']);
  checkActDType(t.device, t.dtype as ActDType, what);
  return t.dtype as ActDType;
}

function checkSame(what: string, t: Tensor, like: Tensor): void {
  assertShape(`${what} '${t.label}'`, t.shape, like.shape);
  assertDType(`${what} '${t.label}'`, t.dtype, [like.dtype]);
}

/**
 * silu(gate) ⊙ up. With one tensor, gateUp [..., 2I] holds gate in its first half and up in its second (the
 * checkpoint's gate_up_proj order) and the result is [..., I]; with two, gate and up are both [..., I].
 * (Glm4vTextMLP, Glm4VisionMlp, Glm4vVisionPatchMerger: act_fn(gate) * up)
 */
export function siluMul(g: Graph, gateUp: Tensor, up?: Tensor, out?: Tensor): Tensor {
  const act = checkAct(up ? 'siluMul gate' : 'siluMul gate_up', gateUp);
  const last = gateUp.shape.length > 0 ? gateUp.shape[gateUp.shape.length - 1] : 1;
  let outShape: number[];
  if (up) {
    checkSame('siluMul up', up, gateUp);
    outShape = [...gateUp.shape];
  } else {
    if (gateUp.shape.length === 0 || last % 2 !== 0)
      throw new InputError(
        `siluMul gate_up '${gateUp.label}' has shape [${gateUp.shape.join(', ')}]; expected an even last dimension [..., 2I]`,
      );
    outShape = [...gateUp.shape.slice(0, -1), last / 2];
  }
  const cols = outShape.length > 0 ? outShape[outShape.length - 1] : 1;
  const y = out ?? g.tensor(act, outShape, 'silu_mul_out');
  assertShape(`siluMul output '${y.label}'`, y.shape, outShape);
  assertDType(`siluMul output '${y.label}'`, y.dtype, [act]);
  const width = cols % 4 === 0 ? 4 : 1;
  if (up) record(g, 'silu_mul', act, width, y.numel, cols, [gateUp, up], [y]);
  else record(g, 'silu_mul_fused', act, width, y.numel, cols, [gateUp], [y]);
  return y;
}

/** GELU with the exact erf: 0.5·x·(1 + erf(x/√2)), under 4e-7 relative error in f32.  (nn.GELU(), the merger's act) */
export function gelu(g: Graph, x: Tensor, out?: Tensor): Tensor {
  const act = checkAct('gelu input', x);
  const y = out ?? g.tensor(act, x.shape, 'gelu_out');
  checkSame('gelu output', y, x);
  record(g, 'gelu_erf', act, x.numel % 4 === 0 ? 4 : 1, x.numel, x.numel, [x], [y]);
  return y;
}

/** out = a + b, elementwise over tensors of one shape and dtype. */
export function add(g: Graph, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  const act = checkAct('add input a', a);
  checkSame('add input b', b, a);
  const y = out ?? g.tensor(act, a.shape, 'add_out');
  checkSame('add output', y, a);
  record(g, 'add', act, a.numel % 4 === 0 ? 4 : 1, a.numel, a.numel, [a, b], [y]);
  return y;
}

/** acc += b in place (the residual stream). Returns acc. */
export function addInPlace(g: Graph, acc: Tensor, b: Tensor): Tensor {
  const act = checkAct('addInPlace accumulator', acc);
  checkSame('addInPlace input', b, acc);
  record(g, 'add_inplace', act, acc.numel % 4 === 0 ? 4 : 1, acc.numel, acc.numel, [b], [acc]);
  return acc;
}
