import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Device } from './device.js';
import { ShaderCompileError } from './errors.js';

let device: Device;
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => device?.dispose());

const OK = `
override WG: u32 = 64;
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(WG) fn main(@builtin(global_invocation_id) g: vec3u) { y[g.x] = 1.0; }`;

describe('PipelineCache', () => {
  it('shares one compile between concurrent requests of a key and separates different constants', async () => {
    const before = device.pipelines.compiles;
    const spec = { label: 'cache_ok', code: OK, constants: { WG: 32 } };
    const [a, b] = await Promise.all([
      device.pipelines.get(spec, ['write']),
      device.pipelines.get({ ...spec }, ['write']),
    ]);
    expect(a).toBe(b);
    const c = await device.pipelines.get({ ...spec, constants: { WG: 64 } }, ['write']);
    expect(c).not.toBe(a);
    expect(device.pipelines.compiles - before).toBe(2);
  });

  it('reports WGSL errors with the label, line and column', async () => {
    const code =
      'fn helper() -> u32 {\n  return 1u;\n}\n@compute @workgroup_size(1) fn main() {\n  let x: u32 = 1.5;\n}';
    const err = await device.pipelines.get({ label: 'broken_kernel', code }, []).catch((e) => e);
    expect(err).toBeInstanceOf(ShaderCompileError);
    expect(err.code).toBe('SHADER_COMPILE');
    expect(err.messages[0]).toMatchObject({ type: 'error', line: 5, column: 16 });
    expect(err.message).toMatch(/broken_kernel:5:16 error: .*abstract-float/);
    device.check(); // the error was captured, not left for the device's uncaptured handler
  });

  it('traces an error back to the .wgsl file and line that embed-wgsl marked, not to generated lines', async () => {
    // A wrapper's generated line, then a two-line file as tools/embed-wgsl.mjs embeds it, then generated code again.
    const code =
      'const N = 4u;\n// source: kernels/src/broken.wgsl, 2 lines\n' +
      '@compute @workgroup_size(1) fn main() {\n  let x: u32 = 1.5;\n}\nfn after() -> u32 { return 2.5; }';
    const err = await device.pipelines.get({ label: 'broken_file', code }, []).catch((e) => e);
    expect(err).toBeInstanceOf(ShaderCompileError);
    expect(err.messages[0]).toMatchObject({ line: 4, source: { file: 'kernels/src/broken.wgsl', line: 2 } });
    expect(err.message).toMatch(/kernels\/src\/broken\.wgsl:2:16 error: .*\(broken_file:4\)/);
    // line 6 is past the file's 2 lines: the wrapper wrote it, so it keeps the joined source's line
    const late = err.messages.find((m: { line: number }) => m.line === 6);
    if (late) expect(late.source).toBeUndefined();
    device.check();
  });

  it('reports a binding layout that disagrees with the shader', async () => {
    const err = await device.pipelines.get({ label: 'layout_mismatch', code: OK }, ['read']).catch((e) => e);
    expect(err).toBeInstanceOf(ShaderCompileError);
    expect(err.message).toMatch(/layout_mismatch/);
  });
});
