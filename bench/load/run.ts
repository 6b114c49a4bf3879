// Checkpoint loading: GB/s and peak host memory of WeightLoader (through loadCheckpoint) on a synthetic sharded
// GLM-4.1V checkpoint with the real tensor names and shapes, next to a plain read-and-writeBuffer loop over the
// same files in the same run.
//   npm run bench:load -- [--gb 6] [--shard-gb 2] [--staging-mib 64] [--reps 3] [--cold-reps 1] [--dir PATH] [--keep] [--json]
//                         [--quant q8|q4]   (instead: bf16 vs quantised on load vs quantised beforehand; quant.ts)
// --gb sets the checkpoint size (e.g. --gb 1 on small machines); --dir reuses a folder written by an earlier --keep.
//
// Cold runs upload into freshly allocated GPU memory, warm runs into the same GPU buffers again (the pool's, and
// for the plain loop the very buffers the loader filled). Runs alternate plain/loader so each pair sees the same
// machine load; the ratio reported is the median over pairs, by wall time and by process CPU time.
// Targets: peak RSS < 1 GiB above the baseline; loader ≥ 70% of the plain loop's GB/s.
// On a software adapter (lavapipe) "GPU" buffers live in host memory, so the RSS rise includes the uploaded
// weights themselves; the host overhead reported there is the RSS rise minus the GPU buffer bytes allocated.

import { mkdtemp, open, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ChunkedTensor, Device } from '@glm4v/core';
import { Checkpoint, loadCheckpoint } from '@glm4v/runtime/internal';
import { writeSynthetic } from './synthetic.js';
import { quantLoads } from './quant-load.js';
import { isCpuAdapter, isQuantFormat } from '@glm4v/kernels';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** Samples RSS every few ms; `gpu()` gives the GPU buffer bytes allocated at that moment. */
class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  readonly baseline = process.memoryUsage.rss();
  private readonly gpu0: number;
  peakRss = 0;
  peakOverhead = 0;
  constructor(private readonly gpu: () => number) {
    this.gpu0 = gpu();
    this.sample();
    this.timer = setInterval(() => this.sample(), 5);
  }
  sample(): void {
    const rise = process.memoryUsage.rss() - this.baseline;
    this.peakRss = Math.max(this.peakRss, rise);
    this.peakOverhead = Math.max(this.peakOverhead, rise - (this.gpu() - this.gpu0));
  }
  stop(): { peakRss: number; peakOverhead: number } {
    this.sample();
    clearInterval(this.timer);
    return { peakRss: this.peakRss, peakOverhead: this.peakOverhead };
  }
}

interface Result {
  seconds: number;
  /** CPU time of the whole process (all threads): less sensitive than wall time to other load on the machine. */
  cpuSeconds: number;
  gbps: number;
  peakRss: number;
  peakOverhead: number;
}

/** Times `fn`, sampling RSS meanwhile; `gpuBytes()` tells how much GPU memory is allocated at any moment. */
async function measure<T>(
  bytes: number,
  gpuBytes: () => number,
  fn: () => Promise<T>,
): Promise<{ r: Result; value: T }> {
  const rss = new RssSampler(gpuBytes);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    r: { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, gbps: bytes / seconds / 1e9, ...rss.stop() },
    value,
  };
}

/** GPU buffers to fill in order, with the bytes each takes. */
type Dest = { buffer: GPUBuffer; size: number }[];

/** The loaded tensors' chunk buffers in storage order: the same destination memory the loader wrote. */
function destOf(ckpt: Checkpoint, tensors: Map<string, ChunkedTensor>): Dest {
  return ckpt.inFileOrder().flatMap((t) =>
    tensors.get(t.name)!.chunks.map((c) => ({
      buffer: c.tensor.buffer,
      size: Math.ceil((c.rows * tensors.get(t.name)!.rowSize * 2) / 4) * 4,
    })),
  );
}

