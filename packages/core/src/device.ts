// The GPU device: adapter selection, requested limits and features, and the one place where uncaptured errors and
// device loss are turned into typed errors. Where `navigator.gpu` comes from is the host seam (`#host`): Dawn's
// Node binding (npm `webgpu`) under Node, the page's own in a browser (package.json conditions node / browser).

import { NO_ADAPTER_HELP, env, openGpu } from '#host';
import { DeviceError, DeviceLostError, OutOfMemoryError } from './errors.js';
import { BufferPool } from './buffer-pool.js';
import { PipelineCache } from './pipeline-cache.js';
import { debugLevel, debugLog } from './debug.js';

export { NO_ADAPTER_HELP } from '#host';

export type Backend = 'vulkan' | 'metal' | 'd3d12' | 'd3d11' | 'opengl' | 'opengles' | 'null';

export interface DeviceOptions {
  /** Dawn backend (Node only). Default: env GLM4V_BACKEND, else Vulkan (Metal on macOS, D3D12 on Windows). */
  backend?: Backend;
  /** Substring of the adapter name to pick when several exist (Node only). Default: env GLM4V_ADAPTER. */
  adapter?: string;
  /** Turn off optional features, e.g. to test the fallback kernels on hardware that has them. Default: env
   *  GLM4V_DISABLE_FEATURES (','-separated, e.g. `chromium-experimental-subgroup-matrix`). */
  disableFeatures?: readonly OptionalFeature[];
  /** Extra Dawn toggles (Node only), e.g. ['enable=allow_unsafe_apis']. Default: env GLM4V_DAWN_TOGGLES (';'-separated). */
  dawnToggles?: readonly string[];
}

export type OptionalFeature = 'shader-f16' | 'subgroups' | 'timestamp-query' | 'chromium-experimental-subgroup-matrix';
const OPTIONAL_FEATURES: readonly OptionalFeature[] = [
  'shader-f16',
  'subgroups',
  'timestamp-query',
  'chromium-experimental-subgroup-matrix',
];

/**
 * Dawn toggles a GPU adapter is opened with, so that it exposes its tensor cores to WGSL: subgroup matrices are an
 * experimental feature (allow_unsafe_apis), need the Vulkan memory model on Vulkan, and take f16 operands, which
 * Dawn holds back on NVIDIA's Vulkan driver unless asked. CPU adapters are opened without them: they have no
 * matrix units, and their code generation stays as measured.
 */
export const TENSOR_CORE_TOGGLES: readonly string[] = [
  'allow_unsafe_apis',
  'use_vulkan_memory_model',
  'vulkan_enable_f16_on_nvidia',
];

/** One shape the adapter's subgroup-matrix units multiply: [M, K] · [K, N] + [M, N]. */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

// Limits we raise to whatever the adapter allows: big weights, big workgroup tiles.
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
] as const;

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Dawn's backend under Node; 'browser' in a page. */
  backend: Backend | 'browser';
  isFallbackAdapter: boolean;
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  /** With the chromium-experimental-subgroup-matrix feature: the matrix shapes and types it offers. */
  subgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
}

/**
 * Whether an adapter runs on the CPU (lavapipe, SwiftShader, WARP): a fallback adapter or a 'software' architecture.
 * The one place this rule lives; kernels/src/adapter.ts asks it of a Device.
 */
export function isCpuAdapterInfo(info: { isFallbackAdapter?: boolean; architecture: string }): boolean {
  return Boolean(info.isFallbackAdapter) || info.architecture === 'software';
}

function envFeatures(): OptionalFeature[] {
  return (env('GLM4V_DISABLE_FEATURES') ?? '')
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean) as OptionalFeature[];
}

function matrixConfigs(info: GPUAdapterInfo): SubgroupMatrixConfig[] {
  const list = (info as { subgroupMatrixConfigs?: readonly SubgroupMatrixConfig[] }).subgroupMatrixConfigs ?? [];
  return list.map((c) => ({
    componentType: c.componentType,
    resultComponentType: c.resultComponentType,
    M: c.M,
    N: c.N,
    K: c.K,
  }));
}

async function openAdapter(
  opts: DeviceOptions,
  extraToggles: readonly string[] = [],
): Promise<{ navigatorGpu: GPU; adapter: GPUAdapter; backend: string }> {
  const { gpu: navigatorGpu, backend } = openGpu(opts, extraToggles);
  let adapter: GPUAdapter | null;
  try {
    adapter = await navigatorGpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    throw new DeviceError(`${NO_ADAPTER_HELP} (requestAdapter said: ${(e as Error).message})`, { cause: e });
  }
  if (!adapter) throw new DeviceError(`${NO_ADAPTER_HELP} (backend '${backend}')`);
  return { navigatorGpu, adapter, backend };
}

export class Device {
  readonly gpu: GPUDevice;
  readonly adapter: AdapterSummary;
  readonly features: ReadonlySet<string>;
  readonly limits: GPUSupportedLimits;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  private navigatorGpu: GPU | undefined;
  private lostError: DeviceLostError | undefined;
  private pendingError: Error | undefined;
  private disposed = false;

