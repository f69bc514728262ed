/**
 * A circuit breaker shared by short-lived processes through a tiny state file:
 * after a failure the network is skipped (events go straight to the spool) until
 * a backoff has passed, so a dead or blackholed collector costs one deadline,
 * not one per hook. Last writer wins; the worst a race costs is one extra probe.
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { backoffMs } from './retry';

export interface BreakerState {
  failures: number;
  /** Epoch ms before which the network is not tried. */
  openUntil: number;
  lastError?: string;
  lastFailureAt?: number;
  /** The endpoint that failed: a breaker opened for another URL does not apply. */
  endpoint?: string;
}

export const CLOSED: BreakerState = { failures: 0, openUntil: 0 };

export function breakerAllows(state: BreakerState, now: number): boolean {
  return now >= state.openUntil;
}

export function afterFailure(state: BreakerState, now: number, opts: { maxBackoffMs: number; retryAfterMs?: number; error: string; endpoint?: string; random?: () => number }): BreakerState {
  const failures = state.failures + 1;
  const wait = backoffMs(failures - 1, { baseMs: 2000, maxMs: opts.maxBackoffMs, retryAfterMs: opts.retryAfterMs, random: opts.random });
  return { failures, openUntil: now + wait, lastError: opts.error.slice(0, 300), lastFailureAt: now, endpoint: opts.endpoint };
}

export function readBreaker(path: string, endpoint?: string): BreakerState {
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as Partial<BreakerState>;
    if (endpoint !== undefined && s.endpoint !== undefined && s.endpoint !== endpoint) return CLOSED;
    if (typeof s.failures === 'number' && typeof s.openUntil === 'number') return s as BreakerState;
  } catch {
    /* missing or torn: closed */
  }
  return CLOSED;
}

export function writeBreaker(path: string, state: BreakerState): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    try {
      writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    } catch {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    }
    renameSync(tmp, path);
  } catch (err) {
    // A full disk leaves the temp file created and empty: do not leave it behind.
    try {
      unlinkSync(tmp);
    } catch {
      /* never created */
    }
    throw err;
  }
}
