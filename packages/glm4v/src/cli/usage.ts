import { type ParseArgsConfig, parseArgs } from 'node:util';

/** A command-line usage mistake: exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Some jobs of a batch failed (each has an error result): exit status 5. */
export class JobsFailedError extends Error {
  override name = 'JobsFailedError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * A command's flags, and its positional arguments when `allowPositionals` (else one is a mistake); a mistake is a
 * UsageError.
 */
export function parseFlags<O extends Options, P extends boolean = false>(
  argv: string[], options: O, allowPositionals?: P,
): ReturnType<typeof parseArgs<{ options: O; allowPositionals: P }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: allowPositionals ?? (false as P) });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
