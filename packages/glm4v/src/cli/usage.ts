import { QUANT_FORMATS, type QuantFormat, isQuantFormat } from '@glm4v/kernels';

/** A command-line usage mistake: exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The value of a --quant-like flag: a known format, or undefined when absent. */
export function quantFlag(value: string | undefined, flag: string): QuantFormat | undefined {
  if (value === undefined) return undefined;
  if (!isQuantFormat(value)) throw new UsageError(`${flag} expects ${Object.keys(QUANT_FORMATS).join(' or ')}, got '${value}'`);
  return value;
}
