/** Where things live on disk. Pure given an env and a home directory. */
import { join } from 'node:path';
import { homedir } from 'node:os';

type Env = Record<string, string | undefined>;

export function homeDir(env: Env = process.env): string {
  return env.HOME || homedir();
}

/** State (spool, breaker, offsets, logs): $CLAUDE_METRICS_STATE_DIR > $XDG_STATE_HOME/claude-metrics > ~/.local/state/claude-metrics. */
export function defaultStateDir(env: Env = process.env): string {
  if (env.CLAUDE_METRICS_STATE_DIR) return env.CLAUDE_METRICS_STATE_DIR;
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'claude-metrics');
  return join(homeDir(env), '.local', 'state', 'claude-metrics');
}

/**
 * The fast hook's inbox (bin/claude-metrics-hook writes here). From the
 * environment alone, as the sh script computes it: it cannot read the config file.
 */
export function hookInbox(env: Env = process.env): string {
  return join(defaultStateDir(env), 'inbox');
}

/** Config file: $CLAUDE_METRICS_CONFIG > $XDG_CONFIG_HOME/claude-metrics/config.json > ~/.config/claude-metrics/config.json. */
export function defaultConfigFile(env: Env = process.env): string {
  if (env.CLAUDE_METRICS_CONFIG) return env.CLAUDE_METRICS_CONFIG;
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, 'claude-metrics', 'config.json');
  return join(homeDir(env), '.config', 'claude-metrics', 'config.json');
}

/** Claude Code's config root: $CLAUDE_CONFIG_DIR > ~/.claude. */
export function claudeConfigDir(env: Env = process.env): string {
  return env.CLAUDE_CONFIG_DIR || join(homeDir(env), '.claude');
}

export interface StatePaths {
  root: string;
  spool: { tmp: string; new: string; cur: string; dead: string };
  /** One byte appended per dropped event: lock-free counter, value = file size. */
  drops: string;
  breaker: string;
  /** PreToolUse start times, keyed by tool_use_id, to compute tool durations. */
  pending: string;
  /** Transcript reader offsets and dedupe state. */
  offsets: string;
  log: string;
  flushStamp: string;
  /** Pid file of the one process flushing the spool (src/spool/flush.ts). */
  flushLock: string;
}

/** A flush lock older than this is stale whatever its pid says: no flush runs past its deadline. */
export function flushLockStaleMs(flushTimeoutMs: number): number {
  return 2 * flushTimeoutMs + 60_000;
}

export function statePaths(root: string): StatePaths {
  const spool = join(root, 'spool');
  return {
    root,
    spool: { tmp: join(spool, 'tmp'), new: join(spool, 'new'), cur: join(spool, 'cur'), dead: join(spool, 'dead') },
    drops: join(root, 'spool', 'drops'),
    breaker: join(root, 'breaker.json'),
    pending: join(root, 'pending'),
    offsets: join(root, 'transcripts'),
    log: join(root, 'claude-metrics.log'),
    flushStamp: join(root, 'flush.stamp'),
    flushLock: join(root, 'flush.pid'),
  };
}
