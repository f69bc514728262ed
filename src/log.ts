/**
 * Logging for short-lived processes: one NDJSON line per message, appended
 * synchronously to a file in the state dir, in pino's line format (level number,
 * time, pid, msg) so pino-pretty and the same tooling read it. Not pino itself:
 * loading pino costs ~40 ms, which a hook that hits a problem would pay on top of
 * the problem. Disabled levels cost nothing; a broken log file never throws.
 * `--verbose` mirrors messages to stderr (never stdout: hook stdout reaches the model).
 */
import { appendFileSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<string, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  enabled(level: Level): boolean;
}

export interface LoggerOptions {
  file: string;
  level: string;
  maxBytes: number;
  /** Mirror to stderr (human-readable). */
  verbose?: boolean;
  name?: string;
}

export function createLogger(opts: LoggerOptions): Logger {
  const min = RANK[opts.level] ?? RANK.warn!;
  let checkedSize = false;
  const append = (line: string) => {
    if (!checkedSize) {
      checkedSize = true;
      try {
        if (statSync(opts.file).size > opts.maxBytes) renameSync(opts.file, `${opts.file}.1`);
      } catch {
        /* no file yet */
      }
    }
    try {
      appendFileSync(opts.file, line, { mode: 0o600 });
    } catch {
      mkdirSync(dirname(opts.file), { recursive: true, mode: 0o700 });
      appendFileSync(opts.file, line, { mode: 0o600 });
    }
  };
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (opts.verbose) {
      try {
        process.stderr.write(`claude-metrics ${level}: ${msg}${fields ? ` ${safeJson(fields)}` : ''}\n`);
      } catch {
        /* stderr closed */
      }
    }
    if (RANK[level]! < min) return;
    try {
      append(`${safeJson({ level: RANK[level], time: Date.now(), pid: process.pid, cmd: opts.name, ...fields, msg })}\n`);
    } catch {
      /* a broken log never breaks the caller */
    }
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    enabled: (level) => opts.verbose === true || RANK[level]! >= min,
  };
}

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v);
  } catch {
    return '{}';
  }
}