  private constructor(navigatorGpu: GPU, gpu: GPUDevice, adapter: AdapterSummary) {
    this.navigatorGpu = navigatorGpu;
    this.gpu = gpu;
    this.adapter = adapter;
    this.features = new Set([...gpu.features]);
    this.limits = gpu.limits;
    this.pool = new BufferPool(this);
    this.pipelines = new PipelineCache(this);
    gpu.lost.then((info) => {
      if (this.disposed) return;
      this.lostError = new DeviceLostError(info.reason, info.message || 'no message from the driver');
    });
    gpu.onuncapturederror = (ev) => this.recordError(ev.error);
  }

  /** Acquires an adapter and a device with the largest limits and all optional features the adapter offers. */
  static async create(opts: DeviceOptions = {}): Promise<Device> {
    const disabled = new Set(opts.disableFeatures ?? envFeatures());
    let { navigatorGpu, adapter, backend } = await openAdapter(opts);
    // A GPU is opened again with the tensor-core toggles (they must be set before the adapter is made).
    if (
      !isCpuAdapterInfo(adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean }) &&
      !disabled.has('chromium-experimental-subgroup-matrix')
    ) {
      const again = await openAdapter(opts, TENSOR_CORE_TOGGLES).catch(() => undefined);
      if (again) ({ navigatorGpu, adapter, backend } = again);
    }

    const requiredFeatures = OPTIONAL_FEATURES.filter(
      (f) => adapter.features.has(f) && !disabled.has(f),
    ) as GPUFeatureName[];
    const requiredLimits: Record<string, number> = {};
    for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name];
    let gpu: GPUDevice;
    try {
      gpu = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'glm4v' });
    } catch (e) {
      throw new DeviceError(
        `the adapter refused a device with features [${requiredFeatures.join(', ')}]: ${(e as Error).message}`,
        { cause: e },
      );
    }
    const info = adapter.info;
    const summary: AdapterSummary = {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      backend: backend as AdapterSummary['backend'],
      isFallbackAdapter: Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter),
      subgroupMinSize: (info as { subgroupMinSize?: number }).subgroupMinSize,
      subgroupMaxSize: (info as { subgroupMaxSize?: number }).subgroupMaxSize,
      subgroupMatrixConfigs: requiredFeatures.includes('chromium-experimental-subgroup-matrix' as GPUFeatureName)
        ? matrixConfigs(info)
        : [],
    };
    const device = new Device(navigatorGpu, gpu, summary);
    if (debugLevel() >= 1) debugLog(`[glm4v] ${device.describe()}\n`);
    return device;
  }

  has(feature: OptionalFeature): boolean {
    return this.features.has(feature);
  }

  /** One line: adapter, backend, optional features, key limits. */
  describe(): string {
    const a = this.adapter;
    const feats = OPTIONAL_FEATURES.filter((f) => this.has(f));
    const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
    return (
      `${a.description || a.device || a.vendor} [${a.vendor}/${a.architecture}, ${a.backend}${a.isFallbackAdapter ? ', software' : ''}] ` +
      `features: ${feats.join(', ') || 'none'}; max storage binding ${mib(this.limits.maxStorageBufferBindingSize)}, ` +
      `max buffer ${mib(this.limits.maxBufferSize)}, workgroup storage ${this.limits.maxComputeWorkgroupStorageSize} B` +
      (a.subgroupMinSize ? `, subgroup size ${a.subgroupMinSize}..${a.subgroupMaxSize}` : '') +
      (a.subgroupMatrixConfigs.length
        ? `, subgroup matrices ${a.subgroupMatrixConfigs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`).join(', ')}`
        : '')
    );
  }

  private recordError(error: GPUError): void {
    if (this.pendingError) return; // the first error is the informative one
    const msg = error.message.trim();
    this.pendingError =
      error instanceof GPUOutOfMemoryError
        ? new OutOfMemoryError(`GPU out of memory: ${msg}`)
        : new DeviceError(`GPU error: ${msg}`);
  }

  /** Throws the device's loss or the first uncaptured GPU error since the last check. Called at every sync point. */
  check(): void {
    if (this.disposed) throw new DeviceError('the device has been disposed');
    if (this.lostError) throw this.lostError;
    const err = this.pendingError;
    if (err) {
      this.pendingError = undefined;
      throw err;
    }
  }

  get isLost(): boolean {
    return this.lostError !== undefined;
  }

  /** Waits until all submitted work has finished, then reports any error it raised. */
  async sync(): Promise<void> {
    this.check();
    await this.guard(this.gpu.queue.onSubmittedWorkDone());
    this.check();
  }

  /** Awaits a GPU promise, turning a rejection caused by device loss into DeviceLostError. */
  async guard<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      // Dawn resolves `lost` just after rejecting pending work; give it a turn.
      await new Promise((r) => setTimeout(r, 0));
      if (this.lostError) throw this.lostError;
      throw new DeviceError(`GPU operation failed: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Frees every buffer and the device itself (so a Node process can exit). Safe to call twice. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool.destroyAll();
    this.gpu.destroy();
    this.navigatorGpu = undefined;
  }
}
