// `glm4v-run [--model DIR | --demo] [options] "prompt"`: one prompt (with images or a video) through GLM-4.1V,
// streamed to the terminal (the thinking dimmed, then the answer) or printed as one JSON object.

import { access } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { InputError } from '@glm4v/core';
import { Glm4v, type GenerateOptions, type GenerateResult } from '../glm4v.js';
import { checkOptions } from '../generate/options.js';
import { DEMO_QUESTION, demoCheckpoint } from '../demo.js';
import type { ContentPart, Message } from '../prompt/chat-template.js';
import { ProgressBar } from './progress.js';
import { UsageError, quantFlag } from './usage.js';

const HELP = `Usage:
  glm4v-run --model DIR [options] "prompt"
  glm4v-run --demo [options] ["prompt"]
  glm4v-run logits --model DIR --inputs IN.safetensors --out OUT.safetensors [--greedy N] [--taps] [--quant q8|q4]
  glm4v-run quantize --model DIR --out DIR2 --quant q8|q4 [--quant-vision q8|q4]

Runs GLM-4.1V-9B-Thinking (or a checkpoint of the same architecture) from a Hugging Face checkpoint folder on
WebGPU, streaming the reply: the thinking dimmed, then the answer.

Options:
  --model DIR               checkpoint folder (config.json, tokenizer.json, *.safetensors)
  --demo                    use a tiny checkpoint with RANDOM weights instead (made once, cached); with no
                            prompt, asks about a bundled sample image
  --image PATH              an image (PNG, JPEG, WebP, GIF); repeat for several, in order
  --video PATH              a video (needs ffmpeg); a prompt carries images or a video, not both
  --system TEXT             a system message
  --max-new-tokens N        stop after N new tokens (default: generation_config.json, else 8192)
  --temperature T           0 = greedy (default: generation_config.json)
  --top-k K                 0 = off
  --top-p P                 1 = off
  --repetition-penalty R    1 = off
  --seed S                  same seed, same output
  --context N               KV-cache size in tokens (default: prompt + max new tokens)
  --quant q8|q4             quantise the decoder (linear layers, lm_head, embeddings) as it loads: ~10 GB
                            (q8) or ~5.3 GB (q4) instead of ~19 GB; a folder written by 'glm4v-run quantize'
                            loads quantised without it
  --quant-vision q8|q4      the same for the vision tower (default: as stored, bf16: ~1.8 GB)
  --hide-thinking           print only the answer
  --json                    print one JSON object: answer, thinking, tokens, finish_reason, stats
  -h, --help                this text

Environment: GLM4V_BACKEND, GLM4V_ADAPTER, GLM4V_DAWN_TOGGLES, GLM4V_DEBUG (also shows stack traces),
GLM4V_CACHE (where the demo checkpoint is kept).
Exit status: 0 success, 2 usage error, 3 bad model or input, 4 device error.`;

