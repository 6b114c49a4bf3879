import { describe, expect, it } from 'vitest';
import { ShaderCompileError } from './errors.js';
import { checkUniformStruct } from './uniform-struct.js';
import { UniformLayout } from './uniforms.js';

const shader = (struct: string) =>
  `// a comment with var<uniform> q: Other;\nstruct Params { ${struct} }\n@group(0) @binding(0) var<uniform> p: Params;\n`;
const check = (struct: string, fields: string) => () =>
  checkUniformStruct(shader(struct), new UniformLayout(fields), 'test_kernel');

describe('checkUniformStruct', () => {
  it('accepts a struct that reads what the layout writes, comments and line breaks included', () => {
    expect(check('rows: u32, // rows of x\n  cols: u32,\n  eps: f32,', 'rows: u32, cols: u32, eps: f32')).not.toThrow();
  });

  it('names the byte, the member and the field where they differ', () => {
    expect(check('rows: u32, cols: u32, eps: f32', 'rows: u32, eps: f32, cols: u32')).toThrow(
      /test_kernel[\s\S]*byte 4: WGSL has 'cols: u32', the layout 'eps: f32'/,
    );
    expect(check('rows: u32, eps: f32', 'rows: u32, eps: u32')).toThrow(
      /byte 4: WGSL has 'eps: f32', the layout 'eps: u32'/,
    );
    expect(check('rows: u32, cols: u32', 'rows: u32, cols: u32, eps: f32')).toThrow(
      /byte 8: WGSL has nothing, the layout 'eps: f32'/,
    );
    expect(check('rows: u32, cols: u32, eps: f32', 'rows: u32, cols: u32')).toThrow(/byte 8: WGSL has 'eps: f32'/);
    expect(check('rows: u32, cols: u32', 'rows: u32, cols: u32')).not.toThrow();
    expect(check('rows: u32, cols: u32', 'rows: u32, cols: u32, eps: f32')).toThrow(ShaderCompileError);
  });

  it('lays out vectors and arrays of vec4 by WGSL rules: 16-byte aligned, one layout field per component', () => {
    const omega = Array.from({ length: 8 }, (_, i) => `w${i}: f32`).join(', ');
    expect(
      check('a: u32, b: u32, c: u32, d: u32, omega: array<vec4f, 2>', `a: u32, b: u32, c: u32, d: u32, ${omega}`),
    ).not.toThrow();
    // Without the padding, omega starts at byte 16 while the layout's w0 is at byte 4.
    expect(check('a: u32, omega: array<vec4<f32>, 2>', `a: u32, ${omega}`)).toThrow(
      /byte 4: WGSL has padding, the layout 'w0: f32'/,
    );
    expect(check('a: u32, v: vec2u', 'a: u32, pad: u32, v0: u32, v1: u32')).toThrow(/byte 4: WGSL has padding/);
    expect(check('a: u32, b: u32, v: vec2u', 'a: u32, b: u32, v0: u32, v1: u32')).not.toThrow();
  });

  it('rejects a source without exactly one var<uniform>, or with a member type the layout cannot write', () => {
    const layout = new UniformLayout('n: u32');
    expect(() => checkUniformStruct('struct Params { n: u32 }', layout, 'k')).toThrow(/declares 0 var<uniform>/);
    expect(check('n: u32, m: mat2x2f', 'n: u32')).toThrow(/member 'm: mat2x2f' has a type the layout cannot write/);
  });
});
