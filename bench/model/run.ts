// The whole model at the real GLM-4.1V-9B shapes with random weights made on the GPU (no checkpoint): prefill of
// 512 text tokens, decode steps (a recorded step replayed per token; the best of several rounds), one 1008×1008
// image through the vision tower, and the GPU memory, computed from the allocations for the full model too.
//   npm run bench:model -- [--layers N] [--vision-blocks M] [--prompt 512] [--steps 32] [--rounds 3] [--image 1008]
//                          [--quant bf16,q8,q4] [--quant-vision q8] [--repeat 1] [--profile] [--json]
// --quant takes a list: each format builds its own model in turn, in the same process, and the decode figures are
// printed side by side against the first (run the list several times with --repeat; each keeps its best).
// Defaults: all 40 layers and 24 blocks on a GPU; 2 and 2 on a software adapter (lavapipe), where the full model
// would take hours. The KV cache is f16 (where the adapter has shader-f16) for 4096 tokens, as a user's would be.
// --image 0 skips the vision tower (then the peak is the text-only one). --profile adds a decode step timed per
// dispatch (profile.ts): its GPU time beside its wall time, and a table per kernel family. Every run reports the
// host µs per decode step (step.run: rows table and uniforms written, the graph encoded and submitted) and the
// dispatches and uniform bytes one replay encodes and writes.

import { Device } from '@glm4v/core';
import { type QuantFormat, isCpuAdapter, isQuantFormat } from '@glm4v/kernels';
import { type Glm4vModel, type QuantRequest } from '@glm4v/runtime/internal';
import { glm41v9bConfig, randomModel } from '@glm4v/runtime/testing';
import { kvBytesPerLayer, modelMemory } from './memory.js';
import { PROFILE_STEPS, profileDecode } from './profile.js';

const FULL = { layers: 40, visionBlocks: 24 };
const CONTEXT = 4096;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const num = (name: string) => (arg(name) === undefined ? undefined : Number(arg(name)));

interface Options {
  layers: number;
  visionBlocks: number;
  prompt: number;
  steps: number;
  rounds: number;
  side: number;
  profile: boolean;
}

async function timeDecode(model: Glm4vModel, o: Options, log: (s: string) => void) {
  const ids = Int32Array.from({ length: o.prompt }, (_, i) => (i * 7919) % 150000);
  // warm-up in a throwaway session: 64 tokens take the same (matmul, not matvec) pipelines as the timed prefill
  const warm = await model.createSession(64);
  await model.prefill(warm, { ids: ids.slice(0, 64) });
  warm.dispose();
  const kv = model.device.has('shader-f16') ? 'f16' : 'f32';
  const session = await model.createSession(Math.max(CONTEXT, o.prompt + o.rounds * o.steps + 1 + PROFILE_STEPS), kv);
  try {
    await model.device.sync();
    let t = performance.now();
    await model.prefill(session, { ids });
    await session.readToken();
    const prefillMs = performance.now() - t;
    const step = await model.recordDecode(session.pool, 1);
    // One step in flight, as the Batcher keeps it: step i + 1 is submitted before step i's token (4 bytes) is read.
    // The host's cost of a step is the time step.run() takes: rows table and uniforms written, graph encoded, submitted.
    let hostUs = Infinity;
    const decode = async (n: number) => {
      let pending = session.readToken();
      for (let i = 0; i < n; i++) {
        const h = performance.now();
        await step.run([session]);
        hostUs = Math.min(hostUs, (performance.now() - h) * 1000);
        const next = session.readToken();
        await pending;
        pending = next;
      }
      await pending;
    };
    await decode(1); // warm-up: plans the graph and compiles the decode pipelines
    let decodeMs = Infinity;
    for (let r = 0; r < o.rounds; r++) {
      t = performance.now();
      await decode(o.steps);
      decodeMs = Math.min(decodeMs, (performance.now() - t) / o.steps);
      log(`  decode round ${r + 1}: ${((performance.now() - t) / o.steps).toFixed(1)} ms/token`);
    }
    const profiled = o.profile && model.device.has('timestamp-query');
    if (o.profile && !profiled) log('--profile: this adapter lacks timestamp-query; no per-dispatch times');
    const replay = step.lastRun;
    const profile = profiled ? await profileDecode(step, session) : undefined;
    step.dispose();
    return { prefillMs, decodeMs, hostUs, replay, kv, kvPerLayer: kvBytesPerLayer(session), profile };
  } finally {
    session.dispose();
  }
}

