/**
 * Usage by session over a projects tree, deduplicated exactly as ccusage 20
 * does: key message.id + requestId (message.id alone without a requestId; no
 * message.id: never deduped); among repeats the largest token total wins (ties:
 * first seen), across all files, and the winner's file owns the tokens.
 */
import { listTranscripts, scanTranscript, type TranscriptFile, type UsageLine } from './reader';
import type { PriceTable, Tokens } from './pricing';

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
}

export interface ReportOptions {
  prices: PriceTable;
  mode?: CostMode;
  /** Inclusive dates, YYYY-MM-DD, compared with the line's local date. */
  since?: string;
  until?: string;
  session?: string;
}

interface Winner {
  line: UsageLine;
  file: TranscriptFile;
}

/** The line's date in local time (TZ), as ccusage groups by it. */
export function localDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

export function lineCost(line: UsageLine, prices: PriceTable, mode: CostMode): number {
  if (mode === 'display') return line.costUSD ?? 0;
  if (mode === 'auto' && line.costUSD !== null) return line.costUSD;
  return prices.cost(line.model, line.tokens);
}

export function buildReport(projectsDir: string, opts: ReportOptions): UsageReport {
  const files = listTranscripts(projectsDir);
  const best = new Map<string, Winner>();
  const undeduped: Winner[] = [];
  let malformed = 0;
  for (const file of files) {
    const scan = scanTranscript(file.path, 0, { partialTail: 'parse' });
    malformed += scan.malformed;
    for (const line of scan.lines) {
      if (line.key === null) {
        undeduped.push({ line, file });
        continue;
      }
      const prev = best.get(line.key);
      if (!prev || line.total > prev.line.total) best.set(line.key, { line, file });
    }
  }
  const mode = opts.mode ?? 'auto';
  const sessions = new Map<string, SessionUsage>();
  const unknown = new Set<string>();
  const totals = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, cost_usd: 0 };
  for (const { line, file } of [...best.values(), ...undeduped]) {
    const date = localDate(line.timestamp);
    if (opts.since && date < opts.since) continue;
    if (opts.until && date > opts.until) continue;
    if (opts.session && file.sessionId !== opts.session) continue;
    const key = `${file.project}/${file.sessionId}`;
    let s = sessions.get(key);
    if (!s) {
      s = { session_id: file.sessionId, project: file.project, models: [], input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, cost_usd: 0, last_activity: line.timestamp };
      sessions.set(key, s);
    }
    const cost = lineCost(line, opts.prices, mode);
    if (mode !== 'display' && line.costUSD === null && !opts.prices.priceOf(line.model) && line.model !== '<synthetic>') unknown.add(line.model);
    for (const k of ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const) {
      s[k] += line.tokens[k];
      totals[k] += line.tokens[k];
    }
    s.cost_usd += cost;
    totals.cost_usd += cost;
    if (!s.models.includes(line.model)) s.models.push(line.model);
    if (line.timestamp > s.last_activity) s.last_activity = line.timestamp;
  }
  const list = [...sessions.values()].sort((a, b) => (a.last_activity < b.last_activity ? 1 : a.last_activity > b.last_activity ? -1 : 0));
  for (const s of list) s.models.sort();
  return { sessions: list, totals, files: files.length, malformed_lines: malformed, unknown_models: [...unknown].sort() };
}
