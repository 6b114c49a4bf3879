// `glm4v-run chat --model DIR [options]`: a conversation on the terminal (or over a pipe, one message a line).
// The KV cache is kept across turns (Chat), so each turn prefills only what it adds. A mistake in one turn (a
// missing image, a message past the context) is reported on one line and the conversation goes on.

import { createInterface } from 'node:readline';
import { DeviceError, DeviceLostError, Glm4vError, OutOfMemoryError, ShaderCompileError } from '@glm4v/core';
import type { Chat } from '../chat.js';
import type { GenerateOptions } from '../generate/options.js';
import type { ContentPart, Message } from '../prompt/chat-template.js';
import { GENERATION_FLAGS, GENERATION_HELP, generationOptions } from './generation-flags.js';
import { MODEL_FLAGS, MODEL_HELP, modelDir, openModel, weightFlags } from './open.js';
import { ReplyPrinter, statsLine } from './print-reply.js';
import { parseFlags } from './usage.js';

const HELP = `Usage:
  glm4v-run chat --model DIR [options]
  glm4v-run chat --demo [options]

A conversation with GLM-4.1V: type a message and press Enter; the reply streams (the thinking dimmed, then the
answer). The KV cache is kept across turns, so each turn only processes what it adds. Commands:
  /image PATH               attach an image to your next message (repeat for several)
  /video PATH               attach a video to your next message (needs ffmpeg)
  /reset                    start over (the system message stays)
  /exit                     quit (so does Ctrl-D); Ctrl-C stops a reply, or quits at the prompt
A conversation carries images or videos, not both. Messages can also come from a pipe, one a line.

Options:
${MODEL_HELP}
  --system TEXT             a system message
${GENERATION_HELP}
  --hide-thinking           print only the answers
  -h, --help                this text`;

const OPTIONS = {
  ...MODEL_FLAGS,
  ...GENERATION_FLAGS,
  system: { type: 'string' },
  'hide-thinking': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function chatCommand(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, OPTIONS);
  if (values.help) {
    console.log(HELP);
    return;
  }
  const options = generationOptions(values);
  const weights = weightFlags(values);
  const open = await openModel(await modelDir(values), weights);
  const system: Message[] = values.system !== undefined ? [{ role: 'system', content: values.system }] : [];
  const chat = open.model.chat(system);
  try {
    await converse(chat, options, {
      hideThinking: Boolean(values['hide-thinking']),
      adapter: open.model.device.adapter.description || open.model.device.adapter.device,
    });
  } finally {
    chat.dispose();
    open.close();
  }
}

/** Reads lines until /exit or the end of input: commands, or messages answered one at a time. */
async function converse(
  chat: Chat,
  options: GenerateOptions,
  out: { hideThinking: boolean; adapter: string },
): Promise<void> {
  const tty = Boolean(process.stdin.isTTY);
  const rl = createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty });
  let replying: AbortController | undefined;
  rl.on('SIGINT', () => (replying ? replying.abort() : rl.close()));
  if (tty) process.stderr.write('/image PATH, /video PATH, /reset, /exit; Ctrl-C stops a reply\n');
  let attached: ContentPart[] = [];
  rl.setPrompt('> ');
  if (tty) rl.prompt();
  for await (const raw of rl) {
    const line = raw.trim();
    const [command, ...rest] = line.split(/\s+/);
    const arg = rest.join(' ');
    if (command === '/exit') break;
    if (command === '/reset') {
      chat.reset();
      attached = [];
      process.stderr.write('[conversation reset]\n');
    } else if ((command === '/image' || command === '/video') && arg) {
      attached.push(command === '/image' ? { type: 'image', image: { path: arg } } : { type: 'video', video: arg });
      process.stderr.write(`[${command.slice(1)} attached to your next message: ${arg}]\n`);
    } else if (line.startsWith('/')) {
      process.stderr.write(`glm4v-run: unknown command '${line}': /image PATH, /video PATH, /reset, /exit\n`);
    } else if (line) {
      replying = new AbortController();
      await reply(chat, [...attached, { type: 'text', text: raw }], { ...options, signal: replying.signal }, out);
      replying = undefined;
      attached = [];
    }
    if (tty) rl.prompt();
  }
  rl.close();
}

/** One turn printed as it streams; a mistake in the message is one line on stderr, not the end of the chat. */
async function reply(
  chat: Chat,
  content: ContentPart[],
  options: GenerateOptions,
  out: { hideThinking: boolean; adapter: string },
): Promise<void> {
  const printer = new ReplyPrinter(process.stdout, { hideThinking: out.hideThinking });
  try {
    const r = await chat.sendText(content, options, printer.onEvent);
    printer.end();
    process.stderr.write(`${statsLine(r.stats, r.finishReason, out.adapter)}\n`);
  } catch (e) {
    // the message was at fault (a file, a limit, the context): say so and go on; the device failing ends the chat
    const device =
      e instanceof DeviceError ||
      e instanceof DeviceLostError ||
      e instanceof OutOfMemoryError ||
      e instanceof ShaderCompileError;
    if (!(e instanceof Glm4vError) || device) throw e;
    process.stderr.write(`glm4v-run: ${(e as Error).message.split('\n')[0]}\n`);
  }
}
