// The suite must fail on a fault, not only pass on the port: each test loads the tiny checkpoint with one
// deliberately wrong config value and asserts that the conformance comparison (taps.ts) fails, at the tap where the
// fault first acts. An RMSNorm epsilon of 1e-6 instead of 1e-5 moves the vision tower's outputs by about 1e-5 of
// their largest value, which a single 1e-4 · max|ref| criterion on the whole tensor would let through.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device } from '@glm4v/core';
import { computeLogits, loadModel, readLogitsInputs } from '@glm4v/runtime/internal';
import { type TapReport, compareTaps, readTensors } from './taps.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const CASES = [
  { name: 'a_text', checkpoint: 'tiny-glm4v-f32' },
  { name: 'b_image', checkpoint: 'tiny-glm4v-f32' },
  { name: 'd_bf16_image', checkpoint: 'tiny-glm4v-bf16' },
  { name: 'e_video', checkpoint: 'tiny-glm4v-f32' },
];
// The config fields the faults below edit (the rest of the JSON is written back as read).
type Config = {
  text_config: { rms_norm_eps: number; rope_scaling: { mrope_section: number[] } };
  vision_config: { rms_norm_eps: number };
};

let device: Device;
const dirs: string[] = [];
beforeAll(async () => {
  device = await Device.create();
});
afterAll(() => {
  device?.dispose();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A copy of a fixture checkpoint whose config.json has gone through `edit`. */
function patchedCheckpoint(checkpoint: string, edit: (c: Config) => void): string {
  const dir = mkdtempSync(join(tmpdir(), `glm4v-fault-${checkpoint}-`));
  dirs.push(dir);
  for (const f of ['model.safetensors', 'generation_config.json', 'preprocessor_config.json']) {
    copyFileSync(join(FIXTURES, checkpoint, f), join(dir, f));
  }
  const config = JSON.parse(readFileSync(join(FIXTURES, checkpoint, 'config.json'), 'utf8')) as Config;
  edit(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

/** The suite's tap comparison for every case, run on the checkpoints patched by `edit`. */
async function reports(edit: (c: Config) => void): Promise<Map<string, TapReport>> {
  const out = new Map<string, TapReport>();
  for (const checkpoint of new Set(CASES.map((c) => c.checkpoint))) {
    const { model } = await loadModel(patchedCheckpoint(checkpoint, edit), device);
    try {
      for (const c of CASES.filter((k) => k.checkpoint === checkpoint)) {
        const file = join(FIXTURES, `case-${c.name}.safetensors`);
        const result = await computeLogits(model, await readLogitsInputs(file), { taps: true });
        const report = compareTaps(result, await readTensors(file));
        const largest = report.maxRelative.toExponential(2);
        console.log(
          `${c.name}: ${report.firstFailure ?? 'passes'} (largest max|Δ|/max|ref| ${largest})\n  ${report.lines.join('\n  ')}`,
        );
        out.set(c.name, report);
      }
    } finally {
      model.dispose();
    }
  }
  return out;
}

describe('the conformance comparison fails on a deliberately wrong model', () => {
  it('text rms_norm_eps 1e-6 instead of 1e-5: every case diverges at hidden_states_layer0', async () => {
    const r = await reports((c) => (c.text_config.rms_norm_eps = 1e-6));
    for (const c of CASES)
      expect(r.get(c.name)!.firstFailure, c.name).toMatch(/^first divergence at tap hidden_states_layer0:/);
  });

  it('vision rms_norm_eps 1e-6 instead of 1e-5: image and video cases diverge inside the vision tower', async () => {
    const r = await reports((c) => (c.vision_config.rms_norm_eps = 1e-6));
    for (const c of CASES.filter((k) => k.name !== 'a_text')) {
      expect(r.get(c.name)!.firstFailure, c.name).toMatch(/^first divergence at tap vision_(embeddings|block0):/);
      expect(r.get(c.name)!.maxRelative, `${c.name}: the fault stays below a 1e-4 · max|ref| criterion`).toBeLessThan(
        1e-4,
      );
    }
    expect(r.get('a_text')!.firstFailure, 'a text-only case does not run the vision tower').toBeUndefined();
  });

  it('mrope_section [1, 1, 2] instead of [1, 2, 1] (h and w swapped): image and video cases diverge at hidden_states_layer0', async () => {
    const r = await reports((c) => (c.text_config.rope_scaling.mrope_section = [1, 1, 2]));
    for (const c of CASES.filter((k) => k.name !== 'a_text')) {
      expect(r.get(c.name)!.firstFailure, c.name).toMatch(/^first divergence at tap hidden_states_layer0:/);
    }
    expect(r.get('a_text')!.firstFailure, 'text only: the three position streams are equal').toBeUndefined();
  });
});
