/**
 * The JSON API and the Prometheus families, computed from the store. Pure
 * translation of store rows into the shapes of docs/contracts.md.
 */
import { addTokens } from '../transcript/pricing';
import type { SessionFilter, SessionRow, Store } from './store';

const DAY_MS = 86_400_000;

export function utcDayStart(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** `since`/`until`: ISO dates or times, `YYYY-MM-DD`, or relative `24h`, `7d`. */
export function parseTime(v: string | null | undefined, now = Date.now()): number | undefined | null {
  if (v === null || v === undefined || v === '') return undefined;
  const rel = /^(\d+)(m|h|d)$/.exec(v);
  if (rel) return now - Number(rel[1]) * { m: 60_000, h: 3_600_000, d: DAY_MS }[rel[2] as 'm' | 'h' | 'd'];
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

interface Tally {
  tasks: number;
  succeeded: number;
  failed: number;
  tool_calls: number;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  tokens: number;
  cost_usd: number;
}

function tally(rows: SessionRow[]): Tally {
  const t: Tally = { tasks: 0, succeeded: 0, failed: 0, tool_calls: 0, input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, tokens: 0, cost_usd: 0 };
  for (const r of rows) {
    if (r.completed_at) {
      t.tasks++;
      if (r.success === false) t.failed++;
      else t.succeeded++;
    }
    t.tool_calls += r.tool_calls_count;
    addTokens(t, r);
    t.cost_usd += r.cost_usd;
  }
  t.tokens = t.input_tokens + t.output_tokens + t.cache_creation_input_tokens + t.cache_read_input_tokens;
  t.cost_usd = round6(t.cost_usd);
  return t;
}

const round6 = (v: number) => Math.round(v * 1e6) / 1e6;
const rate = (t: Tally) => (t.tasks === 0 ? null : round6(t.succeeded / t.tasks));

function groupBy(rows: SessionRow[], key: (r: SessionRow) => string | null) {
  const m = new Map<string, SessionRow[]>();
  for (const r of rows) {
    const k = key(r) ?? '(none)';
    (m.get(k) ?? m.set(k, []).get(k)!).push(r);
  }
  return [...m.entries()];
}

export async function summary(store: Store, f: SessionFilter, now = Date.now()) {
  const today = utcDayStart(now);
  const week = today - 6 * DAY_MS;
  const rows7 = await store.allSessions({ ...f, sinceMs: week }, now);
  const rowsToday = rows7.filter((r) => Date.parse(r.last_seen_at ?? '') >= today);
  const completedIn = (rows: SessionRow[], from: number) => rows.filter((r) => !r.completed_at || Date.parse(r.completed_at) >= from);
  const t = tally(completedIn(rowsToday, today));
  const w = tally(completedIn(rows7, week));
  const active = (await store.allSessions({ ...f, sinceMs: now - store.activeWindowMs }, now)).filter((r) => r.active);
  const bySource: Record<string, number> = {};
  for (const r of active) bySource[r.source ?? 'unknown'] = (bySource[r.source ?? 'unknown'] ?? 0) + 1;
  const counters = await store.counters();
  const sum = (metric: string) => counters.filter((c) => c.metric === metric).reduce((a, c) => a + c.value, 0);
  const rejectsByReason: Record<string, number> = {};
  for (const c of counters.filter((c) => c.metric === 'rejects_total')) rejectsByReason[c.labels.reason ?? 'unknown'] = c.value;
  const window = f.sinceMs !== undefined ? await store.allSessions(f, now) : rows7;
  const breakdown = (key: (r: SessionRow) => string | null, name: string) =>
    groupBy(window, key)
      .map(([k, rs]) => {
        const x = tally(rs);
        return { [name]: k, tasks: x.tasks, succeeded: x.succeeded, failed: x.failed, success_rate: rate(x), tool_calls: x.tool_calls, tokens: x.tokens, cost_usd: x.cost_usd };
      })
      .sort((a, b) => b.tasks - a.tasks || b.tokens - a.tokens);
  return {
    generated_at: new Date(now).toISOString(),
    today: { ...t, success_rate: rate(t) },
    last_7d: { tasks: w.tasks, succeeded: w.succeeded, failed: w.failed, success_rate: rate(w), tokens: w.tokens, cost_usd: w.cost_usd },
    active: { total: active.length, ralph: bySource.ralph ?? 0, by_source: bySource },
    ingest: { events: sum('events_total'), duplicates: sum('duplicates_total'), rejects: sum('rejects_total'), rejects_by_reason: rejectsByReason },
    by_project: breakdown((r) => r.project, 'project'),
    by_label: breakdown((r) => r.label, 'label'),
    top_tools: await store.topTools({ ...f, sinceMs: f.sinceMs ?? week }),
    /** Models with tokens but no price and no Claude Code cost: their cost is unknown, not zero. */
    unpriced_models: await store.unpricedModels(),
  };
}

export async function daily(store: Store, f: SessionFilter, days: number, now = Date.now()) {
  const from = utcDayStart(now) - (days - 1) * DAY_MS;
  const rows = await store.allSessions({ ...f, sinceMs: from }, now);
  const out = new Map<string, ReturnType<typeof tally> & { date: string; source: string }>();
  for (const r of rows) {
    const at = Date.parse(r.completed_at ?? r.last_seen_at ?? r.started_at ?? '');
    if (Number.isNaN(at) || at < from) continue;
    const date = new Date(utcDayStart(at)).toISOString().slice(0, 10);
    const source = r.source ?? 'unknown';
    const k = `${date}|${source}`;
    const t = tally([r]);
    const cur = out.get(k);
    if (!cur) out.set(k, { ...t, date, source });
    else for (const key of Object.keys(t) as Array<keyof Tally>) (cur[key] as number) = round6((cur[key] as number) + t[key]);
  }
  return {
    from: new Date(from).toISOString().slice(0, 10),
    days: [...out.values()].sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : a.source < b.source ? -1 : 1)),
  };
}

/** The Prometheus families live in metric-families.ts (bounded by metric-limits.ts). */
export { metricFamilies } from './metric-families';
