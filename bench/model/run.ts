// The whole model at the real GLM-4.1V-9B shapes with random weights made on the GPU (no checkpoint):
// prefill of 512 text tokens, 32 decode steps (a recorded step replayed per token), and one 1008×1008 image
// through the vision tower. Reports decode ms/token, prefill tokens/s, vision ms and peak GPU bytes.
//   npm run bench:model -- [--layers N] [--vision-blocks M] [--prompt 512] [--steps 32] [--image 1008] [--json]
// Defaults: all 40 layers and 24 blocks on a GPU; 2 and 2 on a software adapter (lavapipe), where the full
// model would take hours.

import { Device } from '@glm4v/core';
import { glm41v9bConfig, randomModel } from '@glm4v/runtime/internal';

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : undefined;
}

async function main() {
  const json = process.argv.includes('--json');
  const device = await Device.create();
  const software = device.adapter.isFallbackAdapter || device.adapter.architecture === 'software';
  const layers = arg('--layers') ?? (software ? 2 : 40);
  const visionBlocks = arg('--vision-blocks') ?? (software ? 2 : 24);
  const promptTokens = arg('--prompt') ?? 512;
  const steps = arg('--steps') ?? 32;
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
  const session = await model.createSession(promptTokens + steps + 1);
  t = performance.now();
  await model.prefill(session, { ids });
  await session.readToken();
  const prefillMs = performance.now() - t;

  const step = await model.recordDecode(session.pool, 1);
  // One step in flight, as the batcher keeps it: step i + 1 is submitted before step i's token (4 bytes) is read.
  const decode = async (n: number) => {
    let pending = session.readToken();
    for (let i = 0; i < n; i++) {
      await step.run([session]);
      const next = session.readToken();
      await pending;
      pending = next;
    }
    await pending;
  };
  await decode(1); // warm-up: plans the graph and compiles the decode pipelines
  t = performance.now();
  await decode(steps);
  const decodeMs = (performance.now() - t) / steps;
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
  };
  if (json) console.log(JSON.stringify(rec));
  else {
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

await main();
