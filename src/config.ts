/**
 * One merge for every command: flag > env > config file > default, with the
 * origin of each value kept so `doctor` can say where a setting came from.
 * A bad env or file value warns and falls back; a bad flag is the user's typo
 * and is rejected (the caller decides: commands exit 2, `emit` logs and goes on).
 */
import { readFileSync } from 'node:fs';
import { defaultConfigFile, defaultStateDir } from './paths';
import { chooseStateDir } from './statedir';

type Env = Record<string, string | undefined>;
export type Origin = 'flag' | 'env' | 'file' | 'default';

export interface Config {
  /** Collector URL, e.g. http://127.0.0.1:8013/metrics/harness */
  endpoint: string;
  /** Bearer token for the collector. */
  token: string | undefined;
  /** Hard deadline for one `emit`, network included. */
  timeoutMs: number;
  /** Deadline for one `flush` run, retries included. */
  flushTimeoutMs: number;
  stateDir: string;
  maxSpoolBytes: number;
  maxSpoolFiles: number;
  /** Events per POST in `flush`; 1 sends bare single events. */
  batchSize: number;
  /** A claimed spool file older than this is returned to new/ (its flusher died). */
  leaseMs: number;
  /** Opt-in: send prompts / tool input / output, masked and capped. */
  includeContent: boolean;
  maxContentBytes: number;
  /** Longest wait after the circuit breaker opens. */
  breakerMaxBackoffMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  maxLogBytes: number;
  project: string | undefined;
  label: string | undefined;
  source: string | undefined;
  /** serve: a SQLite file or a postgres:// URL. */
  db: string | undefined;
  /** serve on PostgreSQL: connections per replica. */
  dbPoolSize: number;
  /** serve: /metrics keeps this many busiest values of each label, the rest as `other` (metric-limits.ts). */
  metricsMaxProjects: number;
  metricsMaxLabels: number;
  metricsMaxTools: number;
  metricsMaxModels: number;
  metricsMaxLoops: number;
}

type Kind = 'url' | 'string' | 'int' | 'bool' | 'level';
interface Spec {
  env: string[];
  kind: Kind;
  def: (env: Env) => unknown;
  min?: number;
  max?: number;
  description: string;
}

export const DEFAULT_ENDPOINT = 'http://127.0.0.1:8013/metrics/harness';

