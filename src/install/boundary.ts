/**
 * Typed errors thrown inside a command bundle are instances of that bundle's own
 * copy of CliError, so cli.cjs's `instanceof` misses them and every error exits 1.
 * Until the boundary classifies by `code`, our commands turn their typed errors
 * into the same one-line message and their real exit status here.
 */
import type { CliError } from '../errors';

type Main = (opts: Record<string, unknown>, args: string[]) => Promise<number>;

export function withExitCodes(main: Main): Main {
  return async (opts, args) => {
    try {
      return await main(opts, args);
    } catch (err) {
      const e = err as Partial<CliError>;
      if (typeof e?.code === 'string' && e.code.startsWith('E_') && typeof e.exitCode === 'number') {
        process.stderr.write(`claude-metrics: ${e.message}\n`);
        return e.exitCode;
      }
      throw err;
    }
  };
}
