/**
 * Usage by session over a projects tree, deduplicated exactly as ccusage 20
 * does: key message.id + requestId (message.id alone without a requestId; no
 * message.id: never deduped); among repeats the largest token total wins (ties:
 * first seen), across all files, and the winner's file owns the tokens.
 */
import { collectUsage } from './collect';
import { localDate } from './dates';
import { listTranscripts } from './reader';
import { addTokens, type PriceTable, type Tokens } from './pricing';
import { openUsageCache, type CacheStats, type ReportLine } from './usage-cache';

export type CostMode = 'auto' | 'calculate' | 'display';

export interface SessionUsage extends Tokens {
  session_id: string;
  project: string;
  models: string[];
  cost_usd: number;
  last_activity: string;
}

export interface UsageReport {
  sessions: SessionUsage[];
  totals: Tokens & { cost_usd: number };
  files: number;
  malformed_lines: number;
  unknown_models: string[];
  /** What the per-file cache saved, when one was used. */
  cache?: CacheStats;
}

export interface ReportOptions {
  prices: PriceTable;
  mode?: CostMode;
  /** Inclusive dates, YYYY-MM-DD, compared with the line's local date. */
  since?: string;
  until?: string;
  session?: string;
  /** The per-file cache (usage-cache.ts) to answer from and keep; without it every file is read. */
  cacheFile?: string;
}

export function lineCost(line: ReportLine, prices: PriceTable, mode: CostMode): number {
  if (mode === 'display') return line.costUSD ?? 0;
  if (mode === 'auto' && line.costUSD !== null) return line.costUSD;
  return prices.cost(line.model, line.tokens);
}

export function buildReport(projectsDir: string, opts: ReportOptions): UsageReport {
  const usageCache = opts.cacheFile ? openUsageCache(projectsDir, opts.cacheFile) : undefined;
  const files = listTranscripts(projectsDir, usageCache?.dirs);
  const mode = opts.mode ?? 'auto';
  const sessions = new Map<string, SessionUsage>();
  // One session record per file, looked up by index rather than by a string key per line.
  const sessionOfFile: Array<SessionUsage | undefined> = [];
  const unknown = new Set<string>();
  const totals = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, cost_usd: 0 };
  // `line` may be a scratch object refilled for the next call: keep its values, never it.
  const add = (line: ReportLine, index: number) => {
    const file = files[index]!;
    if (opts.since || opts.until) {
      const date = localDate(line.timestamp);
      if (opts.since && date < opts.since) return;
      if (opts.until && date > opts.until) return;
    }
    if (opts.session && file.sessionId !== opts.session) return;
    let s = sessionOfFile[index];
    if (!s) {
      const key = `${file.project}/${file.sessionId}`;
      s = sessions.get(key);
      if (!s) {
        s = { session_id: file.sessionId, project: file.project, models: [], input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, cost_usd: 0, last_activity: line.timestamp };
        sessions.set(key, s);
      }
      sessionOfFile[index] = s;
    }
    const cost = lineCost(line, opts.prices, mode);
    if (mode !== 'display' && line.costUSD === null && !opts.prices.priceOf(line.model) && line.model !== '<synthetic>') unknown.add(line.model);
    addTokens(s, line.tokens);
    addTokens(totals, line.tokens);
    s.cost_usd += cost;
    totals.cost_usd += cost;
    // ccusage 20 leaves Claude Code's zero-usage API-error lines out of a session's models.
    if (line.model !== '<synthetic>' && !s.models.includes(line.model)) s.models.push(line.model);
    if (line.timestamp > s.last_activity) s.last_activity = line.timestamp;
  };
  // Winners in first-seen order, then the lines never deduplicated: the order ccusage sums in.
  let malformed: number;
  let cache: CacheStats | undefined;
  if (usageCache) {
    const cached = usageCache.collect(files);
    cached.each(add);
    ({ malformed, stats: cache } = cached);
  } else {
    const collected = collectUsage(
      files.map((f) => f.path),
      { partialTail: 'parse' },
    );
    for (const w of collected.best.values()) add(w.line, w.file);
    for (const w of collected.undeduped) add(w.line, w.file);
    malformed = collected.malformed;
  }
  const list = [...sessions.values()].sort((a, b) => (a.last_activity < b.last_activity ? 1 : a.last_activity > b.last_activity ? -1 : 0));
  for (const s of list) s.models.sort();
  return { sessions: list, totals, files: files.length, malformed_lines: malformed, unknown_models: [...unknown].sort(), ...(cache ? { cache } : {}) };
}
