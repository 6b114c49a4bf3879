// The check that a kernel's WGSL uniform struct reads what its UniformLayout writes. The layout puts field i at
// byte 4·i; the struct's members are laid out by WGSL's rules (a vec4 or an array aligns to 16 bytes). Every 4-byte
// slot must hold, in both, a value of one scalar type, under one name where the member is a scalar (an array or
// vector member takes as many layout fields as it has components, named freely). Graph.dispatch runs it once per
// (source, layout), so a struct edited without its layout, or the reverse, fails the first dispatch with both named.

import { ShaderCompileError } from './errors.js';
import type { ScalarType, UniformLayout } from './uniforms.js';

/** One 4-byte slot of the struct: the member it belongs to, its scalar type, and whether the member is a scalar. */
interface Slot {
  member: string;
  type: ScalarType;
  scalar: boolean;
}

/** Components, scalar type and alignment of a member type the uniform blocks use: scalars, vectors, arrays of vec4. */
function shapeOf(type: string): { count: number; type: ScalarType; align: number } | undefined {
  const scalar = /^(u32|i32|f32)$/.exec(type);
  if (scalar) return { count: 1, type: scalar[1] as ScalarType, align: 4 };
  const vec = /^vec([234])(?:([uif])|<(u32|i32|f32)>)$/.exec(type);
  if (vec) {
    const n = Number(vec[1]);
    const t = (vec[3] ?? `${vec[2]}32`) as ScalarType;
    return { count: n === 3 ? 3 : n, type: t, align: n === 2 ? 8 : 16 };
  }
  const arr = /^array<\s*(vec4(?:[uif]|<(?:u32|i32|f32)>))\s*,\s*(\d+)u?\s*>$/.exec(type);
  if (arr) {
    const e = shapeOf(arr[1])!;
    return { count: 4 * Number(arr[2]), type: e.type, align: 16 };
  }
  return undefined;
}

/** The struct named by the source's `var<uniform>`, as 4-byte slots (undefined: padding). */
function uniformSlots(code: string, label: string): { struct: string; slots: (Slot | undefined)[] } {
  const src = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
  const vars = [...src.matchAll(/var<uniform>\s*\w+\s*:\s*(\w+)\s*;/g)];
  const fail = (why: string) => new ShaderCompileError(label, [], why);
  if (vars.length !== 1) throw fail(`declares ${vars.length} var<uniform>; expected one for the uniform layout`);
  const struct = vars[0][1];
  const body = new RegExp(`struct\\s+${struct}\\s*\\{([^}]*)\\}`).exec(src);
  if (!body) throw fail(`uniform struct ${struct} is not declared in the source`);
  const slots: (Slot | undefined)[] = [];
  for (const m of body[1].matchAll(/(\w+)\s*:\s*(\w+(?:<[^<>]*(?:<[^<>]*>[^<>]*)?>)?)/g)) {
    const shape = shapeOf(m[2]);
    if (!shape) throw fail(`uniform struct ${struct}: member '${m[1]}: ${m[2]}' has a type the layout cannot write`);
    while ((4 * slots.length) % shape.align !== 0) slots.push(undefined);
    for (let i = 0; i < shape.count; i++) slots.push({ member: m[1], type: shape.type, scalar: shape.count === 1 });
  }
  return { struct, slots };
}

/** The sources already checked against each layout. */
const checked = new WeakMap<UniformLayout, Set<string>>();

/** Throws ShaderCompileError naming the first slot where `code`'s uniform struct and `layout` disagree. */
export function checkUniformStruct(code: string, layout: UniformLayout, label: string): void {
  let done = checked.get(layout);
  if (done?.has(code)) return;
  const { struct, slots } = uniformSlots(code, label);
  const n = Math.max(slots.length, layout.fields.length);
  for (let i = 0; i < n; i++) {
    const s = slots[i];
    const f = layout.fields[i];
    const wgsl = s ? `'${s.member}: ${s.type}'` : i < slots.length ? 'padding' : 'nothing';
    const ts = f ? `'${f.name}: ${f.type}'` : 'nothing';
    if (s && f && s.type === f.type && (!s.scalar || s.member === f.name)) continue;
    throw new ShaderCompileError(
      label,
      [],
      `uniform struct ${struct} does not match its UniformLayout at byte ${4 * i}: WGSL has ${wgsl}, the layout ${ts}`,
    );
  }
  if (!done) checked.set(layout, (done = new Set()));
  done.add(code);
}
