/**
 * Logging for short-lived processes: pino writing synchronously to a file in the
 * state dir (no worker-thread transport), created only when something is logged,
 * so the hot path pays nothing when all is well. A broken log file never throws.
 * `--verbose` mirrors messages to stderr (never stdout: hook stdout reaches the model).
 */
import { mkdirSync, renameSync, statSync } from 'node:fs';
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

type PinoLike = Record<Level, (obj: Record<string, unknown>, msg: string) => void>;

export function createLogger(opts: LoggerOptions): Logger {
  const min = RANK[opts.level] ?? RANK.warn!;
  let pino: PinoLike | null | undefined;
  const open = (): PinoLike | null => {
    if (pino !== undefined) return pino;
    try {
      mkdirSync(dirname(opts.file), { recursive: true, mode: 0o700 });
      try {
        if (statSync(opts.file).size > opts.maxBytes) renameSync(opts.file, `${opts.file}.1`);
      } catch {
        /* no file yet */
      }
      const p = require('pino') as typeof import('pino');
      const dest = p.destination({ dest: opts.file, sync: true, mode: 0o600 } as Parameters<typeof p.destination>[0]);
      pino = p.pino({ level: opts.level === 'silent' ? 'silent' : opts.level, base: { pid: process.pid, cmd: opts.name } }, dest) as unknown as PinoLike;
    } catch {
      pino = null;
    }
    return pino;
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
      open()?.[level](fields ?? {}, msg);
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
    return '';
  }
}
