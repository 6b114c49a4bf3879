// Running the built `glm4v-run` (dist/cli.js) as a user does, for the CLI tests: to the end, or in the
// background with its output collected as it comes.

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';

/** dist/cli.js, from src/cli/ or dist/cli/ alike. */
export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');

export interface CliProcess {
  proc: ChildProcess;
  /** Output so far. */
  out: { stdout: string; stderr: string };
  /** Resolves when it has exited. */
  exited: Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Starts `glm4v-run args…` with `env` added to this process's environment. */
export function startCli(args: string[], env: Record<string, string> = {}): CliProcess {
  const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  proc.stdout!.on('data', (d) => (out.stdout += d));
  proc.stderr!.on('data', (d) => (out.stderr += d));
  const exited = new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => proc.on('close', (code) => resolve({ code: code ?? -1, ...out })));
  return { proc, out, exited };
}

/** Runs `glm4v-run args…` to the end. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return startCli(args, env).exited;
}

/** Our lines of stderr (Dawn prints its own warnings on lavapipe). */
export const ourError = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('glm4v-run:')).join('\n');

/** Resolves once `ready()` holds, checking every 50 ms; rejects after `timeoutMs` naming `what`. */
export async function waitFor(ready: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!(await ready())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
