// Greedy argmax and one sampled token over the real vocabulary (V = 151552), as a decode step replays them (one
// row of a batch).
// Memory-bound: the ideal traffic is one read of the f32 logits (plus the presence bits for the sampler); the
// sampler's extra passes over its f32 scores show up as a lower fraction of the copy ceiling.

import { type Device, Graph, Tensor } from '@glm4v/core';
import { normal } from '@glm4v/core/testing';
import {
  ROW_FIELDS,
  type SamplingOptions,
  argmax,
  createSamplerState,
  markPresent,
  rowsTable,
  sample,
  setSamplerOptions,
} from '@glm4v/kernels';
import type { KernelCase } from './harness.js';

const V = 151552;

function argmaxCase(rows: number): KernelCase {
  return {
    kernel: 'argmax',
    shape: `${rows}x${V}`,
    dtype: 'f32',
    bound: 'memory',
    bytes: rows * V * 4 + rows * 4,
    flops: 0,
    async build(device: Device) {
      const x = await Tensor.fromArray(device, 'f32', [rows, V], normal(rows * V, 1, 3));
      const graph = new Graph(device, 'bench-argmax');
      argmax(graph, x);
      return { graph, dispose: () => [graph, x].forEach((o) => o.dispose()) };
    },
  };
}

function sampleCase(name: string, opts: SamplingOptions): KernelCase {
  return {
    kernel: 'sample',
    shape: `${V} ${name}`,
    dtype: 'f32',
    bound: 'memory',
    bytes: V * 4 + V / 8 + 4,
    flops: 0,
    async build(device: Device) {
      const x = await Tensor.fromArray(device, 'f32', [1, V], normal(V, 2, 3));
      const state = await createSamplerState(device, V);
      setSamplerOptions(state, 0, opts);
      const prompt = await Tensor.fromArray(
        device,
        'u32',
        [2048],
        Uint32Array.from({ length: 2048 }, (_, i) => (i * 7919) % V),
      );
      const init = new Graph(device, 'bench-sample-prompt');
      markPresent(init, state, prompt);
      await init.run();
      init.dispose();
      const rows = await Tensor.fromArray(
        device,
        'i32',
        [1, ROW_FIELDS],
        rowsTable([{ slot: 0, pos: 0, ropePos: 0, step: 7 }]),
      );
      const token = await Tensor.empty(device, 'u32', [1]);
      const graph = new Graph(device, 'bench-sample');
      sample(graph, x, state, rows, token);
      return { graph, dispose: () => [graph, x, prompt, rows, token, state].forEach((o) => o.dispose()) };
    },
  };
}

export const cases: KernelCase[] = [
  argmaxCase(1),
  sampleCase('T0.6 k50 p0.95 pen1.1', { temperature: 0.6, topK: 50, topP: 0.95, repetitionPenalty: 1.1, seed: 42 }),
  sampleCase('T1 p0.9', { temperature: 1, topK: 0, topP: 0.9, repetitionPenalty: 1, seed: 42 }),
  sampleCase('T1', { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 42 }),
  sampleCase('greedy pen1.1', { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.1, seed: 42 }),
];
