#!/usr/bin/env node
// Prints the WebGPU adapter Dawn finds (one line) and exits 0, or exits 1 when there is none.
// Plain JavaScript on purpose: tools/setup.sh runs it before anything is built.
import { create } from 'webgpu';

const backend =
  process.env.GLM4V_BACKEND ??
  (process.platform === 'darwin' ? 'metal' : process.platform === 'win32' ? 'd3d12' : 'vulkan');
const gpu = create([`backend=${backend}`]);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
if (!adapter) {
  console.error(`no WebGPU adapter (backend ${backend})`);
  process.exit(1);
}
const i = adapter.info;
const features = ['shader-f16', 'subgroups', 'timestamp-query'].filter((f) => adapter.features.has(f));
console.log(
  `${i.description || i.device || i.vendor} [${i.vendor}/${i.architecture}, ${backend}] features: ${features.join(', ') || 'none'}; max storage binding ${adapter.limits.maxStorageBufferBindingSize / 2 ** 20} MiB`,
);
process.exit(0);
