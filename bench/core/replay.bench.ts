// CPU cost per dispatch of a 400-dispatch graph: replaying a recorded graph with new uniforms versus
// recording, planning and submitting it afresh. GPU execution is excluded (each iteration waits for the GPU
// outside the timed function), and the kernel is trivial, so the figures are the scheduler's own cost.
//   node bench/dist/core/replay.bench.js [--json]

import { Bench } from 'tinybench';
import { Device, Graph, Tensor, UniformLayout, type KernelSpec } from '@glm4v/core';

const DISPATCHES = 400;
const N = 256;

const STEP: KernelSpec = {
  label: 'bench_step',
  code: /* wgsl */ `
struct Params { n: u32, pos: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < p.n) { y[g.x] = x[g.x] + f32(p.pos); }
}`,
};
const PARAMS = new UniformLayout('n: u32, pos: u32');

function record(device: Device, x: Tensor): Graph {
  const g = new Graph(device, 'bench');
  let t = x;
  for (let i = 0; i < DISPATCHES; i++) {
    const y = g.tensor('f32', [N], `step${i}`);
    g.dispatch({
      kernel: STEP,
      uniforms: { layout: PARAMS, values: (p) => ({ n: N, pos: p.pos }) },
      inputs: [t],
      outputs: [y],
      workgroups: [N / 64],
    });
    t = y;
  }
  g.keep(t);
  return g;
}

async function main() {
  const json = process.argv.includes('--json');
  const device = await Device.create();
  const x = await Tensor.fromArray(device, 'f32', [N], new Float32Array(N));
  const replay = record(device, x);
  await replay.run({ pos: 0 });
  await device.sync();

  let pos = 0;
  const bench = new Bench({ time: 2000, warmupTime: 300 });
  const sync = { afterEach: () => device.sync() };
  bench.add('replay (write uniforms, encode, submit)', async () => replay.run({ pos: ++pos }), sync);
  bench.add(
    'record afresh (record, plan, encode, submit, dispose)',
    async () => {
      const g = record(device, x);
      await g.run({ pos: ++pos });
      g.dispose();
    },
    sync,
  );
  await bench.run();

  const rows = bench.tasks.map((t) => {
    const mean = (t.result as unknown as { latency: { mean: number } }).latency.mean;
    return { task: t.name, dispatches: DISPATCHES, ms_per_graph: mean, us_per_dispatch: (mean * 1000) / DISPATCHES };
  });
  if (json)
    for (const r of rows)
      console.log(JSON.stringify({ bench: 'graph_replay', device: device.adapter.description, ...r }));
  else {
    console.log(device.describe());
    console.table(
      rows.map((r) => ({
        task: r.task,
        'ms / graph': r.ms_per_graph.toFixed(3),
        'µs / dispatch': r.us_per_dispatch.toFixed(2),
      })),
    );
    console.log(
      `replay is ${(rows[1].us_per_dispatch / rows[0].us_per_dispatch).toFixed(1)}× cheaper per dispatch than recording afresh`,
    );
  }
  replay.dispose();
  x.dispose();
  device.dispose();
}

await main();
