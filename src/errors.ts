/**
 * Typed errors with stable codes. Only the entry point (src/cli.ts) turns them
 * into an exit status and a one-line message; nothing below it calls process.exit.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly exitCode: number = 1,
  ) {
    super(message);
    // Subclasses keep the name: the boundary recognizes the family by it (bundles do not share classes).
    this.name = 'CliError';
  }
}

/** The user typed something we cannot accept: exit 2 like most CLIs. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 'E_USAGE', 2);
  }
}

export class ConfigError extends CliError {
  constructor(message: string) {
    super(message, 'E_CONFIG', 2);
  }
}

/** EX_TEMPFAIL from sysexits.h: try again later (cron understands it). */
export const EXIT_TEMPFAIL = 75;

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Node system errors carry a string `code` (ECONNREFUSED, ENOENT…); classify by it, not instanceof. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
