// What every kernel benchmark case provides, and how one case is timed. Cases live beside their family
// (bench/kernels/<family>.bench.ts) and reuse the shapes of the real model.

import { Bench } from 'tinybench';
import type { Device, Graph, Params } from '@glm4v/core';

export interface KernelCase {
  /** Kernel family or variant, e.g. 'matvec'. */
  kernel: string;
  /** The shape in the model's terms, e.g. '4096x4096' or 'ctx=8192'. */
  shape: string;
  /** Weight and activation types, e.g. 'bf16w_f32a'. */
  dtype: string;
  /** Which ceiling the kernel is judged against: copy bandwidth, FMA throughput, or the matrix units' throughput. */
  bound: 'memory' | 'compute' | 'matrix';
  /** Bytes the kernel must move per run (weights + activations + outputs). */
  bytes: number;
  /** Floating-point operations per run (2 per multiply-add). */
  flops: number;
  /** Records the kernel into a planned graph over random inputs. */
  build(device: Device): Promise<BuiltCase>;
}

export interface BuiltCase {
  graph: Graph;
  params?: Params;
  dispose(): void;
}

export interface Timing {
  /** Milliseconds per run: the best of several runs' sums of per-dispatch GPU timestamps where the device has them,
   *  else the mean wall time of run + sync. The sum leaves out the gaps between dispatches. */
  ms: number;
  /** Mean wall time of the whole graph: submit, run and wait. */
  wallMs: number;
  runs: number;
  source: 'timestamps' | 'wall';
}

/**
 * Times one built case. The first run (after planning, which compiles) is always measured; when it took
 * longer than `budgetMs` it is the only one, so a full bench stays within minutes on a software adapter.
 */
export async function timeCase(device: Device, c: BuiltCase, budgetMs: number): Promise<Timing> {
  await c.graph.plan();
  const t0 = performance.now();
  await c.graph.run(c.params);
  await device.sync();
  const first = performance.now() - t0;
  let wallMs = first;
  let runs = 1;
  if (first < budgetMs) {
    const bench = new Bench({ time: budgetMs, iterations: 3, warmup: false });
    bench.add('case', async () => {
      await c.graph.run(c.params);
      await device.sync();
    });
    await bench.run();
    const r = bench.tasks[0].result as unknown as { latency: { mean: number; samplesCount?: number }; runs?: number };
    wallMs = r.latency.mean;
    runs += bench.tasks[0].runs;
  }
  if (!device.has('timestamp-query')) return { ms: wallMs, wallMs, runs, source: 'wall' };
  // GPU time: the best of several timestamped runs (each dispatch in its own pass; their sum). The best, not the
  // median: on a shared or software device other load only ever slows a run down, and the ceilings are measured
  // the same way, so a fraction compares like with like.
  let best = Infinity;
  const reps = first < budgetMs ? Math.max(5, Math.min(15, Math.floor(budgetMs / Math.max(first, 1e-3)))) : 1;
  for (let i = 0; i < reps; i++)
    best = Math.min(
      best,
      (await c.graph.profile(c.params)).reduce((s, e) => s + e.ms, 0),
    );
  return { ms: best, wallMs, runs, source: 'timestamps' };
}
