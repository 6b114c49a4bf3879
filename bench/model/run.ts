// The whole model at the real GLM-4.1V-9B shapes with random weights made on the GPU (no checkpoint):
// prefill of 512 text tokens, 32 decode steps (a recorded step replayed per token), and one 1008×1008 image
// through the vision tower. Reports decode ms/token, prefill tokens/s, vision ms and peak GPU bytes, all wall
// times that end when the GPU work has finished. With --profile, a few decode steps run with a timestamp per
// dispatch: the step's GPU time summed over its dispatches (beside its wall time) and a table per kernel family.
//   npm run bench:model -- [--layers N] [--vision-blocks M] [--prompt 512] [--steps 32] [--image 1008] [--profile] [--json]
// Defaults: all 40 layers and 24 blocks on a GPU; 2 and 2 on a software adapter (lavapipe), where the full
// model would take hours.

import { Device, type ProfileEntry } from '@glm4v/core';
import { DecodeLoop, glm41v9bConfig, randomModel } from '@glm4v/runtime/internal';

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

/** Decode steps profiled with --profile; the one with the least GPU time is reported. */
const PROFILE_STEPS = 5;

/** A kernel label's family: the words before its dtype tag ('matvec_bf16w_f32a_bcast8x4_m1' → 'matvec'). */
function kernelFamily(label: string): string {
  const words = label.split('_');
  const end = words.findIndex((w) => /^(bf16|f16|f32|i32|u32)/.test(w));
  return words.slice(0, end < 1 ? words.length : end).join('_');
}

/** Per family: dispatches, GPU ms and share of the step, largest first. */
function byFamily(entries: readonly ProfileEntry[]): { family: string; dispatches: number; ms: number; share: number }[] {
  const total = entries.reduce((s, e) => s + e.ms, 0);
  const m = new Map<string, { dispatches: number; ms: number }>();
  for (const e of entries) {
    const f = m.get(kernelFamily(e.label)) ?? { dispatches: 0, ms: 0 };
    f.dispatches++;
    f.ms += e.ms;
    m.set(kernelFamily(e.label), f);
  }
  return [...m].map(([family, f]) => ({ family, ...f, share: f.ms / total })).sort((a, b) => b.ms - a.ms);
}

async function main() {
  const json = process.argv.includes('--json');
  const device = await Device.create();
  const software = device.adapter.isFallbackAdapter || device.adapter.architecture === 'software';
  const layers = arg('--layers') ?? (software ? 2 : 40);
  const visionBlocks = arg('--vision-blocks') ?? (software ? 2 : 24);
  const promptTokens = arg('--prompt') ?? 512;
  const steps = arg('--steps') ?? 32;
  const profile = process.argv.includes('--profile');
  const side = arg('--image') ?? 1008;
  const log = (s: string) => (json ? process.stderr.write(s + '\n') : console.log(s));
  log(device.describe());
  log(`GLM-4.1V-9B shapes, random weights: ${layers} decoder layers, ${visionBlocks} vision blocks`);

  const config = glm41v9bConfig({ layers, visionDepth: visionBlocks });
  let t = performance.now();
  const model = await randomModel(device, config, { seed: 1 });
  await device.sync();
  const buildMs = performance.now() - t;
  const weightBytes = device.pool.stats.bytesInUse;

  // prefill of random text tokens (no image placeholders), the next token chosen on the GPU
  const ids = Int32Array.from({ length: promptTokens }, (_, i) => (i * 7919) % 150000);
  // warm-up in a throwaway session: 64 tokens take the same (matmul, not matvec) pipelines as the timed prefill
  const warm = await model.createSession(64);
  await model.prefill(warm, { ids: ids.slice(0, 64) });
  warm.dispose();
  await device.sync();
  const session = await model.createSession(promptTokens + steps + 1 + (profile ? PROFILE_STEPS : 0));
  t = performance.now();
  await model.prefill(session, { ids });
  await session.token.read();
  const prefillMs = performance.now() - t;

  const step = model.recordDecode(session);
  const loop = new DecodeLoop(session, () => step);
  await loop.next(true); // warm-up: plans the graph and compiles the decode pipelines
  t = performance.now();
  for (let i = 1; i <= steps; i++) await loop.next(i < steps); // one step in flight, 4 bytes read back per token
  const decodeMs = (performance.now() - t) / steps;
  let decodeProfile: ProfileEntry[] | undefined;
  if (profile && device.has('timestamp-query')) {
    for (let i = 1; i <= PROFILE_STEPS; i++) {
      const e = await step.profile(steps + i);
      if (!decodeProfile || sum(e) < sum(decodeProfile)) decodeProfile = e;
    }
  } else if (profile) log('--profile: this adapter lacks timestamp-query; no per-dispatch times');
  step.dispose();
  session.dispose();

  // one image: grid of side/14 patches per side
  const grid = Math.round(side / 28) * 2;
  const patches = grid * grid;
  const pixels = new Float32Array(patches * 1176).map((_, i) => Math.sin(i) * 0.5);
  (await model.encodeVision({ pixelValues: pixels.slice(0, 4 * 1176), grids: [[1, 2, 2]] })).dispose(); // warm-up
  t = performance.now();
  const embeds = await model.encodeVision({ pixelValues: pixels, grids: [[1, grid, grid]] });
  await embeds.read();
  const visionMs = performance.now() - t;
  embeds.dispose();

  const peak = device.pool.stats.peakBytesAllocated;
  const rec = {
    bench: 'model',
    device: device.adapter.description || device.adapter.device,
    layers,
    vision_blocks: visionBlocks,
    weight_bytes: weightBytes,
    build_ms: buildMs,
    prefill_tokens: promptTokens,
    prefill_ms: prefillMs,
    prefill_tokens_per_s: promptTokens / (prefillMs / 1000),
    decode_steps: steps,
    decode_ms_per_token: decodeMs,
    vision_image: `${grid * 14}x${grid * 14}`,
    vision_patches: patches,
    vision_ms: visionMs,
    peak_gpu_bytes: peak,
    decode_dispatches: decodeProfile?.length,
    decode_gpu_ms: decodeProfile ? sum(decodeProfile) : undefined,
    decode_families: decodeProfile ? byFamily(decodeProfile) : undefined,
  };
  if (json) console.log(JSON.stringify(rec));
  else {
    if (decodeProfile) {
      log(`decode step: ${decodeMs.toFixed(2)} ms wall per token, ${sum(decodeProfile).toFixed(2)} ms of GPU time over ${decodeProfile.length} dispatches (best of ${PROFILE_STEPS} profiled steps; gaps between dispatches excluded)`);
      console.table(byFamily(decodeProfile).map((f) => ({ family: f.family, dispatches: f.dispatches, 'GPU ms': f.ms.toFixed(3), 'of step': `${(f.share * 100).toFixed(1)}%` })));
    }
    console.table({
      'decode ms / token': decodeMs.toFixed(1),
      'prefill tokens / s': rec.prefill_tokens_per_s.toFixed(1),
      [`vision ms (${rec.vision_image}, ${patches} patches)`]: visionMs.toFixed(0),
      'peak GPU bytes': `${peak} (${(peak / 2 ** 30).toFixed(2)} GiB)`,
      'weights on GPU': `${(weightBytes / 2 ** 30).toFixed(2)} GiB`,
    });
    console.log(JSON.stringify(rec));
  }
  model.dispose();
  device.dispose();
}

function sum(entries: readonly ProfileEntry[]): number {
  return entries.reduce((s, e) => s + e.ms, 0);
}

await main();
