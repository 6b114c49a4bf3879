// For the CLI's tests and the batch benchmark: running the built `glm4v-run` (dist/cli.js), or any command, as a
// user does, to the end or in the background with its output collected as it comes; and a throwaway redis-server
// for the queue.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';

/** dist/cli.js, from src/cli/ or dist/cli/ alike. */
export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
/** The repository root, where commands run. */
export const ROOT = join(import.meta.dirname, '..', '..', '..', '..');

export interface RunOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Written to stdin (else stdin is closed). */
  input?: string;
  /** Killed after this long (ms). */
  timeout?: number;
  /** Run the command through the shell. */
  shell?: boolean;
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  proc: ChildProcess;
  /** Output so far. */
  out: { stdout: string; stderr: string };
  /** Resolves when it has exited. */
  exited: Promise<Ran>;
}

/** Starts `cmd args…` in the repository root. */
export function start(cmd: string, args: string[], opts: RunOptions = {}): CliProcess {
  const stdin = opts.input === undefined ? 'ignore' : 'pipe';
  const proc = spawn(cmd, args, {
    env: { ...process.env, ...opts.env },
    cwd: ROOT,
    shell: opts.shell,
    timeout: opts.timeout,
    stdio: [stdin, 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  proc.stdout!.on('data', (d) => (out.stdout += d));
  proc.stderr!.on('data', (d) => (out.stderr += d));
  proc.stdin?.end(opts.input);
  const exited = new Promise<Ran>((resolve) => proc.on('close', (code) => resolve({ code: code ?? -1, ...out })));
  return { proc, out, exited };
}

/** Runs `cmd args…` in the repository root to the end. */
export function exec(cmd: string, args: string[], opts: RunOptions = {}): Promise<Ran> {
  return start(cmd, args, opts).exited;
}

/** Starts `glm4v-run args…`. */
export function startCli(args: string[], opts: RunOptions = {}): CliProcess {
  return start(process.execPath, [CLI, ...args], opts);
}

/** Runs `glm4v-run args…` to the end. */
export function runCli(args: string[], opts: RunOptions = {}): Promise<Ran> {
  return startCli(args, opts).exited;
}

/** The last line of stdout as JSON (`--json`). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a test helper: each test asserts on the fields it reads
export const lastJson = (stdout: string): Record<string, any> => JSON.parse(stdout.trim().split('\n').pop()!);

/** Our lines of stderr (Dawn prints its own warnings on lavapipe). */
export const ourError = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('glm4v-run:'))
    .join('\n');

/** Resolves once `ready()` holds, checking every 50 ms; rejects after `timeoutMs` naming `what`. */
export async function waitFor(
  ready: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const t0 = Date.now();
  while (!(await ready())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface RedisServer {
  /** redis://127.0.0.1:PORT (add /NAME for a queue). */
  url: string;
  stop(): Promise<void>;
}

/** The redis-server program ($GLM4V_REDIS_SERVER, else on PATH), or undefined when it cannot run here. */
export function redisServerProgram(): string | undefined {
  const program = process.env.GLM4V_REDIS_SERVER ?? 'redis-server';
  return spawnSync(program, ['--version']).status === 0 ? program : undefined;
}

/** A throwaway redis-server on 127.0.0.1, on a free port, keeping nothing on disk; ready when this resolves. */
export async function startRedis(program: string, dir: string): Promise<RedisServer> {
  const port = await freePort();
  const proc = spawn(
    program,
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  const exited = new Promise<void>((resolve) => proc.on('close', () => resolve()));
  await waitFor(
    () => /Ready to accept connections/.test(log) || proc.exitCode !== null,
    'redis-server to start',
    10_000,
  );
  if (proc.exitCode !== null)
    throw new Error(`redis-server exited (${proc.exitCode}): ${log.trim().split('\n').pop()}`);
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
