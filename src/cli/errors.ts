/**
 * Errors the `baton` command reports to its user: a message that says what is
 * wrong and where (which flag, which file), and the process exit code. Never a
 * stack trace, never key material.
 */

/** Exit code for a usage or configuration error (bad flag, unreadable file, port in use). */
export const EXIT_USAGE = 2;
/** Exit code for a failure after a valid start (escalation, a close that does not finish). */
export const EXIT_FAILURE = 1;

/** A failure the command line explains to its user and exits with. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly code = 'BATON_ERR_CLI';

  constructor(
    message: string,
    readonly exitCode: number = EXIT_USAGE,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A whole number flag within [min, max], or a CliError naming the flag and the bad value. */
export function parseWholeNumber(flag: string, value: string, min: number, max: number, unit = ''): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new CliError(`${flag} must be a whole number${unit ? ` of ${unit}` : ''} from ${min} to ${max}, got "${value}"`);
  }
  return n;
}
