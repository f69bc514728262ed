/**
 * `claude-metrics serve`: the collector. Prints its address on stderr
 * (`claude-metrics serve: listening on http://HOST:PORT`), sweeps retention a
 * minute after listening (--retention-delay-ms) and hourly, and on SIGTERM/SIGINT stops accepting, lets in-flight
 * requests finish and closes the database cleanly.
 */
import { dirname, join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createCollector } from '../collector/http';
import { IngestActivity } from '../collector/ingest-activity';
import { RETENTION_DELAY_MS, RetentionSweeper } from '../collector/retention';
import { ACTIVE_WINDOW_MS, isPostgresUrl, openStore, redactUrl, type Store } from '../collector/store';
import { resolveConfig } from '../config';
import { CliError, ConfigError, UsageError } from '../errors';
import { createLogger } from '../log';
import { statePaths } from '../paths';

export default async function serve(opts: Record<string, unknown>): Promise<number> {
  // No temp-dir fallback for the database: an unwritable state dir is an error here (--db or CLAUDE_METRICS_STATE_DIR).
  const resolved = resolveConfig({ configFile: opts.config as string | undefined, flags: { token: opts.token, db: opts.db, dbPoolSize: opts.dbPoolSize, metricsMaxProjects: opts.metricsMaxProjects, metricsMaxLabels: opts.metricsMaxLabels, metricsMaxTools: opts.metricsMaxTools, metricsMaxModels: opts.metricsMaxModels, metricsMaxLoops: opts.metricsMaxLoops }, checkStateDir: false });
  if (resolved.errors.length > 0) throw new ConfigError(resolved.errors.join('; '));
  const { config } = resolved;
  const env = process.env;
  const host = (opts.host as string) ?? '127.0.0.1';
  const port = (opts.port as number | undefined) ?? (env.CLAUDE_METRICS_PORT ? Number(env.CLAUDE_METRICS_PORT) : 8013);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: expected 0 to 65535, got ${port}`);
  const retentionDays = (opts.retentionDays as number | undefined) ?? (env.CLAUDE_METRICS_RETENTION_DAYS ? Number(env.CLAUDE_METRICS_RETENTION_DAYS) : 90);
  if (!Number.isFinite(retentionDays) || retentionDays < 1) throw new UsageError(`--retention-days: expected a whole number of days ≥ 1, got ${retentionDays}`);
  const retentionDelayMs = (opts.retentionDelayMs as number | undefined) ?? RETENTION_DELAY_MS;
  if (!Number.isInteger(retentionDelayMs) || retentionDelayMs < 0) throw new UsageError(`--retention-delay-ms: expected a whole number of milliseconds ≥ 0, got ${retentionDelayMs}`);
  const activeWindowMs = activeWindow(opts.activeWindowMs as number | undefined, env.CLAUDE_METRICS_ACTIVE_WINDOW_MS);
  const routerMetricsUrl = opts.routerMetricsUrl as string | undefined;
  if (routerMetricsUrl !== undefined && !/^https?:\/\//.test(routerMetricsUrl)) throw new UsageError(`--router-metrics-url: expected an http(s) URL, got ${routerMetricsUrl}`);
  const paths = statePaths(config.stateDir);
  const dbPath = config.db ?? join(config.stateDir, 'collector.db');
  const log = createLogger({ file: join(config.stateDir, 'collector.log'), level: config.logLevel === 'warn' ? 'info' : config.logLevel, maxBytes: config.maxLogBytes, verbose: opts.verbose === true, name: 'serve' });
  void paths;

  let store: Store;
  try {
    store = await openStore(dbPath, { poolSize: config.dbPoolSize, log: (msg, fields) => log.warn(msg, fields) });
  } catch (err) {
    if ((err as Error).name === 'CliError') throw err; // already says what to do (the single binary without better-sqlite3)
    throw new CliError(`cannot open the database ${isPostgresUrl(dbPath) ? redactUrl(dbPath) : dbPath}: ${(err as Error).message}`, 'E_DB', 1);
  }
  store.activeWindowMs = activeWindowMs;
  if (opts.rebuildAggregates === true) {
    // One-off: the rollups from what is stored (a migration does this once by itself; this is for repairs).
    const t0 = Date.now();
    try {
      const r = await store.rebuildAggregates();
      process.stdout.write(
        `claude-metrics serve --rebuild-aggregates: ${r.sessions} sessions → ${r.rollupRows} session rollup rows, ${r.toolCalls} tool calls → ${r.toolRows} tool rollup rows, ${r.filterValues} filter values (db ${store.location}, ${Date.now() - t0} ms)\n`,
      );
      log.info('aggregates rebuilt', { ...r, ms: Date.now() - t0 });
    } finally {
      await store.close();
    }
    return 0;
  }
  // Retention sweeps a while after the collector listens (a first sweep can take minutes on a big
  // database; it deletes in chunks and ingest goes on between them), then hourly.
  // Its chunks start when this process's ingest is idle (ingest-activity.ts).
  const activity = new IngestActivity();
  const retention = new RetentionSweeper(store, retentionDays, log, undefined, retentionDelayMs, activity);

  // PostgreSQL overlaps a second transaction with the one committing; SQLite has one writer.
  const maxCommitsInFlight = store.kind === 'postgres' ? Math.max(1, Math.min(2, config.dbPoolSize - 1)) : 1;
  const dataDir = store.kind === 'sqlite' && dbPath !== ':memory:' ? dirname(resolve(dbPath)) : undefined; // where a full disk stops writes
  const server = createCollector({ store, token: config.token, log, dashboardDir: join(__dirname, '..', 'dashboard'), routerMetricsUrl, maxCommitsInFlight, dataDir, activity, retention: () => retention.status(),
    metricCaps: { project: config.metricsMaxProjects, label: config.metricsMaxLabels, tool: config.metricsMaxTools, model: config.metricsMaxModels, loop: config.metricsMaxLoops } });
  await new Promise<void>((resolvePromise, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new CliError(err.code === 'EADDRINUSE' ? `port ${port} on ${host} is in use (another collector?); pick one with --port` : `cannot listen on ${host}:${port}: ${err.message}`, 'E_LISTEN', 1)),
    );
    server.listen(port, host, () => resolvePromise());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  process.stderr.write(`claude-metrics serve: listening on http://${shownHost}:${addr.port} (db ${store.location}${config.token ? ', token required' : ''})\n`);
  log.info('listening', { host: addr.address, port: addr.port, db: store.location });
  retention.start();

  return new Promise<number>((resolvePromise) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal });
      // Stop accepting; idle keep-alive sockets close now, requests in flight finish; a sweep stops after its chunk.
      server.close(() => {
        void retention
          .stop()
          .then(() => store.close())
          .catch((err: unknown) => log.warn('closing the database', { error: (err as Error).message }))
          .then(() => {
            process.stderr.write('claude-metrics serve: stopped\n');
            resolvePromise(0);
          });
      });
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 10_000).unref();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** `--active-window-ms` (a typo is an error) > CLAUDE_METRICS_ACTIVE_WINDOW_MS (a bad value warns, the default stays) > 30 min. */
function activeWindow(flag: number | undefined, envValue: string | undefined): number {
  const ok = (n: number) => Number.isInteger(n) && n >= 1000;
  if (flag !== undefined) {
    if (!ok(flag)) throw new UsageError(`--active-window-ms: expected a whole number of milliseconds ≥ 1000, got ${flag}`);
    return flag;
  }
  if (envValue === undefined || envValue === '') return ACTIVE_WINDOW_MS;
  if (/^\d+$/.test(envValue) && ok(Number(envValue))) return Number(envValue);
  process.stderr.write(`claude-metrics serve: warning: CLAUDE_METRICS_ACTIVE_WINDOW_MS=${JSON.stringify(envValue)} is not a whole number of milliseconds ≥ 1000; using ${ACTIVE_WINDOW_MS}\n`);
  return ACTIVE_WINDOW_MS;
}
