/**
 * The JSON API and the Prometheus families, computed from the store. Pure
 * translation of store rows into the shapes of docs/contracts.md.
 */
import { addTokens } from '../transcript/pricing';
import { histogramSamples, DURATION_BUCKETS_S, type MetricFamily, type Sample } from './prometheus';
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

const HELP: Record<string, [string, 'counter' | 'gauge']> = {
  events_total: ['Events accepted by the collector (duplicates excluded).', 'counter'],
  sessions_completed_total: ['Sessions and tasks completed, by outcome.', 'counter'],
  tool_calls_total: ['Tool calls (PostToolUse / PostToolUseFailure), by outcome.', 'counter'],
  tokens_total: ['Tokens of API requests (transcript usage and OTel api_request, each request once), by model and kind.', 'counter'],
  cost_usd_total: ['Cost in USD of API requests: Claude Code\'s own figure (OTel, transcript costUSD) where known, else the price table\'s estimate; unpriced models add nothing.', 'counter'],
  lines_of_code_total: ['Lines of code added and removed, from Claude Code\'s OTel metrics.', 'counter'],
  commits_total: ['Git commits made by Claude Code, from its OTel metrics.', 'counter'],
  pull_requests_total: ['Pull requests created by Claude Code, from its OTel metrics.', 'counter'],
  active_time_seconds_total: ['Active time in seconds (type user or cli), from Claude Code\'s OTel metrics.', 'counter'],
  otlp_ignored_total: ['OTLP log records and data points read and deliberately not kept (names not mapped), by signal.', 'counter'],
  run_reported_cost_usd_total: ['Cost in USD reported by Claude Code results of claude-metrics run tasks.', 'counter'],
  duplicates_total: ['Events received again and ignored (same event_id).', 'counter'],
  rejects_total: ['Events or requests rejected, by reason.', 'counter'],
};

/** "30 minutes", "1 minute", "5 seconds", "1500 ms": the active window as a help text says it. */
function formatWindow(ms: number): string {
  const unit = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
  if (ms % 60_000 === 0) return unit(ms / 60_000, 'minute');
  if (ms % 1000 === 0) return unit(ms / 1000, 'second');
  return `${ms} ms`;
}

export async function metricFamilies(store: Store, now = Date.now()): Promise<MetricFamily[]> {
  const byMetric = new Map<string, Array<{ labels: Record<string, string>; value: number }>>();
  for (const c of await store.counters()) (byMetric.get(c.metric) ?? byMetric.set(c.metric, []).get(c.metric)!).push(c);
  const families: MetricFamily[] = [];
  for (const [metric, [help, type]] of Object.entries(HELP)) {
    const samples = (byMetric.get(metric) ?? []).map((c) => ({ labels: c.labels, value: c.value }));
    if (metric === 'duplicates_total' && samples.length === 0) samples.push({ labels: {}, value: 0 });
    families.push({ name: `claude_harness_${metric}`, help, type, samples });
  }
  // Histogram from per-bucket counters.
  const buckets = byMetric.get('task_duration_seconds_bucket') ?? [];
  const sums = byMetric.get('task_duration_seconds_sum') ?? [];
  const groups = new Map<string, { labels: Record<string, string>; counts: number[]; sum: number }>();
  for (const b of buckets) {
    const { b: idx, ...labels } = b.labels;
    const k = JSON.stringify(labels);
    const g = groups.get(k) ?? groups.set(k, { labels, counts: [], sum: 0 }).get(k)!;
    g.counts[Number(idx)] = (g.counts[Number(idx)] ?? 0) + b.value;
  }
  for (const s of sums) {
    const g = groups.get(JSON.stringify(s.labels));
    if (g) g.sum = s.value;
  }
  const hist: Sample[] = [];
  for (const g of groups.values()) hist.push(...histogramSamples(g.labels, DURATION_BUCKETS_S, g.counts, g.sum));
  families.push({ name: 'claude_harness_task_duration_seconds', help: 'Duration of completed sessions and tasks in seconds.', type: 'histogram', samples: hist });

  // Gauges, computed now from recent sessions.
  const recent = await store.allSessions({ sinceMs: now - 7 * DAY_MS }, now);
  const active = new Map<string, { labels: Record<string, string>; value: number }>();
  const last = new Map<string, { labels: Record<string, string>; value: number }>();
  for (const r of recent) {
    const labels = { source: r.source ?? 'unknown', project: (r.project ?? '').slice(0, 128), label: (r.label ?? '').slice(0, 128) };
    const k = JSON.stringify(labels);
    const a = active.get(k) ?? active.set(k, { labels, value: 0 }).get(k)!;
    if (r.active) a.value++;
    const seen = Date.parse(r.last_seen_at ?? '') / 1000;
    const l = last.get(k) ?? last.set(k, { labels, value: 0 }).get(k)!;
    if (seen > l.value) l.value = seen;
  }
  families.push({ name: 'claude_harness_active_sessions', help: `Sessions started and not completed, with an event in the last ${formatWindow(store.activeWindowMs)}.`, type: 'gauge', samples: [...active.values()] });
  families.push({ name: 'claude_harness_last_event_timestamp_seconds', help: 'Unix time of the latest event, by source, project and label.', type: 'gauge', samples: [...last.values()] });
  return families;
}
