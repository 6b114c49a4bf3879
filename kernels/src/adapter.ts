// What kernels and benchmarks ask of an adapter, in one place: CPU adapter or GPU, subgroup sizes, and the subgroup
// features the kernels build on. Each kernel's preset choice reads these, never device.adapter directly.

import { type Device, isCpuAdapterInfo } from '@glm4v/core';

/** Software adapters run each workgroup as a loop on one CPU thread, 8 lanes per SIMD step (lavapipe). */
export function isCpuAdapter(device: Device): boolean {
  return isCpuAdapterInfo(device.adapter);
}

/** The smallest subgroup the adapter may launch; 0 without the subgroups feature. */
export function minSubgroupSize(device: Device): number {
  return device.has('subgroups') ? (device.adapter.subgroupMinSize ?? 0) : 0;
}

/** The largest subgroup the adapter may launch; 0 without the subgroups feature. */
export function maxSubgroupSize(device: Device): number {
  return device.has('subgroups') ? (device.adapter.subgroupMaxSize ?? 0) : 0;
}

/** Every subgroup has at least `lanes` invocations (a team of `lanes` lanes fits in one subgroup). */
export function hasSubgroupsOf(device: Device, lanes: number): boolean {
  return minSubgroupSize(device) >= lanes;
}

/** The broadcast kernels share 8 x values through lanes 0..7 of each subgroup. */
export function canBroadcast(device: Device): boolean {
  return hasSubgroupsOf(device, 8);
}

/** Reductions by subgroup shuffles (split-K matvec teams). */
export function canReduceWithSubgroups(device: Device): boolean {
  return hasSubgroupsOf(device, 1);
}
