/** A command-line usage mistake: exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