/** The configuration table (the README's table is generated from the same facts). */
export const CONFIG_SPEC: Record<keyof Config, Spec> = {
  endpoint: { env: ['CLAUDE_METRICS_ENDPOINT', 'METRICS_ENDPOINT'], kind: 'url', def: () => DEFAULT_ENDPOINT, description: 'collector URL (POST /metrics/harness)' },
  token: { env: ['CLAUDE_METRICS_TOKEN'], kind: 'string', def: () => undefined, description: 'bearer token sent to the collector' },
  timeoutMs: { env: ['CLAUDE_METRICS_TIMEOUT_MS'], kind: 'int', def: () => 300, min: 20, max: 60_000, description: 'hard deadline of one emit, network included' },
  flushTimeoutMs: { env: ['CLAUDE_METRICS_FLUSH_TIMEOUT_MS'], kind: 'int', def: () => 30_000, min: 100, max: 3_600_000, description: 'deadline of one flush run' },
  stateDir: { env: [], kind: 'string', def: (env) => defaultStateDir(env), description: 'spool, breaker, offsets and log (env CLAUDE_METRICS_STATE_DIR)' },
  maxSpoolBytes: { env: ['CLAUDE_METRICS_MAX_SPOOL_BYTES'], kind: 'int', def: () => 100 * 1024 * 1024, min: 1024, max: 1e12, description: 'spool bound in bytes; past it new events are dropped and counted' },
  maxSpoolFiles: { env: ['CLAUDE_METRICS_MAX_SPOOL_FILES'], kind: 'int', def: () => 100_000, min: 1, max: 10_000_000, description: 'spool bound in files' },
  batchSize: { env: ['CLAUDE_METRICS_BATCH_SIZE'], kind: 'int', def: () => 500, min: 1, max: 1000, description: 'events per request in flush (1 = bare single events)' },
  leaseMs: { env: ['CLAUDE_METRICS_LEASE_MS'], kind: 'int', def: () => 60_000, min: 1000, max: 86_400_000, description: 'age after which a claimed spool file is reclaimed' },
  includeContent: { env: ['CLAUDE_METRICS_INCLUDE_CONTENT'], kind: 'bool', def: () => false, description: 'send prompts and tool input/output (masked, capped)' },
  maxContentBytes: { env: ['CLAUDE_METRICS_MAX_CONTENT_BYTES'], kind: 'int', def: () => 4096, min: 64, max: 1_000_000, description: 'cap per content field when content is opted in' },
  breakerMaxBackoffMs: { env: ['CLAUDE_METRICS_BREAKER_MAX_BACKOFF_MS'], kind: 'int', def: () => 60_000, min: 100, max: 3_600_000, description: 'longest pause of the circuit breaker' },
  logLevel: { env: ['CLAUDE_METRICS_LOG_LEVEL'], kind: 'level', def: () => 'warn', description: 'log level of the log file in the state dir' },
  maxLogBytes: { env: ['CLAUDE_METRICS_MAX_LOG_BYTES'], kind: 'int', def: () => 5 * 1024 * 1024, min: 4096, max: 1e10, description: 'log file size before it is rotated' },
  project: { env: ['CLAUDE_METRICS_PROJECT'], kind: 'string', def: () => undefined, description: 'project name (else git top-level or cwd name)' },
  label: { env: ['CLAUDE_METRICS_LABEL'], kind: 'string', def: () => undefined, description: 'label for grouping (e.g. a loop name)' },
  db: { env: ['CLAUDE_METRICS_DB'], kind: 'string', def: () => undefined, description: 'serve: SQLite file (default <state dir>/collector.db) or postgres://user@host/db' },
  dbPoolSize: { env: ['CLAUDE_METRICS_DB_POOL_SIZE'], kind: 'int', def: () => 10, min: 1, max: 1000, description: 'serve on PostgreSQL: connections per replica' },
  metricsMaxProjects: { env: ['CLAUDE_METRICS_METRICS_MAX_PROJECTS'], kind: 'int', def: () => 25, min: 1, max: 10_000, description: 'serve: projects with their own /metrics series (the busiest; the rest as other)' },
  metricsMaxLabels: { env: ['CLAUDE_METRICS_METRICS_MAX_LABELS'], kind: 'int', def: () => 50, min: 1, max: 10_000, description: 'serve: labels with their own /metrics series' },
  metricsMaxTools: { env: ['CLAUDE_METRICS_METRICS_MAX_TOOLS'], kind: 'int', def: () => 30, min: 1, max: 10_000, description: 'serve: tools with their own /metrics series' },
  metricsMaxModels: { env: ['CLAUDE_METRICS_METRICS_MAX_MODELS'], kind: 'int', def: () => 20, min: 1, max: 10_000, description: 'serve: models with their own /metrics series' },
  metricsMaxLoops: { env: ['CLAUDE_METRICS_METRICS_MAX_LOOPS'], kind: 'int', def: () => 50, min: 1, max: 10_000, description: 'serve: ralph loops (project and label) with their own /metrics series' },
  source: { env: ['CLAUDE_METRICS_SOURCE'], kind: 'string', def: () => undefined, description: 'interactive | ralph | api | cron | backfill (else detected)' },
};

const LEVELS = ['debug', 'info', 'warn', 'error', 'silent'];

/** Parses one raw value for a key; returns an error message instead of throwing. */
export function parseValue(key: keyof Config, raw: unknown): { ok: true; value: unknown } | { ok: false; error: string } {
  const spec = CONFIG_SPEC[key];
  if (raw === undefined || raw === null || raw === '') return { ok: false, error: 'empty' };
  switch (spec.kind) {
    case 'string':
      return typeof raw === 'string' || typeof raw === 'number' ? { ok: true, value: String(raw) } : { ok: false, error: 'expected a string' };
    case 'url': {
      const s = String(raw);
      try {
        const u = new URL(s);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') return { ok: false, error: `expected an http(s) URL, got ${JSON.stringify(s)}` };
        return { ok: true, value: s };
      } catch {
        return { ok: false, error: `expected an http(s) URL, got ${JSON.stringify(s)}` };
      }
    }
    case 'int': {
      const n = typeof raw === 'number' ? raw : /^\s*-?\d+\s*$/.test(String(raw)) ? Number(raw) : Number.NaN;
      if (!Number.isInteger(n)) return { ok: false, error: `expected a whole number, got ${JSON.stringify(raw)}` };
      if (spec.min !== undefined && n < spec.min) return { ok: false, error: `must be at least ${spec.min}, got ${n}` };
      if (spec.max !== undefined && n > spec.max) return { ok: false, error: `must be at most ${spec.max}, got ${n}` };
      return { ok: true, value: n };
    }
    case 'bool': {
      if (typeof raw === 'boolean') return { ok: true, value: raw };
      const s = String(raw).toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(s)) return { ok: true, value: true };
      if (['0', 'false', 'no', 'off'].includes(s)) return { ok: true, value: false };
      return { ok: false, error: `expected true or false, got ${JSON.stringify(raw)}` };
    }
    case 'level': {
      const s = String(raw).toLowerCase();
      return LEVELS.includes(s) ? { ok: true, value: s } : { ok: false, error: `expected one of ${LEVELS.join(', ')}, got ${JSON.stringify(raw)}` };
    }
  }
}

