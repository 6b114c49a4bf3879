// Compute pipelines, cached by WGSL source, entry point, override constants and binding layout. Concurrent
// requests for one key share one compile. Compile failures become ShaderCompileError with line and column, each
// traced back to its .wgsl file and line where the source carries embed-wgsl's markers (source-lines.ts).

import type { Device } from './device.js';
import { ShaderCompileError, type ShaderMessage } from './errors.js';
import { debugLevel, debugLog } from './debug.js';
import { sourceLineOf } from './source-lines.js';

export interface KernelSpec {
  /** The variant's name (e.g. 'matmul_bf16w_f32a_64x64x16'): the GPU objects' label, shown in errors and profiles. */
  label: string;
  code: string;
  entryPoint?: string;
  /** Values for the shader's `override` declarations. */
  constants?: Readonly<Record<string, number>>;
}

/** Binding kinds of group 0, in binding order: a uniform block, read-only storage, read-write storage. */
export type BindingKind = 'uniform' | 'read' | 'write';

export class PipelineCache {
  private readonly device: Device;
  private readonly modules = new Map<string, Promise<GPUShaderModule>>();
  private readonly pipelines = new Map<string, Promise<GPUComputePipeline>>();
  private readonly layouts = new Map<string, GPUBindGroupLayout>();
  compiles = 0;

  constructor(device: Device) {
    this.device = device;
  }

  /** The explicit bind group layout for a list of binding kinds (shared by every pipeline with that list). */
  bindGroupLayout(kinds: readonly BindingKind[]): GPUBindGroupLayout {
    const key = kinds.join(',');
    let layout = this.layouts.get(key);
    if (!layout) {
      const entries: GPUBindGroupLayoutEntry[] = kinds.map((k, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: k === 'uniform' ? 'uniform' : k === 'read' ? 'read-only-storage' : 'storage' },
      }));
      layout = this.device.gpu.createBindGroupLayout({ entries, label: `layout(${key})` });
      this.layouts.set(key, layout);
    }
    return layout;
  }

  get(spec: KernelSpec, kinds: readonly BindingKind[]): Promise<GPUComputePipeline> {
    const constants = spec.constants ?? {};
    const constKey = Object.keys(constants)
      .sort()
      .map((k) => `${k}=${constants[k]}`)
      .join(',');
    const key = `${spec.entryPoint ?? 'main'}|${constKey}|${kinds.join(',')}|${spec.code}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.compile(spec, kinds);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key)); // a failed compile is not cached
    }
    return p;
  }

  private module(spec: KernelSpec): Promise<GPUShaderModule> {
    let m = this.modules.get(spec.code);
    if (!m) {
      m = this.compileModule(spec);
      this.modules.set(spec.code, m);
      m.catch(() => this.modules.delete(spec.code));
    }
    return m;
  }

  private async compileModule(spec: KernelSpec): Promise<GPUShaderModule> {
    const gpu = this.device.gpu;
    if (debugLevel() >= 2) debugLog(`[glm4v] WGSL ${spec.label}:\n${numbered(spec.code)}\n`);
    gpu.pushErrorScope('validation');
    const module = gpu.createShaderModule({ code: spec.code, label: spec.label });
    const scopeError = gpu.popErrorScope();
    const info = await this.device.guard(module.getCompilationInfo());
    await scopeError;
    const messages: ShaderMessage[] = info.messages.map((m) => ({
      type: m.type as ShaderMessage['type'],
      line: m.lineNum,
      column: m.linePos,
      message: m.message,
      source: sourceLineOf(spec.code, m.lineNum),
    }));
    if (messages.some((m) => m.type === 'error')) throw new ShaderCompileError(spec.label, messages);
    return module;
  }

  private async compile(spec: KernelSpec, kinds: readonly BindingKind[]): Promise<GPUComputePipeline> {
    const module = await this.module(spec);
    const gpu = this.device.gpu;
    this.compiles++;
    try {
      return await gpu.createComputePipelineAsync({
        label: spec.label,
        layout: gpu.createPipelineLayout({ bindGroupLayouts: [this.bindGroupLayout(kinds)], label: spec.label }),
        compute: { module, entryPoint: spec.entryPoint ?? 'main', constants: { ...(spec.constants ?? {}) } },
      });
    } catch (e) {
      this.device.check();
      throw new ShaderCompileError(
        spec.label,
        [],
        `pipeline creation failed (bindings [${kinds.join(', ')}], constants ${JSON.stringify(spec.constants ?? {})}): ${(e as Error).message}`,
      );
    }
  }
}

function numbered(code: string): string {
  return code
    .split('\n')
    .map((l, i) => `${String(i + 1).padStart(4)}  ${l}`)
    .join('\n');
}
