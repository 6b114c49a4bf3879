// `glm4v-run [--model DIR | --demo] [options] "prompt"`: one prompt (with images or a video) through GLM-4.1V,
// streamed to the terminal (the thinking dimmed, then the answer) or printed as one JSON object. The request is
// checked before the weights load.

import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import type { GenerateOptions } from '../generate/options.js';
import type { Glm4v } from '../glm4v.js';
import type { PreparedPrompt } from '../processor.js';
import type { ContentPart, Message } from '../prompt/chat-template.js';
import { GENERATION_FLAGS, GENERATION_HELP, flagOf, generationOptions } from './generation-flags.js';
import { DEMO_QUESTION } from '../demo.js';
import { MODEL_FLAGS, MODEL_HELP, modelDir, openModel, weightFlags } from './open.js';
import { ReplyPrinter, statsLine } from './print-reply.js';
import { UsageError, parseFlags } from './usage.js';

const HELP = `Usage:
  glm4v-run --model DIR [options] "prompt"      (prompt - reads it from stdin)
  glm4v-run --demo [options] ["prompt"]
  glm4v-run chat --model DIR [options]           (an interactive conversation: glm4v-run chat --help)
  glm4v-run serve --model DIR [--port 8080]      (an OpenAI-compatible server: serve --help)
  glm4v-run logits --model DIR --inputs IN.safetensors --out OUT.safetensors [--greedy N] [--taps] [--quant q8|q4]
  glm4v-run quantize --model DIR --out DIR2 --quant q8|q4 [--quant-vision q8|q4]    (quantize --help)
  glm4v-run batch --model DIR --input JOBS.jsonl --output RESULTS.jsonl [--resume]   (batch --help)
  glm4v-run worker --model DIR --queue redis://HOST:6379/NAME                       (worker --help)

Runs GLM-4.1V-9B-Thinking (or a checkpoint of the same architecture) from a Hugging Face checkpoint folder on
WebGPU, streaming the reply: the thinking dimmed, then the answer.

Options:
${MODEL_HELP}
                            (with --demo and no prompt, asks about a bundled sample image)
  --image PATH              an image (PNG, JPEG, WebP, GIF); repeat for several, in order
  --video PATH              a video (needs ffmpeg); a prompt carries images or a video, not both
  --system TEXT             a system message
${GENERATION_HELP}
  --hide-thinking           print only the answer
  --json                    print one JSON object: answer, thinking, tokens, finish_reason, stats
  -h, --help                this text

Environment: GLM4V_BACKEND, GLM4V_ADAPTER, GLM4V_DAWN_TOGGLES, GLM4V_DEBUG (also shows stack traces),
GLM4V_CACHE (where the demo checkpoint is kept).
Exit status: 0 success, 2 usage error, 3 bad model or input, 4 device error.`;

const OPTIONS = {
  ...MODEL_FLAGS,
  ...GENERATION_FLAGS,
  image: { type: 'string', multiple: true },
  video: { type: 'string', multiple: true },
  system: { type: 'string' },
  'hide-thinking': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function runCommand(argv: string[]): Promise<void> {
  const { values: v, positionals } = parseFlags(argv, OPTIONS, true);
  if (v.help) {
    console.log(HELP);
    return;
  }
  if (positionals.length > 1) throw new UsageError(`one prompt expected, got ${positionals.length} (quote the prompt)`);
  const options = generationOptions(v);
  const weights = weightFlags(v);
  const dir = await modelDir(v);
  let prompt = positionals[0] === '-' ? (await text(process.stdin)).replace(/\s+$/, '') : positionals[0];
  let images = v.image ?? [];
  if (v.demo && prompt === undefined && images.length === 0 && !v.video) {
    prompt = DEMO_QUESTION;
    images = [join(dir, 'sample.png')];
  }
  if (prompt === undefined) throw new UsageError('no prompt given');
  const content: ContentPart[] = [
    ...images.map((path): ContentPart => ({ type: 'image', image: { path } })),
    ...(v.video ?? []).map((path): ContentPart => ({ type: 'video', video: path })),
    { type: 'text', text: prompt },
  ];
  const messages: Message[] = [
    ...(v.system !== undefined ? [{ role: 'system' as const, content: v.system }] : []),
    { role: 'user', content },
  ];

  const open = await openModel(dir, { ...weights, quiet: Boolean(v.json) }, async (processor) => [
    await processor.prepare({ messages }, options, { nameOf: flagOf }),
  ]);
  try {
    await answer(open.model, open.prompts[0], options, {
      json: Boolean(v.json),
      hideThinking: Boolean(v['hide-thinking']),
    });
  } finally {
    open.close();
  }
}

/** Streams the reply (or prints it as JSON at the end), then the stats line on stderr. */
async function answer(
  model: Glm4v,
  request: PreparedPrompt,
  options: GenerateOptions,
  out: { json: boolean; hideThinking: boolean },
): Promise<void> {
  const printer = new ReplyPrinter(process.stdout, { hideThinking: out.hideThinking });
  const result = await model.generateText(request, options, out.json ? undefined : printer.onEvent);
  if (out.json) {
    console.log(
      JSON.stringify({
        answer: result.answer,
        thinking: result.thinking,
        tokens: result.tokens,
        finish_reason: result.finishReason,
        stats: result.stats,
      }),
    );
    return;
  }
  printer.end();
  process.stderr.write(
    `\n${statsLine(result.stats, result.finishReason, model.device.adapter.description || model.device.adapter.device)}\n`,
  );
}
