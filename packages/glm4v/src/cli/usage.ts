/** A command-line usage mistake: exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Some jobs of a batch failed (each has an error result): exit status 5. */
export class JobsFailedError extends Error {
  override name = 'JobsFailedError';
}
