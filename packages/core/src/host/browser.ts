// The host seam, browser side (package.json "imports" #host, condition "browser"): the page's `navigator.gpu`,
// no environment variables, and the console for debug output.

import { DeviceError } from '../errors.js';
import type { DeviceOptions } from '../device.js';

export const NO_ADAPTER_HELP =
  'This browser offers no WebGPU adapter. Use a browser with WebGPU enabled (Chrome or Edge 113+, Safari 26+, ' +
  'Firefox 141+ on Windows), check that hardware acceleration is on, and serve the page over https or from localhost.';

/** Settings such as GLM4V_DEBUG may be set on the page as `globalThis.GLM4V_DEBUG = '1'`. */
export function env(name: string): string | undefined {
  const v = (globalThis as Record<string, unknown>)[name];
  return v === undefined ? undefined : String(v);
}

export function debugWrite(text: string): void {
  console.debug(text.trimEnd());
}

/** The page's `navigator.gpu`; Dawn's backend and toggles (the tensor-core ones too) are the browser's business. */
export function openGpu(_opts: DeviceOptions, _extraToggles: readonly string[] = []): { gpu: GPU; backend: string } {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) {
    throw new DeviceError(
      'WebGPU is not available: navigator.gpu is undefined. Use a browser with WebGPU (Chrome or Edge 113+, Safari 26+, ' +
        'Firefox 141+ on Windows) and open the page over https or from localhost (WebGPU needs a secure context).',
    );
  }
  return { gpu, backend: 'browser' };
}
