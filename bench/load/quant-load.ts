// Loading with quantisation (`npm run bench:load -- --quant q4`): the same synthetic checkpoint loaded as a model
// three ways, alternating: as stored (bf16), quantised while it streams (Glm4v.load's `quant`), and from the folder
// `glm4v-run quantize` writes (quantised once, beforehand: that one-off time is reported too). Seconds, CPU
// seconds and the host memory the load adds (RSS rise minus the GPU buffers allocated meanwhile on a software
// adapter, where "GPU" memory is host memory).

import { rm } from 'node:fs/promises';
import type { Device } from '@glm4v/core';
import type { QuantFormat } from '@glm4v/kernels';
import { loadModel, quantizeCheckpoint } from '@glm4v/runtime/internal';

export interface Measured {
  seconds: number;
  cpuSeconds: number;
  peakOverhead: number;
}

export async function quantLoads(
  device: Device,
  dir: string,
  format: QuantFormat,
  reps: number,
  measure: <T>(fn: () => Promise<T>) => Promise<{ r: Measured; value: T }>,
  log: (s: string) => void,
) {
  const quantized = `${dir}-${format}`;
  await rm(quantized, { recursive: true, force: true });
  const once = await measure(() => quantizeCheckpoint(dir, quantized, { text: format }));
  log(`glm4v-run quantize (once): ${once.r.seconds.toFixed(1)} s, ${once.r.cpuSeconds.toFixed(1)} CPU s`);
  const kinds = {
    bf16: () => loadModel(dir, device),
    [`${format} on load`]: () => loadModel(dir, device, { quantFormats: { text: format } }),
    [`${format} stored`]: () => loadModel(quantized, device),
  };
  const runs: Record<string, Measured[]> = {};
  try {
    for (let r = 0; r < reps; r++) {
      for (const [kind, load] of Object.entries(kinds)) {
        device.pool.trim();
        const { r: m, value } = await measure(load);
        value.model.dispose();
        (runs[kind] ??= []).push(m);
        log(
          `  ${kind}: ${m.seconds.toFixed(1)} s, ${m.cpuSeconds.toFixed(1)} CPU s, host overhead ${(m.peakOverhead / 2 ** 20).toFixed(0)} MiB`,
        );
      }
    }
  } finally {
    await rm(quantized, { recursive: true, force: true });
  }
  const best = (k: string) => Math.min(...runs[k].map((m) => m.seconds));
  return {
    bench: 'load-quant',
    format,
    quantize_once_s: once.r.seconds,
    ...Object.fromEntries(Object.keys(kinds).map((k) => [`${k.replace(/ /g, '_')}_s`, best(k)])),
    host_overhead_mib:
      Math.max(
        ...Object.values(runs)
          .flat()
          .map((m) => m.peakOverhead),
      ) /
      2 ** 20,
  };
}
