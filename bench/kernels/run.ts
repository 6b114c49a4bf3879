// Every kernel at the real model's shapes, next to the same device's copy bandwidth and FMA throughput (and the
// matrix units' where the adapter has subgroup matrices). GPUs run whole shapes; CPU adapters slices of the
// largest (labelled). Each case shows its GPU time (the sum of its dispatches' timestamps) beside the wall time of
// its whole graph; the GEMM tiles' shapes and workgroup-memory traffic per flop come first, then what each matvec
// variant launches at the decode shapes (workgroups, bytes in flight per workgroup).
//   npm run bench:kernels -- [--json] [--filter REGEX] [--time MS] [--profile]
// --time is the budget per case (default 1000 ms); a case slower than that runs once.

import { Device } from '@glm4v/core';
import { isCpuAdapter } from '@glm4v/kernels';
import { measureCeilings } from './ceilings.js';
import { type KernelCase, timeCase } from './harness.js';
import { cases as norms } from './norms.bench.js';
import { cases as rope } from './rope.bench.js';
import { cases as pointwise } from './pointwise.bench.js';
import { cases as embedding } from './embedding.bench.js';
import { cases as posembed } from './posembed.bench.js';
import { cases as patchEmbed } from './patch_embed.bench.js';
import { cases as sampling } from './sampling.bench.js';
import { cases as matmul, gemmTiles, matvecFigures, REFERENCE_SUBGROUP } from './matmul.bench.js';
import { cases as matmulQuant, quantMatvecFigures } from './matmul_quant.bench.js';
import { cases as attention } from './attention.bench.js';

function all(device: Device): KernelCase[] {
  const slice = isCpuAdapter(device);
  return [
    ...norms,
    ...rope,
    ...pointwise,
    ...embedding,
    ...posembed,
    ...patchEmbed,
    ...sampling,
    ...matmul(device, slice),
    ...matmulQuant(slice),
    ...attention(slice),
  ];
}

function printTiles(device: Device, json: boolean, log: (s: string) => void): void {
  const tiles = gemmTiles(device);
  if (json) {
    for (const t of tiles) console.log(JSON.stringify({ kernel: 'gemm_tile', ...t }));
    return;
  }
  log('GEMM tiles (workgroup memory read and written per flop; a flop is half a multiply-add):');
  console.table(
    tiles.map((t) => ({
      preset: t.preset,
      tile: t.tile,
      'per invocation': t.perThread,
      invocations: t.invocations,
      'workgroup bytes': t.workgroupBytes,
      'read B/FLOP': t.readPerFlop.toFixed(3),
      'written B/FLOP': t.writePerFlop.toFixed(4),
    })),
  );
}

function printMatvecs(json: boolean, log: (s: string) => void): void {
  const figures = [...matvecFigures(), ...quantMatvecFigures()];
  if (json) {
    for (const f of figures) console.log(JSON.stringify({ kernel: 'matvec_launch', ...f }));
    return;
  }
  log(
    `Matvec launches at the decode shapes (M = 1..8; split-K figures for subgroups of ${REFERENCE_SUBGROUP}, all rows in one chunk; bytes in flight: weights one workgroup loads before it uses the first):`,
  );
  console.table(
    figures.map((f) => ({
      variant: f.variant,
      weight: f.weight,
      'K→N': f.shape,
      workgroups: f.workgroups,
      'bytes in flight / workgroup': f.bytesInFlight,
      'rows / team (bcast: / invocation)': f.rows,
      'K slices': f.slices,
    })),
  );
}

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
  const matrixNote = ceil.matrixGflops
    ? `, matrix units ${ceil.matrixGflops.toFixed(0)} GFLOP/s`
    : ceil.matrixError
      ? ` (matrix units not measured: ${ceil.matrixError.split('\n')[0]})`
      : '';
  if (json)
    console.log(
      JSON.stringify({
        kernel: 'ceiling',
        device: deviceName,
        copy_gbps: ceil.copyGBps,
        fma_gflops: ceil.fmaGflops,
        fma_f16_gflops: ceil.fmaF16Gflops ?? null,
        matrix_gflops: ceil.matrixGflops ?? null,
      }),
    );
  else
    log(
      `ceilings: copy ${ceil.copyGBps.toFixed(2)} GB/s, FMA f32 ${ceil.fmaGflops.toFixed(1)} GFLOP/s${ceil.fmaF16Gflops ? `, FMA f16 ${ceil.fmaF16Gflops.toFixed(1)} GFLOP/s` : ''}${matrixNote}`,
    );
  printTiles(device, json, log);
  printMatvecs(json, log);

  const rows: Record<string, string | number>[] = [];
  for (const c of all(device)) {
    const name = `${c.kernel} ${c.shape} ${c.dtype}`;
    if (!filter.test(name)) continue;
    const built = await c.build(device);
    try {
      const t = await timeCase(device, built, budget);
      const gbps = c.bytes / (t.ms * 1e6);
      const gflops = c.flops / (t.ms * 1e6);
      const fma = c.dtype.endsWith('f16a') && ceil.fmaF16Gflops ? ceil.fmaF16Gflops : ceil.fmaGflops;
      const [fraction, of] =
        c.bound === 'memory'
          ? [gbps / ceil.copyGBps, 'copy']
          : c.bound === 'matrix' && ceil.matrixGflops
            ? [gflops / ceil.matrixGflops, 'matrix']
            : [gflops / fma, 'FMA'];
      const rec = {
        kernel: c.kernel,
        shape: c.shape,
        dtype: c.dtype,
        bound: c.bound,
        ms: t.ms,
        wall_ms: t.wallMs,
        gbps,
        gflops,
        fraction,
        of,
        runs: t.runs,
        timing: t.source,
        device: deviceName,
      };
      if (json) console.log(JSON.stringify(rec));
      rows.push({
        kernel: c.kernel,
        shape: c.shape,
        dtype: c.dtype,
        [t.source === 'timestamps' ? 'GPU ms (Σ dispatches)' : 'ms (wall)']: t.ms.toFixed(3),
        'wall ms (graph)': t.wallMs.toFixed(3),
        'GB/s': gbps.toFixed(2),
        'GFLOP/s': gflops.toFixed(2),
        'of ceiling': `${(fraction * 100).toFixed(1)}% ${of}`,
      });
      if (profile)
        for (const e of await built.graph.profile(built.params)) log(`    ${e.label}: ${e.ms.toFixed(3)} ms`);
    } finally {
      built.dispose();
    }
  }
  if (!json) console.table(rows);
  device.dispose();
}

await main();