/**
 * The plain loop: every shard's data section read sequentially into one 16 MiB array, each piece written with
 * writeBuffer; into fresh GPU buffers of up to 128 MiB (cold, pushed to `created`), or into `dest` (warm).
 */
async function plainLoop(
  device: Device,
  ckpt: Checkpoint,
  dest?: Dest,
  created: GPUBuffer[] = [],
): Promise<GPUBuffer[]> {
  const piece = 16 * MiB;
  const staging = new Uint8Array(piece);
  let d = -1;
  let room = 0;
  let at = 0;
  const next = (remaining: number) => {
    d++;
    at = 0;
    if (dest) return (room = dest[d].size);
    const size = Math.min(128 * MiB, Math.ceil(remaining / 4) * 4);
    created.push(device.gpu.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST }));
    return (room = size);
  };
  for (const f of ckpt.files.values()) {
    const infos = [...f.tensors.values()];
    const end = Math.max(...infos.map((t) => t.offset + t.byteLength));
    const handle = await open(f.path, 'r');
    for (let pos = Math.min(...infos.map((t) => t.offset)); pos < end;) {
      if (room === 0) next(end - pos);
      const n = Math.min(piece, end - pos, room);
      await handle.read(staging, 0, n, pos);
      device.gpu.queue.writeBuffer(dest ? dest[d].buffer : created[d], at, staging.buffer, 0, Math.ceil(n / 4) * 4);
      pos += n;
      at += n;
      room -= n;
    }
    await handle.close();
    if (!dest) room = 0; // a cold pass starts each shard in a fresh buffer
  }
  await device.gpu.queue.onSubmittedWorkDone();
  return created;
}

/** The first bytes of a few tensors on the GPU equal the file's. */
async function spotCheck(dir: string, tensors: Map<string, ChunkedTensor>): Promise<void> {
  const ckpt = await Checkpoint.open(dir);
  try {
    const names = [...tensors.keys()].filter((_, i) => i % 50 === 0);
    for (const name of names) {
      const m = tensors.get(name)!;
      const gpu = await m.chunks[0].tensor.readBytes();
      const n = Math.min(4096, m.chunks[0].rows * m.rowSize * 2);
      const file = await ckpt.read(ckpt.tensors.get(name)!, 0, n);
      if (Buffer.compare(gpu.subarray(0, n), file) !== 0) throw new Error(`tensor '${name}' differs on the GPU`);
    }
  } finally {
    await ckpt.close();
  }
}

