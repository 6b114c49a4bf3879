// Workgroup grids for counts above maxComputeWorkgroupsPerDimension (65535 on most devices): n workgroups
// become an (x, y) grid with x·y ≥ n, and the shader recovers its index as wid.x + wid.y · nwg.x, skipping
// the few past n.

import type { Device, Workgroups } from '@glm4v/core';

/**
 * Invocations per workgroup for a row of `items` independent pieces of work: the power of two covering them,
 * from 32 to 256 (fewer for narrow rows, since lavapipe pays for idle invocations).
 */
export function rowWorkgroupSize(items: number): number {
  return Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(Math.max(1, items)))));
}

export function grid1d(device: Device, n: number): Workgroups {
  const max = device.limits.maxComputeWorkgroupsPerDimension;
  if (n <= max) return [n, 1];
  const y = Math.ceil(n / max);
  return [Math.ceil(n / y), y];
}
