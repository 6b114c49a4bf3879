import { type ParseArgsConfig, parseArgs } from 'node:util';

/** A command-line usage mistake: exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Some jobs of a batch failed (each has an error result): exit status 5. */
export class JobsFailedError extends Error {
  override name = 'JobsFailedError';
}

/** A subcommand's flags (no positionals); a mistake is a UsageError. */
export function parseFlags<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O): ReturnType<typeof parseArgs<{ options: O }>>['values'] {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
