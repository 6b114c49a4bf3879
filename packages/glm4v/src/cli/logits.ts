// `glm4v-run logits --model DIR --inputs IN.safetensors --out OUT.safetensors [--greedy N] [--taps]`

import { parseArgs } from 'node:util';
import { Device } from '@glm4v/core';
import type { SafetensorsDType } from '../checkpoint/format.js';
import { writeSafetensors } from '../checkpoint/writer.js';
import { type LogitsResult, computeLogits, readLogitsInputs } from '../logits-tool.js';
import { loadModel } from '../model/load.js';
import { UsageError } from './usage.js';

export async function logitsCommand(argv: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { model: { type: 'string' }, inputs: { type: 'string' }, out: { type: 'string' }, greedy: { type: 'string' }, taps: { type: 'boolean' } },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (!values.model || !values.inputs || !values.out) throw new UsageError('logits needs --model DIR --inputs IN.safetensors --out OUT.safetensors');
  const greedy = values.greedy === undefined ? 0 : Number(values.greedy);
  if (!Number.isInteger(greedy) || greedy < 0) throw new UsageError(`--greedy expects a non-negative integer, got '${values.greedy}'`);
  const input = await readLogitsInputs(values.inputs);
  const device = await Device.create();
  try {
    const { model } = await loadModel(values.model, device);
    try {
      const result = await computeLogits(model, input, { greedy, taps: values.taps });
      await writeLogitsResult(values.out, result, model.config.text.hiddenSize);
    } finally {
      model.dispose();
    }
  } finally {
    device.dispose();
  }
}

/** Writes a LogitsResult with the fixtures' names and dtypes: float taps are [rows, hidden]. */
export async function writeLogitsResult(path: string, r: LogitsResult, hidden: number): Promise<void> {
  const i64 = (v: ArrayLike<number>) => BigInt64Array.from(Array.from(v, (x) => BigInt(x)));
  const entries: { name: string; dtype: SafetensorsDType; shape: number[]; data: ArrayBufferView }[] = [
    { name: 'logits', dtype: 'F32', shape: [...r.shape], data: r.logits },
  ];
  if (r.greedyTokens) entries.push({ name: 'greedy_tokens', dtype: 'I64', shape: [r.greedyTokens.length], data: i64(r.greedyTokens) });
  if (r.taps) {
    for (const [name, v] of Object.entries(r.taps)) {
      if (name === 'position_ids') entries.push({ name, dtype: 'I64', shape: [3, v.length / 3], data: i64(v) });
      else entries.push({ name, dtype: 'F32', shape: [v.length / hidden, hidden], data: v });
    }
    entries.push({ name: 'rope_delta', dtype: 'I64', shape: [1], data: i64([r.ropeDelta]) });
  }
  await writeSafetensors(path, entries, { producer: '@glm4v/runtime glm4v-run logits' });
}
