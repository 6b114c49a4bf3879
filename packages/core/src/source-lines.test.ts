import { describe, expect, it } from 'vitest';
import { sourceLineOf } from './source-lines.js';

describe('sourceLineOf', () => {
  const code = [
    'alias A = f32;', // 1: generated
    '// source: kernels/src/a.wgsl, 2 lines', // 2
    'fn a() {}', // 3: a.wgsl:1
    'fn b() {}', // 4: a.wgsl:2
    'struct Params { n: u32 }', // 5: generated
    '// source: kernels/src/b.wgsl, 1 lines', // 6
    'fn main() {}', // 7: b.wgsl:1
  ].join('\n');

  it('maps each line to the file the nearest marker above names, within its line count', () => {
    expect(sourceLineOf(code, 1)).toBeUndefined();
    expect(sourceLineOf(code, 2)).toBeUndefined();
    expect(sourceLineOf(code, 3)).toEqual({ file: 'kernels/src/a.wgsl', line: 1 });
    expect(sourceLineOf(code, 4)).toEqual({ file: 'kernels/src/a.wgsl', line: 2 });
    expect(sourceLineOf(code, 5)).toBeUndefined();
    expect(sourceLineOf(code, 7)).toEqual({ file: 'kernels/src/b.wgsl', line: 1 });
  });
});
