// Every kernel at the real model's shapes, next to the same device's copy bandwidth and FMA throughput.
//   npm run bench:kernels -- [--json] [--filter REGEX] [--time MS] [--profile]
// --time is the budget per case (default 1000 ms); a case slower than that runs once.

import { Device } from '@glm4v/core';
import { measureCeilings } from './ceilings.js';
import { type KernelCase, timeCase } from './harness.js';
import { cases as norms } from './norms.bench.js';
import { cases as rope } from './rope.bench.js';
import { cases as pointwise } from './pointwise.bench.js';
import { cases as embedding } from './embedding.bench.js';
import { cases as posembed } from './posembed.bench.js';
import { cases as patchEmbed } from './patch_embed.bench.js';
import { cases as sampling } from './sampling.bench.js';
import { cases as matmul } from './matmul.bench.js';
import { cases as matmulQuant } from './matmul_quant.bench.js';
import { cases as attention } from './attention.bench.js';

const ALL: KernelCase[] = [...norms, ...rope, ...pointwise, ...embedding, ...posembed, ...patchEmbed, ...sampling, ...matmul, ...matmulQuant, ...attention];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main() {
  const json = process.argv.includes('--json');
  const profile = process.argv.includes('--profile');
  const budget = Number(arg('--time') ?? 1000);
  const filter = new RegExp(arg('--filter') ?? '.');
  const device = await Device.create();
  const log = (s: string) => (json ? process.stderr.write(s + '\n') : console.log(s));
  log(device.describe());
  const ceil = await measureCeilings(device, budget);
  const deviceName = device.adapter.description || device.adapter.device;
  if (json) console.log(JSON.stringify({ kernel: 'ceiling', device: deviceName, copy_gbps: ceil.copyGBps, fma_gflops: ceil.fmaGflops, fma_f16_gflops: ceil.fmaF16Gflops ?? null }));
  else log(`ceilings: copy ${ceil.copyGBps.toFixed(2)} GB/s, FMA f32 ${ceil.fmaGflops.toFixed(1)} GFLOP/s${ceil.fmaF16Gflops ? `, FMA f16 ${ceil.fmaF16Gflops.toFixed(1)} GFLOP/s` : ''}`);

  const rows: Record<string, string | number>[] = [];
  for (const c of ALL) {
    const name = `${c.kernel} ${c.shape} ${c.dtype}`;
    if (!filter.test(name)) continue;
    const built = await c.build(device);
    try {
      const t = await timeCase(device, built, budget);
      const gbps = c.bytes / (t.ms * 1e6);
      const gflops = c.flops / (t.ms * 1e6);
      const fma = c.dtype.endsWith('f16a') && ceil.fmaF16Gflops ? ceil.fmaF16Gflops : ceil.fmaGflops;
      const fraction = c.bound === 'memory' ? gbps / ceil.copyGBps : gflops / fma;
      const rec = { kernel: c.kernel, shape: c.shape, dtype: c.dtype, bound: c.bound, ms: t.ms, gbps, gflops, fraction, runs: t.runs, timing: t.source, device: deviceName };
      if (json) console.log(JSON.stringify(rec));
      rows.push({
        kernel: c.kernel,
        shape: c.shape,
        dtype: c.dtype,
        ms: t.ms.toFixed(3),
        'GB/s': gbps.toFixed(2),
        'GFLOP/s': gflops.toFixed(2),
        'of ceiling': `${(fraction * 100).toFixed(1)}% ${c.bound === 'memory' ? 'copy' : 'FMA'}`,
      });
      if (profile) for (const e of await built.graph.profile(built.params)) log(`    ${e.label}: ${e.ms.toFixed(3)} ms`);
    } finally {
      built.dispose();
    }
  }
  if (!json) console.table(rows);
  device.dispose();
}

await main();
