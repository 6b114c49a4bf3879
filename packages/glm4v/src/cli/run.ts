// `glm4v-run [--model DIR | --demo] [options] "prompt"`: one prompt (with images or a video) through GLM-4.1V,
// streamed to the terminal (the thinking dimmed, then the answer) or printed as one JSON object.

import { access } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { InputError } from '@glm4v/core';
import type { GenerateOptions, GenerateResult, Glm4v } from '../glm4v.js';
import { DEMO_QUESTION, demoCheckpoint } from '../demo.js';
import type { ContentPart, Message } from '../prompt/chat-template.js';
import { GENERATION_FLAGS, GENERATION_HELP, generationOptions } from './generation-flags.js';
import { loadWithBar } from './progress.js';
import { UsageError } from './usage.js';

const HELP = `Usage:
  glm4v-run --model DIR [options] "prompt"
  glm4v-run --demo [options] ["prompt"]
  glm4v-run logits --model DIR --inputs IN.safetensors --out OUT.safetensors [--greedy N] [--taps]
  glm4v-run batch --model DIR --input JOBS.jsonl --output RESULTS.jsonl [--resume]   (batch --help)
  glm4v-run worker --model DIR --queue redis://HOST:6379/NAME                       (worker --help)

Runs GLM-4.1V-9B-Thinking (or a checkpoint of the same architecture) from a Hugging Face checkpoint folder on
WebGPU, streaming the reply: the thinking dimmed, then the answer.

Options:
  --model DIR               checkpoint folder (config.json, tokenizer.json, *.safetensors)
  --demo                    use a tiny checkpoint with RANDOM weights instead (made once, cached); with no
                            prompt, asks about a bundled sample image
  --image PATH              an image (PNG, JPEG, WebP, GIF); repeat for several, in order
  --video PATH              a video (needs ffmpeg); a prompt carries images or a video, not both
  --system TEXT             a system message
${GENERATION_HELP}
  --hide-thinking           print only the answer
  --show-special            print special tokens and box markers too (by default they are removed)
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
  ...GENERATION_FLAGS,
  'hide-thinking': { type: 'boolean' },
  'show-special': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

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
  const options = { ...generationOptions(v), showSpecial: v['show-special'] };
  // media files are checked before the weights load (which can take minutes)
  for (const path of [...images, ...(v.video ?? [])]) await access(path).catch(() => Promise.reject(new InputError(`${path}: no such file or not readable`)));
  const content: ContentPart[] = [
    ...images.map((path): ContentPart => ({ type: 'image', image: { path } })),
    ...(v.video ?? []).map((path): ContentPart => ({ type: 'video', video: path })),
    { type: 'text', text: prompt },
  ];
  const messages: Message[] = [...(v.system !== undefined ? [{ role: 'system' as const, content: v.system }] : []), { role: 'user', content }];

  const model = await loadWithBar(dir, process.stderr.isTTY && !v.json);
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
