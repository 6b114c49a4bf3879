#!/usr/bin/env node
// glm4v-run: the command-line front end. Until the model lands, --demo shows the adapter in use and runs a
// small computation on it.

import { Device, Graph, Tensor } from '@glm4v/core';
import { rmsNorm } from '@glm4v/kernels';

async function demo(): Promise<void> {
  const device = await Device.create();
  try {
    console.log(`adapter: ${device.describe()}`);
    const x = await Tensor.fromArray(device, 'f32', [2, 4], [1, 2, 3, 4, -1, 0, 1, 2]);
    const w = await Tensor.fromArray(device, 'bf16', [4], [1, 1, 1, 1]);
    const g = new Graph(device, 'demo');
    const y = g.keep(rmsNorm(g, x, w, 1e-5));
    await g.run();
    console.log(`RMSNorm of [[1,2,3,4],[-1,0,1,2]] on the GPU: ${Array.from(await y.read(), (v) => v.toFixed(4)).join(' ')}`);
    g.dispose();
  } finally {
    device.dispose();
  }
}

const args = process.argv.slice(2);
if (args.includes('--demo')) {
  await demo();
} else {
  console.error('usage: glm4v-run --demo');
  process.exit(2);
}
