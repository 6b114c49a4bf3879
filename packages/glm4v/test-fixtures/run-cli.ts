// Test-only: the built command line (dist/cli.js, or any command) run as a user runs it, its output collected.

import { spawn } from 'node:child_process';
import { join } from 'node:path';

export const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
/** The repository root. */
export const ROOT = join(import.meta.dirname, '..', '..', '..');

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Added to the environment. */
  env?: Record<string, string>;
  /** Written to stdin (else stdin is closed). */
  input?: string;
  /** Killed after this long (ms). */
  timeout?: number;
  /** Run `cmd` through the shell. */
  shell?: boolean;
}

/** Runs `cmd args` in the repository root to completion. */
export function exec(cmd: string, args: string[], opts: RunOptions = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const stdin = opts.input === undefined ? 'ignore' : 'pipe';
    const p = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: ROOT, shell: opts.shell, timeout: opts.timeout, stdio: [stdin, 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d) => (stdout += d));
    p.stderr!.on('data', (d) => (stderr += d));
    p.stdin?.end(opts.input);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** `glm4v-run args`. */
export function runCli(args: string[], opts: RunOptions = {}): Promise<Ran> {
  return exec(process.execPath, [CLI, ...args], opts);
}

/** The lines of stderr that are ours (Dawn prints its own warnings on lavapipe). */
export function ourError(stderr: string): string {
  return stderr.split('\n').filter((l) => l.startsWith('glm4v-run:')).join('\n');
}

/** The last line of stdout as JSON (`--json`). */
export function lastJson(stdout: string): Record<string, any> {
  return JSON.parse(stdout.trim().split('\n').pop()!);
}
