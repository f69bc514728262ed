/**
 * Reads every transcript of a tree and keeps ccusage 20's winners: per
 * message.id + requestId the line with the largest token total (ties: the first
 * seen, in path order), across all files; lines without a message id are never
 * deduplicated. The one place `usage` and `backfill` read a tree.
 *
 * One thread on purpose: splitting a 500 MB tree over two worker threads was
 * measured no faster here (1.85 s against 1.88 s), because sending ~150,000
 * winners back and folding them in cost what the second core saved.
 */
import { localDate } from './dates';
import { scanTranscript, type UsageLine } from './reader';

export interface CollectOptions {
  /** 'parse' for a one-off report (a whole unterminated last line counts), 'skip' when the file may still grow. */
  partialTail: 'skip' | 'parse';
  /** Drops lines before this local date (YYYY-MM-DD) before deduplication. */
  since?: string;
}

export interface Winner {
  line: UsageLine;
  /** Index into the files passed in. */
  file: number;
}

export interface Collected {
  /** Winners in the order their key was first seen: the order ccusage sums in. */
  best: Map<string, Winner>;
  undeduped: Winner[];
  malformed: number;
}

/** Reads `paths` in order; `onFile` is called after each, for progress. */
export function collectUsage(paths: readonly string[], opts: CollectOptions, onFile?: (done: number) => void): Collected {
  const out: Collected = { best: new Map(), undeduped: [], malformed: 0 };
  paths.forEach((path, file) => {
    const scan = scanTranscript(path, 0, { partialTail: opts.partialTail });
    out.malformed += scan.malformed;
    for (const line of scan.lines) {
      if (opts.since && localDate(line.timestamp) < opts.since) continue;
      if (line.key === null) {
        out.undeduped.push({ line, file });
        continue;
      }
      const prev = out.best.get(line.key);
      if (!prev || line.total > prev.line.total) out.best.set(line.key, { line, file });
    }
    onFile?.(file + 1);
  });
  return out;
}
