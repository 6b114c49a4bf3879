// The few lines prepended to a kernel family's WGSL to specialise it by dtype (style habit 2: a prelude,
// never string surgery inside the kernel). Activations are `A` (f32, or f16 where the device has shader-f16).
// A weight binding named `w` is declared by the kernel as `array<WS_w>` and read as f32 through `load_w(i)`:
// bf16 is stored as packed pairs in u32 words and widened exactly by a shift.

import { type DType, type Device, InputError, type Tensor } from '@glm4v/core';

export type ActDType = 'f32' | 'f16';
export type WeightDType = 'f32' | 'f16' | 'bf16';

export interface PreludeOptions {
  act?: ActDType;
  /** Weight bindings by name and dtype, e.g. { w: 'bf16', b: 'f32' }. */
  weights?: Readonly<Record<string, WeightDType>>;
  /** Emit `enable subgroups;`. */
  subgroups?: boolean;
}

export function prelude(opts: PreludeOptions): string {
  const act = opts.act ?? 'f32';
  const weights = opts.weights ?? {};
  const f16 = act === 'f16' || Object.values(weights).includes('f16');
  const lines: string[] = [];
  if (f16) lines.push('enable f16;');
  if (opts.subgroups) lines.push('enable subgroups;');
  lines.push(`alias A = ${act};`);
  for (const [name, dt] of Object.entries(weights)) {
    if (dt === 'bf16') {
      lines.push(
        `alias WS_${name} = u32;`,
        `fn load_${name}(i: u32) -> f32 { let v = ${name}[i >> 1u]; return bitcast<f32>(select(v << 16u, v & 0xffff0000u, (i & 1u) == 1u)); }`,
      );
    } else {
      lines.push(`alias WS_${name} = ${dt};`, `fn load_${name}(i: u32) -> f32 { return f32(${name}[i]); }`);
    }
  }
  return lines.join('\n') + '\n';
}

/** A short dtype tag for kernel labels: 'bf16w_f32a'. */
export function variantTag(weights: WeightDType | undefined, act: ActDType): string {
  return `${weights ? `${weights}w_` : ''}${act}a`;
}

export function assertDType(what: string, got: DType, allowed: readonly DType[]): void {
  if (!allowed.includes(got)) throw new InputError(`${what} has dtype ${got}; expected ${allowed.join(' or ')}`);
}

export function assertShape(what: string, got: readonly number[], expected: readonly (number | undefined)[]): void {
  const ok = got.length === expected.length && expected.every((e, i) => e === undefined || e === got[i]);
  if (!ok)
    throw new InputError(
      `${what} has shape [${got.join(', ')}]; expected [${expected.map((e) => e ?? '?').join(', ')}]`,
    );
}

/** f16 data (activations or weights) needs shader-f16. */
export function checkActDType(device: Device, act: DType, what: string): void {
  if (act === 'f16' && !device.has('shader-f16'))
    throw new InputError(`${what}: f16 data needs the shader-f16 feature, which this adapter lacks`);
}

/** Rows of a tensor seen as [rows, last dimension] (0 when the last dimension is 0). */
export function rowsOf(x: Tensor): number {
  const cols = x.shape[x.shape.length - 1];
  return cols ? x.numel / cols : 0;
}
