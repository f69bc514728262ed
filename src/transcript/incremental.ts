/**
 * Incremental transcript reading for the hooks: per file, a saved byte offset
 * and the message keys already emitted, so a Stop on a long session costs
 * O(new bytes). A message is emitted once it is settled — a later message
 * follows it, or the file has stopped growing, or the session ended — because
 * Claude Code writes a message several times while streaming and the last
 * (largest) write is the one that counts.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorCode } from '../errors';
import { scanTranscript, type UsageLine } from './reader';

export interface FileState {
  path: string;
  offset: number;
  /** Keys emitted recently (bounded): a repeat re-read after an offset rewind is not sent again. */
  emitted: string[];
}

const MAX_REMEMBERED = 10_000;

export function stateFileFor(dir: string, transcriptPath: string): string {
  return join(dir, `${createHash('sha256').update(transcriptPath).digest('hex').slice(0, 32)}.json`);
}

export function loadState(dir: string, transcriptPath: string): FileState {
  try {
    const s = JSON.parse(readFileSync(stateFileFor(dir, transcriptPath), 'utf8')) as FileState;
    if (s.path === transcriptPath && typeof s.offset === 'number' && Array.isArray(s.emitted)) return s;
  } catch {
    /* first read of this file */
  }
  return { path: transcriptPath, offset: 0, emitted: [] };
}

export function saveState(dir: string, state: FileState): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = stateFileFor(dir, state.path);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify({ ...state, emitted: state.emitted.slice(-MAX_REMEMBERED) }), { mode: 0o600 });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true }); // a full disk leaves it created and empty
    throw err;
  }
}

export interface ReadNew {
  /** Settled messages not emitted before, largest repeat of each. */
  lines: UsageLine[];
  state: FileState;
  malformed: number;
}

/**
 * Reads what is new in a transcript. With `final` every message counts as
 * settled; otherwise the last message is held back (its streaming may go on)
 * and the offset stays at its first line, so the next read sees all its repeats.
 */
export function readNew(transcriptPath: string, state: FileState, final: boolean): ReadNew {
  let size = 0;
  try {
    size = statSync(transcriptPath).size;
  } catch {
    return { lines: [], state, malformed: 0 };
  }
  // A file that shrank was rewritten (or replaced): start over; ids keep it idempotent.
  const from = size < state.offset ? 0 : state.offset;
  const scan = scanTranscript(transcriptPath, from, { partialTail: 'skip' });
  const seen = new Set(state.emitted);
  const best = new Map<string, UsageLine>();
  const noKey: UsageLine[] = [];
  for (const l of scan.lines) {
    if (l.key === null) noKey.push(l);
    else {
      const prev = best.get(l.key);
      if (!prev || l.total > prev.total) best.set(l.key, l);
    }
  }
  let offset = scan.endOffset;
  const lastKey = scan.lines.length > 0 ? scan.lines[scan.lines.length - 1]!.key : null;
  if (!final && lastKey !== null) {
    const firstOfLast = scan.lines.find((l) => l.key === lastKey)!;
    offset = firstOfLast.offset;
    best.delete(lastKey);
  }
  const lines: UsageLine[] = [];
  const emitted = [...state.emitted];
  for (const [key, l] of best) {
    if (seen.has(key)) continue;
    lines.push(l);
    emitted.push(key);
  }
  // Lines without a message id are never deduplicated (as ccusage): each is emitted once, by offset.
  for (const l of noKey) {
    const key = `@${l.offset}`;
    if (seen.has(key) || (!final && l.offset >= offset)) continue;
    lines.push(l);
    emitted.push(key);
  }
  lines.sort((a, b) => a.offset - b.offset);
  return { lines, state: { path: transcriptPath, offset, emitted }, malformed: scan.malformed };
}

/**
 * A per-session lock (O_EXCL create): two Stops in a row run their workers one
 * after the other, each reading on from the other's offset. A lock older than
 * `staleMs` belongs to a dead worker and is taken over.
 */
export async function withLock<T>(lockFile: string, fn: () => Promise<T>, opts: { waitMs: number; staleMs: number }): Promise<T | undefined> {
  const until = Date.now() + opts.waitMs;
  for (;;) {
    try {
      closeSync(openSync(lockFile, 'wx', 0o600));
      break;
    } catch (err) {
      if (errorCode(err) === 'ENOENT') {
        mkdirSync(join(lockFile, '..'), { recursive: true, mode: 0o700 });
        continue;
      }
      if (errorCode(err) !== 'EEXIST') throw err;
      try {
        if (Date.now() - statSync(lockFile).mtimeMs > opts.staleMs) {
          unlinkSync(lockFile);
          continue;
        }
      } catch {
        continue;
      }
      if (Date.now() > until) return undefined;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(lockFile);
    } catch {
      /* gone */
    }
  }
}

/** Waits until the file has not changed for `quietMs` (or `maxMs` passed). Returns whether it settled. */
export async function waitForQuiet(path: string, quietMs: number, maxMs: number): Promise<boolean> {
  const started = Date.now();
  let last = -1;
  let since = Date.now();
  for (;;) {
    let size = -1;
    let mtime = 0;
    try {
      const st = statSync(path);
      size = st.size;
      mtime = st.mtimeMs;
    } catch {
      /* not there yet */
    }
    const sig = size * 1e13 + mtime;
    if (sig !== last) {
      last = sig;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return true;
    if (Date.now() - started >= maxMs) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}