type Kind = 'plain cold' | 'loader cold' | 'plain warm' | 'loader warm';
const KINDS: Kind[] = ['plain cold', 'loader cold', 'plain warm', 'loader warm'];

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function report(
  runs: Record<Kind, Result[]>,
  device: Device,
  total: number,
  stagingMiB: number,
  json: boolean,
  log: (s: string) => void,
): void {
  const best = (k: Kind) => (runs[k].length ? Math.max(...runs[k].map((r) => r.gbps)) : NaN);
  const worst = (k: Kind, f: (r: Result) => number) => (runs[k].length ? Math.max(...runs[k].map(f)) : NaN);
  // Runs alternate plain/loader, so a pair shares the machine's load; the median pair ratio is the robust figure.
  const pairRatio = (cold: boolean) =>
    median(
      runs[cold ? 'loader cold' : 'loader warm'].map(
        (l, i) => l.gbps / runs[cold ? 'plain cold' : 'plain warm'][i].gbps,
      ),
    );
  const cpuRatio = (cold: boolean) =>
    median(
      runs[cold ? 'loader cold' : 'loader warm'].map(
        (l, i) => runs[cold ? 'plain cold' : 'plain warm'][i].cpuSeconds / l.cpuSeconds,
      ),
    );
  const software = isCpuAdapter(device);
  // Host memory the loader itself adds: the RSS rise minus the GPU buffers allocated meanwhile (host memory on a
  // software adapter only); on a real GPU, the RSS rise itself.
  const overhead = (k: Kind) => worst(k, (r) => (software ? r.peakOverhead : r.peakRss));
  const record = {
    bench: 'load',
    device: device.adapter.description || device.adapter.device,
    software_adapter: software,
    bytes: total,
    staging_mib: stagingMiB,
    loader_cold_gbps: best('loader cold'),
    plain_cold_gbps: best('plain cold'),
    cold_ratio: pairRatio(true),
    cold_cpu_ratio: cpuRatio(true),
    loader_warm_gbps: best('loader warm'),
    plain_warm_gbps: best('plain warm'),
    warm_ratio: pairRatio(false),
    warm_cpu_ratio: cpuRatio(false),
    loader_host_overhead: Math.max(
      ...(['loader cold', 'loader warm'] as Kind[]).filter((k) => runs[k].length).map(overhead),
    ),
    loader_warm_rss_rise: worst('loader warm', (r) => r.peakRss),
    plain_host_overhead: Math.max(
      ...(['plain cold', 'plain warm'] as Kind[]).filter((k) => runs[k].length).map(overhead),
    ),
  };
  if (json) {
    console.log(JSON.stringify(record));
    return;
  }
  const rows = KINDS.flatMap((k) =>
    runs[k].map((x) => ({
      run: k,
      'GB/s': x.gbps.toFixed(3),
      seconds: x.seconds.toFixed(2),
      'CPU s': x.cpuSeconds.toFixed(2),
      'peak RSS rise': `${(x.peakRss / MiB).toFixed(0)} MiB`,
      'minus new GPU buffers': `${(x.peakOverhead / MiB).toFixed(0)} MiB`,
    })),
  );
  console.table(rows);
  log(
    'cold: into freshly allocated GPU memory; warm: into GPU buffers already allocated and written once (pool reuse).',
  );
  if (software)
    log('On this software adapter, cold runs are bound by first-touch page faults of the new "GPU" (host) memory.');
  const pct = (x: number) => (Number.isNaN(x) ? 'n/a' : `${(x * 100).toFixed(0)}%`);
  const ratios = [record.cold_ratio, record.warm_ratio].filter((x) => !Number.isNaN(x));
  log(
    `loader / plain loop (median of alternating pairs): cold ${pct(record.cold_ratio)}, warm ${pct(record.warm_ratio)}; ` +
      `by CPU time: cold ${pct(record.cold_cpu_ratio)}, warm ${pct(record.warm_cpu_ratio)}; target ≥ 70%: ${Math.min(...ratios) >= 0.7 ? 'met' : 'NOT met'}`,
  );
  log(
    `loader peak host memory above baseline: ${(record.loader_host_overhead / MiB).toFixed(0)} MiB ` +
      `(warm run RSS rise ${Number.isNaN(record.loader_warm_rss_rise) ? 'n/a' : `${(record.loader_warm_rss_rise / MiB).toFixed(0)} MiB`}); target < 1024 MiB: ${record.loader_host_overhead < GiB ? 'met' : 'NOT met'}`,
  );
}