async function timeVision(model: Glm4vModel, side: number) {
  const grid = Math.round(side / 28) * 2; // patches per side
  const pixels = new Float32Array(grid * grid * 1176).map((_, i) => Math.sin(i) * 0.5);
  (await model.encodeVision({ pixelValues: pixels.slice(0, 4 * 1176), grids: [[1, 2, 2]] })).dispose(); // warm-up
  const t = performance.now();
  const embeds = await model.encodeVision({ pixelValues: pixels, grids: [[1, grid, grid]] });
  await embeds.read();
  const ms = performance.now() - t;
  embeds.dispose();
  return { ms, image: `${grid * 14}x${grid * 14}`, patches: grid * grid };
}

async function runOne(device: Device, quant: QuantRequest, o: Options, log: (s: string) => void) {
  const config = glm41v9bConfig({ layers: o.layers, visionDepth: o.visionBlocks });
  device.pool.trim();
  device.pool.resetPeaks();
  const base = device.pool.stats.bytesAllocated;
  const t = performance.now();
  const model = await randomModel(device, config, { seed: 1, quant });
  await device.sync();
  const buildMs = performance.now() - t;
  try {
    const weightBytes = device.pool.stats.bytesInUse;
    const mem = modelMemory(model);
    const d = await timeDecode(model, o, log);
    const textPeak = device.pool.stats.peakBytesAllocated - base; // prefill and decode, before any image
    const v = o.side > 0 ? await timeVision(model, o.side) : undefined;
    const peak = device.pool.stats.peakBytesAllocated - base;
    // every further layer adds its weights and its KV cache, every further vision block its weights
    const more =
      (FULL.layers - o.layers) * (mem.layerBytes + d.kvPerLayer) +
      (FULL.visionBlocks - o.visionBlocks) * mem.visionBlockBytes;
    return {
      bench: 'model',
      device: device.adapter.description || device.adapter.device,
      quant: quant.text ?? 'bf16',
      quant_vision: quant.vision ?? 'bf16',
      layers: o.layers,
      vision_blocks: o.visionBlocks,
      weight_bytes: weightBytes,
      weight_bytes_read_per_token: mem.readPerToken(o.layers),
      build_ms: buildMs,
      prefill_tokens: o.prompt,
      prefill_ms: d.prefillMs,
      prefill_tokens_per_s: o.prompt / (d.prefillMs / 1000),
      decode_steps: o.steps,
      decode_rounds: o.rounds,
      decode_ms_per_token: d.decodeMs,
      /** Host time of one decode step (step.run: rows table and uniforms written, graph encoded, submitted), best step. */
      decode_host_us_per_step: d.hostUs,
      decode_dispatches: d.replay.dispatches,
      decode_uniform_bytes_per_token: d.replay.uniformBytes,
      decode_rows_bytes_per_token: d.replay.rowsBytes,
      decode_gpu_ms: d.profile?.gpuMs,
      decode_families: d.profile?.families,
      vision_image: v?.image ?? null,
      vision_patches: v?.patches ?? null,
      vision_ms: v?.ms ?? null,
      kv_cache: `${CONTEXT} tokens ${d.kv}`,
      peak_gpu_bytes: peak,
      peak_gpu_bytes_text: textPeak,
      full_model: {
        layers: FULL.layers,
        vision_blocks: FULL.visionBlocks,
        weight_bytes:
          weightBytes +
          (FULL.layers - o.layers) * mem.layerBytes +
          (FULL.visionBlocks - o.visionBlocks) * mem.visionBlockBytes,
        weight_bytes_read_per_token: mem.readPerToken(FULL.layers),
        kv_cache_bytes: FULL.layers * d.kvPerLayer,
        /** With the image through the vision tower (its activations are the largest). */
        peak_gpu_bytes: peak + more,
        /** Text prompts: prefill and decode only. */
        peak_gpu_bytes_text: textPeak + more,
      },
    };
  } finally {
    model.dispose();
  }
}

