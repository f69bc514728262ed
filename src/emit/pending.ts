/**
 * Tool durations: PreToolUse leaves a tiny file named by tool_use_id holding its
 * start time; PostToolUse reads and deletes it. A few microseconds of file I/O
 * instead of any shared process or lock.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SAFE = /^[A-Za-z0-9_.-]{1,200}$/;

export function markToolStart(dir: string, toolUseId: string, nowMs: number): void {
  if (!SAFE.test(toolUseId)) return;
  const file = join(dir, toolUseId);
  try {
    try {
      writeFileSync(file, String(nowMs), { mode: 0o600 });
    } catch {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(file, String(nowMs), { mode: 0o600 });
    }
  } catch (err) {
    // A full disk creates the file and writes nothing: an empty marker would time the tool from 1970.
    try {
      unlinkSync(file);
    } catch {
      /* never created */
    }
    throw err;
  }
}

/** Milliseconds since the matching PreToolUse, or undefined when there was none. */
export function takeToolDuration(dir: string, toolUseId: string, nowMs: number): number | undefined {
  if (!SAFE.test(toolUseId)) return undefined;
  const file = join(dir, toolUseId);
  try {
    const started = Number(readFileSync(file, 'utf8'));
    unlinkSync(file);
    return Number.isFinite(started) && started > 0 && started <= nowMs ? nowMs - started : undefined;
  } catch {
    return undefined;
  }
}

/** Drop markers whose PostToolUse never came (a crash, a denied tool). */
export function sweepStale(dir: string, maxAgeMs: number, nowMs: number): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    try {
      if (nowMs - statSync(join(dir, n)).mtimeMs > maxAgeMs) unlinkSync(join(dir, n));
    } catch {
      /* raced */
    }
  }
}
