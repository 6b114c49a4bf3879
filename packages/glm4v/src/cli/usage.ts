import { type ParseArgsConfig, parseArgs } from 'node:util';
import { QUANT_FORMATS, type QuantFormat, isQuantFormat } from '@glm4v/kernels';

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
  argv: string[],
  options: O,
  allowPositionals?: P,
): ReturnType<typeof parseArgs<{ options: O; allowPositionals: P }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: allowPositionals ?? (false as P) });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The value of a --quant-like flag: a known format, or undefined when absent. */
export function quantFlag(value: string | undefined, flag: string): QuantFormat | undefined {
  if (value === undefined) return undefined;
  if (!isQuantFormat(value))
    throw new UsageError(`${flag} expects ${Object.keys(QUANT_FORMATS).join(' or ')}, got '${value}'`);
  return value;
}

/** An integer flag in [min, max], or its default; a UsageError naming the flag otherwise. */
export function intFlag(
  v: string | undefined,
  name: string,
  min: number,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const n = v === undefined ? fallback : v.trim() === '' ? NaN : Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(
      `--${name} expects an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, got '${v}'`,
    );
  return n;
}
