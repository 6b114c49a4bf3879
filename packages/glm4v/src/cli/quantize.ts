// `glm4v-run quantize --model DIR --out DIR2 --quant q8|q4 [--quant-vision q8|q4]`: writes a quantised copy of a
// checkpoint folder (checkpoint/quantize-checkpoint.ts) that `glm4v-run --model DIR2` loads directly.

import { quantizeCheckpoint } from '../checkpoint/quantize-checkpoint.js';
import { ProgressBar } from './progress.js';
import { UsageError, parseFlags, quantFlag } from './usage.js';

const HELP = `Usage: glm4v-run quantize --model DIR --out DIR2 --quant q8|q4 [--quant-vision q8|q4]

Writes DIR2, a copy of checkpoint folder DIR with the decoder's weights (and with --quant-vision the vision
tower's) quantised: 'glm4v-run --model DIR2' then loads them directly, without quantising again. Needs no GPU;
DIR2 must not exist. The formats and what to pick: docs/quantization.md and the README.`;

export async function quantizeCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    model: { type: 'string' },
    out: { type: 'string' },
    quant: { type: 'string' },
    'quant-vision': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  if (!values.model || !values.out) throw new UsageError('quantize needs --model DIR --out DIR2 --quant q8|q4');
  const text = quantFlag(values.quant, '--quant');
  const vision = quantFlag(values['quant-vision'], '--quant-vision');
  if (!text && !vision) throw new UsageError('quantize needs --quant q8|q4 (and/or --quant-vision q8|q4)');
  const bar = process.stderr.isTTY ? new ProgressBar(process.stderr, 'quantising') : undefined;
  const t0 = performance.now();
  try {
    await quantizeCheckpoint(
      values.model,
      values.out,
      { text, vision },
      { onProgress: bar && ((p) => bar.update(p.bytesDone, p.bytesTotal, p.tensor)) },
    );
  } finally {
    bar?.done();
  }
  process.stderr.write(
    `wrote ${values.out} (${[text && `decoder ${text}`, vision && `vision ${vision}`].filter(Boolean).join(', ')}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
  );
}