function parseQuant(): QuantRequest[] {
  const vision = arg('--quant-vision');
  if (vision !== undefined && !isQuantFormat(vision))
    throw new Error(`--quant-vision expects q8 or q4, got '${vision}'`);
  return (arg('--quant') ?? 'bf16').split(',').map((f) => {
    if (f !== 'bf16' && !isQuantFormat(f)) throw new Error(`--quant expects a list of bf16, q8, q4; got '${f}'`);
    return { text: f === 'bf16' ? undefined : (f as QuantFormat), vision: vision as QuantFormat | undefined };
  });
}

function printProfile(
  wallMs: number,
  gpuMs: number,
  families: NonNullable<Awaited<ReturnType<typeof runOne>>['decode_families']>,
): void {
  const dispatches = families.reduce((n, f) => n + f.dispatches, 0);
  console.log(
    `  decode step: ${wallMs.toFixed(2)} ms wall per token, ${gpuMs.toFixed(2)} ms of GPU time over ${dispatches} dispatches (best of ${PROFILE_STEPS} profiled steps; gaps between dispatches excluded)`,
  );
  console.table(
    families.map((f) => ({
      family: f.family,
      dispatches: f.dispatches,
      'GPU ms': f.ms.toFixed(3),
      'of step': `${(f.share * 100).toFixed(1)}%`,
    })),
  );
}

async function main() {
  const json = process.argv.includes('--json');
  const log = (s: string) => (json ? process.stderr.write(s + '\n') : console.log(s));
  const device = await Device.create();
  const software = isCpuAdapter(device);
  const o: Options = {
    layers: num('--layers') ?? (software ? 2 : FULL.layers),
    visionBlocks: num('--vision-blocks') ?? (software ? 2 : FULL.visionBlocks),
    prompt: num('--prompt') ?? 512,
    steps: num('--steps') ?? 32,
    rounds: num('--rounds') ?? 3,
    side: num('--image') ?? 1008,
    profile: process.argv.includes('--profile'),
  };
  const formats = parseQuant();
  log(device.describe());
  log(`GLM-4.1V-9B shapes, random weights: ${o.layers} decoder layers, ${o.visionBlocks} vision blocks`);
  const best = new Map<string, Awaited<ReturnType<typeof runOne>>>();
  for (let rep = 0; rep < (num('--repeat') ?? 1); rep++) {
    for (const q of formats) {
      log(`${q.text ?? 'bf16'} (vision ${q.vision ?? 'bf16'}):`);
      const rec = await runOne(device, q, o, log);
      if (json) console.log(JSON.stringify(rec));
      else if (rec.decode_families) printProfile(rec.decode_ms_per_token, rec.decode_gpu_ms!, rec.decode_families);
      const key = `${rec.quant}/${rec.quant_vision}`;
      if (!best.has(key) || rec.decode_ms_per_token < best.get(key)!.decode_ms_per_token) best.set(key, rec);
    }
  }
  const rows = [...best.values()];
  const gb = (n: number) => (n / 1e9).toFixed(2);
  const table = Object.fromEntries(
    rows.map((r) => [
      r.quant + (r.quant_vision !== 'bf16' ? ` (vision ${r.quant_vision})` : ''),
      {
        'decode ms/token': r.decode_ms_per_token.toFixed(1),
        'host µs/step': r.decode_host_us_per_step.toFixed(0),
        'dispatches/token': r.decode_dispatches,
        'uniform B/token': r.decode_uniform_bytes_per_token,
        [`vs ${rows[0].quant}`]: (r.decode_ms_per_token / rows[0].decode_ms_per_token).toFixed(3),
        'prefill tok/s': r.prefill_tokens_per_s.toFixed(1),
        'vision ms': r.vision_ms?.toFixed(0) ?? '-',
        'weights GB': gb(r.weight_bytes),
        'read/token GB': gb(r.weight_bytes_read_per_token),
        'peak GB': gb(r.peak_gpu_bytes),
        '40 layers: read/token GB': gb(r.full_model.weight_bytes_read_per_token),
        [`40 layers, ${r.kv_cache}: peak GB (text)`]: `${gb(r.full_model.peak_gpu_bytes)} (${gb(r.full_model.peak_gpu_bytes_text)})`,
      },
    ]),
  );
  if (json) process.stderr.write(JSON.stringify(table) + '\n');
  else console.table(table);
  device.dispose();
}

await main();
