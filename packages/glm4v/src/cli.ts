#!/usr/bin/env node
// glm4v-run: the command line. Each subcommand lives in cli/<name>.ts and uses only the public API (but `logits`,
// the black-box entry point for checking the port against a reference dump).
// Exit status: 0 success, 2 usage error, 3 bad model or input, 4 device error, 5 some batch jobs failed, 1 other.

import {
  DeviceError,
  DeviceLostError,
  Glm4vError,
  LimitError,
  OutOfMemoryError,
  ShaderCompileError,
} from '@glm4v/core';
import { runCommand } from './cli/run.js';
import { JobsFailedError, UsageError } from './cli/usage.js';

/** Subcommands by their first argument, loaded when used; anything else is one prompt (`runCommand`). */
const COMMANDS: Record<string, () => Promise<(argv: string[]) => Promise<void>>> = {
  chat: async () => (await import('./cli/chat.js')).chatCommand,
  logits: async () => (await import('./cli/logits.js')).logitsCommand,
  quantize: async () => (await import('./cli/quantize.js')).quantizeCommand,
  batch: async () => (await import('./cli/batch.js')).batchCommand,
  worker: async () => (await import('./cli/worker.js')).workerCommand,
  serve: async () => (await import('./cli/serve.js')).serveCommand,
};

function exitCode(e: unknown): number {
  if (e instanceof UsageError) return 2;
  if (e instanceof JobsFailedError) return 5;
  if (
    e instanceof DeviceError ||
    e instanceof DeviceLostError ||
    e instanceof OutOfMemoryError ||
    e instanceof ShaderCompileError ||
    e instanceof LimitError
  )
    return 4;
  if (e instanceof Glm4vError) return 3;
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') return 3;
  return 1;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  try {
    const command = COMMANDS[argv[0]];
    if (command) await (await command())(argv.slice(1));
    else await runCommand(argv);
  } catch (e) {
    const code = exitCode(e);
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`glm4v-run: ${code === 2 ? `${msg} (see --help)` : msg.split('\n')[0]}\n`);
    if (process.env.GLM4V_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    process.exitCode = code;
  }
}

await main();
