// Workgroup grids for counts above maxComputeWorkgroupsPerDimension (65535 on most devices): n workgroups
// become an (x, y) grid with x·y ≥ n, and the shader recovers its index as wid.x + wid.y · nwg.x, skipping
// the few past n.

import type { Device, Workgroups } from '@glm4v/core';

export function grid1d(device: Device, n: number): Workgroups {
  const max = device.limits.maxComputeWorkgroupsPerDimension;
  if (n <= max) return [n, 1];
  const y = Math.ceil(n / max);
  return [Math.ceil(n / y), y];
}