const OPTIONS = {
  model: { type: 'string' },
  demo: { type: 'boolean' },
  image: { type: 'string', multiple: true },
  video: { type: 'string', multiple: true },
  system: { type: 'string' },
  'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'repetition-penalty': { type: 'string' },
  seed: { type: 'string' },
  context: { type: 'string' },
  quant: { type: 'string' },
  'quant-vision': { type: 'string' },
  'hide-thinking': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} expects a number, got '${v}'`);
  return n;
}

export async function runCommand(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    console.log(HELP);
    return;
  }
  if (!v.model && !v.demo) throw new UsageError('give --model DIR (or --demo)');
  if (v.model && v.demo) throw new UsageError('give either --model or --demo, not both');
  if (positionals.length > 1) throw new UsageError(`one prompt expected, got ${positionals.length} (quote the prompt)`);
  const dir = v.demo ? await demoCheckpoint() : v.model!;
  let prompt = positionals[0];
  let images = v.image ?? [];
  if (v.demo) {
    process.stderr.write('demo: a tiny checkpoint with RANDOM weights — the pipeline is real, the text is noise\n');
    if (prompt === undefined && images.length === 0 && !v.video) {
      prompt = DEMO_QUESTION;
      images = [join(dir, 'sample.png')];
    }
  }
  if (prompt === undefined) throw new UsageError('no prompt given');
  const quant = quantFlag(v.quant, '--quant');
  const quantVision = quantFlag(v['quant-vision'], '--quant-vision');
  const options: GenerateOptions = {
    maxNewTokens: num(v['max-new-tokens'], 'max-new-tokens'),
    temperature: num(v.temperature, 'temperature'),
    topK: num(v['top-k'], 'top-k'),
    topP: num(v['top-p'], 'top-p'),
    repetitionPenalty: num(v['repetition-penalty'], 'repetition-penalty'),
    seed: num(v.seed, 'seed'),
    contextLength: num(v.context, 'context'),
  };
  const flags: Record<string, string> = { maxNewTokens: 'max-new-tokens', topK: 'top-k', topP: 'top-p', repetitionPenalty: 'repetition-penalty', contextLength: 'context' };
  try {
    checkOptions(options, (k) => `--${flags[k] ?? k}`);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  // media files are checked before the weights load (which can take minutes)
  for (const path of [...images, ...(v.video ?? [])]) await access(path).catch(() => Promise.reject(new InputError(`${path}: no such file or not readable`)));
  const content: ContentPart[] = [
    ...images.map((path): ContentPart => ({ type: 'image', image: { path } })),
    ...(v.video ?? []).map((path): ContentPart => ({ type: 'video', video: path })),
    { type: 'text', text: prompt },
  ];
  const messages: Message[] = [...(v.system !== undefined ? [{ role: 'system' as const, content: v.system }] : []), { role: 'user', content }];

  const bar = process.stderr.isTTY && !v.json ? new ProgressBar(process.stderr) : undefined;
  const model = await Glm4v.load(dir, { quant, quantVision, onProgress: bar && ((p) => bar.update(p.bytesDone, p.bytesTotal, p.tensor)) }).finally(() => bar?.done());
  try {
    const result = await stream(model, messages, options, { json: Boolean(v.json), hideThinking: Boolean(v['hide-thinking']) });
    if (v.json) {
      console.log(JSON.stringify({ answer: result.answer, thinking: result.thinking, tokens: result.tokens, finish_reason: result.finishReason, stats: result.stats }));
    } else {
      const s = result.stats;
      process.stderr.write(
        `\n[${s.promptTokens} prompt tokens, ${s.generatedTokens} generated (${result.finishReason}); ` +
          `first token ${(s.timeToFirstTokenMs / 1000).toFixed(2)} s, prefill ${s.prefillTokensPerSecond.toFixed(1)} tok/s, ` +
          `decode ${s.decodeTokensPerSecond.toFixed(2)} tok/s; seed ${s.seed}; ${model.device.adapter.description || model.device.adapter.device}]\n`,
      );
    }
  } finally {
    model.dispose();
  }
}

/** Prints the reply as it comes (thinking dimmed on a terminal, or hidden) and returns it whole. */
async function stream(model: Glm4v, messages: Message[], options: GenerateOptions, out: { json: boolean; hideThinking: boolean }): Promise<GenerateResult> {
  const tty = process.stdout.isTTY;
  let phase: string | undefined;
  const result = await model.generateText({ messages }, options, (ev) => {
    if (ev.type !== 'text' || out.json || (ev.phase === 'thinking' && out.hideThinking)) return;
    if (phase === 'thinking' && ev.phase === 'answer') process.stdout.write(tty ? '\x1b[0m\n' : '\n');
    if (ev.phase === 'thinking' && phase !== 'thinking' && tty) process.stdout.write('\x1b[2m');
    phase = ev.phase;
    process.stdout.write(ev.text);
  });
  if (phase === 'thinking' && tty) process.stdout.write('\x1b[0m');
  if (!out.json) process.stdout.write('\n');
  return result;
}