/** Cold pairs (fresh GPU memory each), then warm pairs (the same GPU buffers again), plain and loader alternating. */
async function runAll(
  device: Device,
  ckpt: Checkpoint,
  dir: string,
  opts: { stagingMiB: number; reps: number; coldReps: number },
): Promise<Record<Kind, Result[]>> {
  const runs: Record<Kind, Result[]> = { 'plain cold': [], 'loader cold': [], 'plain warm': [], 'loader warm': [] };
  const total = ckpt.totalBytes;
  const load = async () => {
    let last = 0;
    const loaded = await loadCheckpoint(dir, device, {
      maxStagingBytes: opts.stagingMiB * MiB,
      onProgress: (p) => (last = p.bytesDone),
    });
    if (last !== total) throw new Error(`progress ended at ${last} bytes, expected ${total}`);
    return loaded;
  };
  const gpu = () => device.pool.stats.bytesAllocated;
  let loaded: Awaited<ReturnType<typeof load>> | undefined;
  try {
    for (let r = 0; r < opts.coldReps; r++) {
      loaded?.dispose();
      loaded = undefined;
      device.pool.trim();
      const created: GPUBuffer[] = [];
      const p = await measure(
        total,
        () => created.reduce((a, b) => a + b.size, 0),
        () => plainLoop(device, ckpt, undefined, created),
      );
      runs['plain cold'].push(p.r);
      for (const b of created) b.destroy();
      const l = await measure(total, gpu, load);
      runs['loader cold'].push(l.r);
      loaded = l.value;
    }
    loaded ??= await load(); // warm runs need one load first
    for (let r = 0; r < opts.reps; r++) {
      const dest = destOf(ckpt, loaded!.tensors);
      runs['plain warm'].push(
        (
          await measure(
            total,
            () => 0,
            () => plainLoop(device, ckpt, dest),
          )
        ).r,
      );
      loaded!.dispose(); // back to the pool: the next load reuses the same buffers
      loaded = undefined;
      const l = await measure(total, gpu, load);
      runs['loader warm'].push(l.r);
      loaded = l.value;
    }
    await spotCheck(dir, loaded!.tensors);
  } finally {
    loaded?.dispose();
    device.pool.trim();
  }
  return runs;
}

async function main() {
  const json = process.argv.includes('--json');
  const log = (s: string) => (json ? process.stderr.write(s + '\n') : console.log(s));
  const target = Number(arg('--gb') ?? 6) * 1e9;
  const maxShard = Number(arg('--shard-gb') ?? 2) * 1e9;
  const stagingMiB = Number(arg('--staging-mib') ?? 64);
  const reps = Number(arg('--reps') ?? 3);
  const coldReps = Number(arg('--cold-reps') ?? 1);
  const keep = process.argv.includes('--keep');
  const given = arg('--dir');

  const dir = given ?? (await mkdtemp(join(tmpdir(), 'glm4v-loadbench-')));
  let device: Device | undefined;
  try {
    if (!given) {
      const fs = await statfs(tmpdir());
      const free = fs.bavail * fs.bsize;
      const need = target * 1.1 + GiB;
      if (free < need)
        throw new Error(
          `${tmpdir()} has ${(free / 1e9).toFixed(1)} GB free; the benchmark needs ${(need / 1e9).toFixed(1)} GB (try --gb 1)`,
        );
      log(`writing a synthetic checkpoint of ~${(target / 1e9).toFixed(1)} GB to ${dir}`);
      const t0 = performance.now();
      const syn = await writeSynthetic(dir, target, maxShard, log);
      log(
        `  ${syn.tensors} tensors, ${syn.textLayers} text layers, ${syn.visionBlocks} vision blocks, ${syn.shards.length} shards, ` +
          `${(syn.totalBytes / 1e9).toFixed(2)} GB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
      );
    }
    device = await Device.create();
    log(device.describe());
    const quant = arg('--quant');
    if (quant !== undefined && !isQuantFormat(quant)) throw new Error(`--quant expects q8 or q4, got '${quant}'`);
    if (quant) {
      const d = device;
      const gpu = () => d.pool.stats.bytesAllocated;
      const rec = await quantLoads(
        d,
        dir,
        quant,
        reps,
        async (fn) => {
          const m = await measure(1, gpu, fn);
          return {
            r: { seconds: m.r.seconds, cpuSeconds: m.r.cpuSeconds, peakOverhead: m.r.peakOverhead },
            value: m.value,
          };
        },
        log,
      );
      if (json) console.log(JSON.stringify(rec));
      else console.table(rec);
      return;
    }
    const ckpt = await Checkpoint.open(dir);
    try {
      const runs = await runAll(device, ckpt, dir, { stagingMiB, reps, coldReps });
      report(runs, device, ckpt.totalBytes, stagingMiB, json, log);
    } finally {
      await ckpt.close();
    }
  } finally {
    device?.dispose();
    if (!given && !keep) await rm(dir, { recursive: true, force: true });
    else if (keep) log(`kept ${dir}`);
  }
}

await main();
