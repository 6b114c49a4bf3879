// `glm4v-run logits --model DIR --inputs IN.safetensors --out OUT.safetensors [--greedy N] [--taps] [--quant q8|q4]
//   [--quant-vision q8|q4]`

import { Device } from '@glm4v/core';
import { computeLogits, readLogitsInputs, writeLogitsResult } from '../logits-tool.js';
import { loadModel } from '../model/load-model.js';
import { UsageError, parseFlags, quantFlag } from './usage.js';

export async function logitsCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    model: { type: 'string' },
    inputs: { type: 'string' },
    out: { type: 'string' },
    greedy: { type: 'string' },
    taps: { type: 'boolean' },
    quant: { type: 'string' },
    'quant-vision': { type: 'string' },
  });
  if (!values.model || !values.inputs || !values.out)
    throw new UsageError('logits needs --model DIR --inputs IN.safetensors --out OUT.safetensors');
  const greedy = values.greedy === undefined ? 0 : Number(values.greedy);
  if (!Number.isInteger(greedy) || greedy < 0)
    throw new UsageError(`--greedy expects a non-negative integer, got '${values.greedy}'`);
  const quantFormats = {
    text: quantFlag(values.quant, '--quant'),
    vision: quantFlag(values['quant-vision'], '--quant-vision'),
  };
  const input = await readLogitsInputs(values.inputs);
  const device = await Device.create();
  try {
    const { model } = await loadModel(values.model, device, { quantFormats });
    try {
      const result = await computeLogits(model, input, { greedy, taps: values.taps });
      await writeLogitsResult(values.out, result, model.config);
    } finally {
      model.dispose();
    }
  } finally {
    device.dispose();
  }
}
