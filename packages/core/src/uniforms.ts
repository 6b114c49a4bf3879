// A uniform block of 4-byte scalars, declared once beside its WGSL struct:
//   const PARAMS = new UniformLayout('rows: u32, cols: u32, eps: f32');   // struct Params { rows: u32, cols: u32, eps: f32 }
// Values are passed by name, so a reordered or missing field is an error rather than a wrong number.
// Graph.dispatch checks the layout against the kernel's WGSL struct (uniform-struct.ts).

import { InputError } from './errors.js';

export type ScalarType = 'u32' | 'i32' | 'f32';
export type UniformValues = Readonly<Record<string, number>>;

export class UniformLayout {
  readonly fields: readonly { name: string; type: ScalarType }[];
  /** Struct size rounded up to 16 bytes, as WGSL lays out a uniform struct of scalars. */
  readonly byteSize: number;

  constructor(spec: string) {
    const fields: { name: string; type: ScalarType }[] = [];
    for (const part of spec
      .split(/[,\n]/)
      .map((s) => s.trim())
      .filter(Boolean)) {
      const m = /^(\w+)\s*:\s*(u32|i32|f32)$/.exec(part);
      if (!m)
        throw new InputError(`uniform layout '${spec}': cannot read field '${part}' (expected 'name: u32|i32|f32')`);
      fields.push({ name: m[1], type: m[2] as ScalarType });
    }
    this.fields = fields;
    this.byteSize = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  }

  write(view: DataView, offset: number, values: UniformValues, label: string): void {
    for (let i = 0; i < this.fields.length; i++) {
      const { name, type } = this.fields[i];
      const v = values[name];
      if (v === undefined || Number.isNaN(v)) throw new InputError(`kernel '${label}': uniform '${name}' is ${v}`);
      const at = offset + 4 * i;
      if (type === 'f32') view.setFloat32(at, v, true);
      else if (
        !Number.isInteger(v) ||
        v < (type === 'i32' ? -(2 ** 31) : 0) ||
        v >= (type === 'i32' ? 2 ** 31 : 2 ** 32)
      ) {
        throw new InputError(`kernel '${label}': uniform '${name}' = ${v} is not a ${type}`);
      } else if (type === 'i32') view.setInt32(at, v, true);
      else view.setUint32(at, v, true);
    }
  }
}