export interface ResolvedConfig {
  config: Config;
  origins: Record<keyof Config, Origin>;
  /** Where the env value came from, e.g. METRICS_ENDPOINT. */
  envNames: Partial<Record<keyof Config, string>>;
  configFile: string;
  configFileFound: boolean;
  /** Bad env/file values that were ignored. */
  warnings: string[];
  /** Bad flag values (the user typed them): commands reject, emit logs. */
  errors: string[];
  /** The configured state dir when it could not be written and config.stateDir is the private fallback. */
  stateDirFallbackFrom?: string;
  /** Why the configured state dir cannot be written (set with or without a usable fallback). */
  stateDirProblem?: string;
  /** The warning about it (also in warnings, which every command logs). */
  stateDirWarning?: string;
}

export interface ResolveOptions {
  flags?: Partial<Record<keyof Config, unknown>>;
  env?: Env;
  /** Override the config file path (tests, --config). */
  configFile?: string;
  /**
   * Check that the state dir can be written and use the private fallback when it
   * cannot (src/statedir.ts). On by default; `serve` turns it off (its database
   * does not belong in a temp dir), pure tests too.
   */
  checkStateDir?: boolean;
}

function readConfigFile(path: string, warnings: string[]): { found: boolean; values: Record<string, unknown> } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { found: false, values: {} };
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return { found: true, values: parsed as Record<string, unknown> };
    warnings.push(`config file ${path}: expected a JSON object; ignored`);
  } catch (err) {
    warnings.push(`config file ${path}: not valid JSON (${(err as Error).message}); ignored`);
  }
  return { found: true, values: {} };
}

export function resolveConfig(opts: ResolveOptions = {}): ResolvedConfig {
  const env = opts.env ?? process.env;
  const flags = opts.flags ?? {};
  const warnings: string[] = [];
  const errors: string[] = [];
  const configFile = opts.configFile ?? defaultConfigFile(env);
  const file = readConfigFile(configFile, warnings);
  const config = {} as Record<string, unknown>;
  const origins = {} as Record<keyof Config, Origin>;
  const envNames: Partial<Record<keyof Config, string>> = {};
  const known = new Set(Object.keys(CONFIG_SPEC));
  for (const k of Object.keys(file.values)) if (!known.has(k)) warnings.push(`config file ${configFile}: unknown key "${k}" ignored`);

  for (const key of Object.keys(CONFIG_SPEC) as Array<keyof Config>) {
    const spec = CONFIG_SPEC[key];
    let settled = false;
    if (flags[key] !== undefined) {
      const r = parseValue(key, flags[key]);
      if (r.ok) {
        config[key] = r.value;
        origins[key] = 'flag';
        settled = true;
      } else errors.push(`--${kebab(key)}: ${r.error}`);
    }
    if (!settled) {
      for (const name of spec.env) {
        const raw = env[name];
        if (raw === undefined || raw === '') continue;
        const r = parseValue(key, raw);
        if (r.ok) {
          config[key] = r.value;
          origins[key] = 'env';
          envNames[key] = name;
          settled = true;
          break;
        }
        warnings.push(`${name}: ${r.error}; ignored`);
      }
    }
    if (!settled && file.values[key] !== undefined) {
      const r = parseValue(key, file.values[key]);
      if (r.ok) {
        config[key] = r.value;
        origins[key] = 'file';
        settled = true;
      } else warnings.push(`config file ${configFile}: ${key}: ${r.error}; ignored`);
    }
    if (!settled) {
      config[key] = spec.def(env);
      origins[key] = 'default';
    }
  }
  // stateDir's env variable is read by defaultStateDir; report it as env.
  if (origins.stateDir === 'default' && (env.CLAUDE_METRICS_STATE_DIR || env.XDG_STATE_HOME)) {
    origins.stateDir = 'env';
    envNames.stateDir = env.CLAUDE_METRICS_STATE_DIR ? 'CLAUDE_METRICS_STATE_DIR' : 'XDG_STATE_HOME';
  }
  const out: ResolvedConfig = { config: config as unknown as Config, origins, envNames, configFile, configFileFound: file.found, warnings, errors };
  if (opts.checkStateDir !== false) {
    const configured = config.stateDir as string;
    const choice = chooseStateDir(configured, env);
    if (choice.reason) {
      out.stateDirProblem = choice.reason;
      if (choice.fallbackFrom) {
        config.stateDir = choice.dir;
        out.stateDirFallbackFrom = configured;
        out.stateDirWarning = `state dir ${configured} cannot be written (${choice.reason}); using ${choice.dir} instead: set CLAUDE_METRICS_STATE_DIR to a writable directory (e.g. a volume)`;
      } else out.stateDirWarning = `state dir ${configured} cannot be written (${choice.reason}) and no private fallback can be: events are delivered directly and lost while the collector is unreachable; set CLAUDE_METRICS_STATE_DIR to a writable directory`;
      warnings.push(out.stateDirWarning);
    }
  }
  return out;
}

export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
