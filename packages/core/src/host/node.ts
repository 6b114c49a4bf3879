// The host seam, Node side (package.json "imports" #host, condition "node"/default): the GPU from Dawn's Node
// binding (npm `webgpu`) with its backend and toggles, environment variables, and stderr for debug output.

import { create, globals } from 'webgpu';
import { DeviceError } from '../errors.js';
import type { Backend, DeviceOptions } from '../device.js';

// GPUBufferUsage and friends are globals in browsers; Dawn's Node binding hands them to us instead.
Object.assign(globalThis, globals);

export const NO_ADAPTER_HELP =
  "No WebGPU adapter found. On Linux without a GPU, install Mesa's lavapipe Vulkan driver from Debian " +
  'bookworm-backports (the stock 22.x is too old for Dawn): run `bash tools/setup.sh` as root, or ' +
  '`apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`. With a GPU, install its Vulkan driver ' +
  'and the Vulkan loader (libvulkan1). Set GLM4V_BACKEND to pick another Dawn backend.';

export function env(name: string): string | undefined {
  return process.env[name];
}

export function debugWrite(text: string): void {
  process.stderr.write(text);
}

function defaultBackend(): Backend {
  const env = process.env.GLM4V_BACKEND;
  if (env) return env as Backend;
  if (process.platform === 'darwin') return 'metal';
  if (process.platform === 'win32') return 'd3d12';
  return 'vulkan';
}

function dawnFlags(opts: DeviceOptions, backend: Backend, extra: readonly string[]): string[] {
  const toggles = opts.dawnToggles ?? (process.env.GLM4V_DAWN_TOGGLES ?? '').split(';').filter(Boolean);
  // Unquantised timestamps: the kernel profile needs microsecond resolution.
  const enable: string[] = [...extra];
  const disable: string[] = ['timestamp_quantization'];
  for (const t of toggles) {
    const [kind, list] = t.split('=');
    const names = (list ?? '').split(',').filter(Boolean);
    if (kind === 'enable') enable.push(...names);
    else if (kind === 'disable') disable.push(...names);
    else throw new DeviceError(`bad Dawn toggle '${t}': expected 'enable=a,b' or 'disable=c'`);
  }
  const flags = [`backend=${backend}`, `disable-dawn-features=${disable.join(',')}`];
  if (enable.length) flags.push(`enable-dawn-features=${enable.join(',')}`);
  const adapter = opts.adapter ?? process.env.GLM4V_ADAPTER;
  if (adapter) flags.push(`adapter=${adapter}`);
  return flags;
}

// One Dawn instance per set of flags for the life of the process. An instance that is dropped is torn down by the
// garbage collector while its threads may still hold locks; with several per process (one per Device.create) that
// aborted Node at exit about one run in three ("terminate called ... Owner died").
const instances = new Map<string, GPU>();

/** Dawn's `navigator.gpu` for the chosen backend with `extraToggles` enabled, and that backend's name. */
export function openGpu(opts: DeviceOptions, extraToggles: readonly string[] = []): { gpu: GPU; backend: string } {
  const backend = opts.backend ?? defaultBackend();
  const flags = dawnFlags(opts, backend, extraToggles);
  const key = flags.join('\n');
  let gpu = instances.get(key);
  if (!gpu) {
    try {
      gpu = create(flags);
    } catch (e) {
      throw new DeviceError(`could not start Dawn with backend '${backend}': ${(e as Error).message}`, { cause: e });
    }
    instances.set(key, gpu);
  }
  return { gpu, backend };
}
