/**
 * `claude-metrics flush`: deliver the spool. Quiet for cron; a summary on stderr
 * with --verbose. Exit 0 when the spool is drained (or was empty), 75 (EX_TEMPFAIL)
 * when events remain because the collector is unavailable.
 */
import { ConfigError, EXIT_TEMPFAIL } from '../errors';
import { resolveConfig } from '../config';
import { createLogger } from '../log';
import { join } from 'node:path';
import { hookInbox, statePaths } from '../paths';
import { listInbox } from '../inbox/inbox';
import { flushSpool } from '../spool/flush';
import { Spool } from '../spool/spool';
import { fallbackStateDirPath, otherStateDir } from '../statedir';

export default async function flush(opts: Record<string, unknown>): Promise<number> {
  const resolved = resolveConfig({
    configFile: opts.config as string | undefined,
    flags: { endpoint: opts.endpoint, token: opts.token, batchSize: opts.batchSize, flushTimeoutMs: opts.timeoutMs, leaseMs: opts.leaseMs },
  });
  if (resolved.errors.length > 0) throw new ConfigError(resolved.errors.join('; '));
  const { config } = resolved;
  const verbose = opts.verbose === true;
  const paths = statePaths(config.stateDir);
  const log = createLogger({ file: paths.log, level: config.logLevel, maxBytes: config.maxLogBytes, verbose, name: 'flush' });
  for (const w of resolved.warnings) log.warn(w);
  const started = Date.now();
  // Hook files nobody is draining (the drainer could not start, or died): turn them into events first.
  // The fast hook's own inbox, and the fallback one it writes when that cannot be written.
  for (const inbox of new Set([hookInbox(process.env), join(fallbackStateDirPath(process.env), 'inbox')])) {
    if (listInbox(inbox).length > 0) {
      const { default: drain } = await import('./drain');
      await drain({ inbox, idleMs: 0, config: opts.config });
    }
  }
  // Events spooled in the other state dir (the fallback, during an outage of the configured one) go first.
  const other = otherStateDir(config.stateDir, resolved.stateDirFallbackFrom, process.env);
  if (other && new Spool(statePaths(other)).hasWaiting()) {
    const o = await flushSpool({ config, paths: statePaths(other), log, deadline: started + config.flushTimeoutMs });
    log.info('flushed the other state dir', { dir: other, delivered: o.delivered, remaining: o.remaining });
  }
  const r = await flushSpool({ config, paths, log, deadline: started + config.flushTimeoutMs });
  if (verbose) {
    process.stderr.write(
      `flush: delivered ${r.delivered}, dead-lettered ${r.deadLettered}, reclaimed ${r.reclaimed}, remaining ${r.remaining}, ${r.attempts} request(s) in ${Date.now() - started} ms${r.lastError ? ` (last error: ${r.lastError})` : ''}\n`,
    );
  }
  return r.drained ? 0 : EXIT_TEMPFAIL;
}
