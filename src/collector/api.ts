/**
 * The JSON API and the Prometheus families, computed from the store. Pure
 * translation of store rows into the shapes of docs/contracts.md.
 */
import { HOUR_MS, ROLLUP_VALUES, sessionDay, sessionValues, topToolsOf, zeroValues, type RollupSum, type RollupValues } from './rollups';
import type { SessionFilter, SessionRow, Store, ToolRow, ToolSum } from './store';

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

const round6 = (v: number) => Math.round(v * 1e6) / 1e6;
const rate = (t: Tally) => (t.tasks === 0 ? null : round6(t.succeeded / t.tasks));

/**
 * Summed session values as the API shows them. Costs were summed as integers
 * (rollups.ts): a total is rounded once to 6 decimals; /api/daily adds sessions
 * already rounded to 6 decimals (`perSessionCost`), as it always has.
 */
function tallyOf(v: RollupValues, perSessionCost = false): Tally {
  return {
    tasks: v.tasks,
    succeeded: v.succeeded,
    failed: v.failed,
    tool_calls: v.tool_calls,
    input_tokens: v.input_tokens,
    output_tokens: v.output_tokens,
    cache_creation_input_tokens: v.cache_creation_input_tokens,
    cache_read_input_tokens: v.cache_read_input_tokens,
    tokens: v.input_tokens + v.output_tokens + v.cache_creation_input_tokens + v.cache_read_input_tokens,
    cost_usd: perSessionCost ? v.cost_micro / 1e6 : round6(v.cost_nano / 1e9),
  };
}

function addValues(a: RollupValues, b: RollupValues): RollupValues {
  for (const k of ROLLUP_VALUES) a[k] += b[k];
  return a;
}

const sumSessions = (rows: SessionRow[]): RollupValues => rows.reduce((acc, r) => addValues(acc, sessionValues(r)), zeroValues());

/** Groups of summed values by a name; empty groups (every session left) are not groups. */
function grouped(entries: Iterable<[string, RollupValues]>): Array<[string, RollupValues]> {
  const m = new Map<string, RollupValues>();
  for (const [k, v] of entries) addValues(m.get(k) ?? m.set(k, zeroValues()).get(k)!, v);
  return [...m.entries()].filter(([, v]) => v.sessions > 0);
}

function breakdown(groups: Array<[string, RollupValues]>, name: 'project' | 'label') {
  return groups
    .map(([k, v]) => {
      const x = tallyOf(v);
      return { [name]: k, tasks: x.tasks, succeeded: x.succeeded, failed: x.failed, success_rate: rate(x), tool_calls: x.tool_calls, tokens: x.tokens, cost_usd: x.cost_usd };
    })
    .sort((a, b) => b.tasks - a.tasks || b.tokens - a.tokens || (a[name]! < b[name]! ? -1 : a[name]! > b[name]! ? 1 : 0));
}

/** What summary() shows, whichever way its sums were found. */
interface SummaryParts {
  today: RollupValues;
  week: RollupValues;
  byProject: Array<[string, RollupValues]>;
  byLabel: Array<[string, RollupValues]>;
  topTools: ToolRow[];
}

async function summaryOf(store: Store, f: SessionFilter, now: number, parts: SummaryParts) {
  const active = (await store.allSessions({ ...f, sinceMs: now - store.activeWindowMs }, now)).filter((r) => r.active);
  const bySource: Record<string, number> = {};
  for (const r of active) bySource[r.source ?? 'unknown'] = (bySource[r.source ?? 'unknown'] ?? 0) + 1;
  const ingest = await store.ingestTotals();
  const t = tallyOf(parts.today);
  const w = tallyOf(parts.week);
  return {
    generated_at: new Date(now).toISOString(),
    today: { ...t, success_rate: rate(t) },
    last_7d: { tasks: w.tasks, succeeded: w.succeeded, failed: w.failed, success_rate: rate(w), tokens: w.tokens, cost_usd: w.cost_usd },
    active: { total: active.length, ralph: bySource.ralph ?? 0, by_source: bySource },
    ingest: { events: ingest.events, duplicates: ingest.duplicates, rejects: Object.values(ingest.rejects).reduce((a, b) => a + b, 0), rejects_by_reason: ingest.rejects },
    by_project: breakdown(parts.byProject, 'project'),
    by_label: breakdown(parts.byLabel, 'label'),
    top_tools: parts.topTools,
    /** Models with tokens but no price and no Claude Code cost: their cost is unknown, not zero. */
    unpriced_models: await store.unpricedModels(),
  };
}

/**
 * The reference: /api/summary recomputed from the stored sessions of its
 * window. summary() must answer the same from the rollups (tested after
 * randomized storms); it is also the answer when `until` bounds the window.
 */
export async function summaryFromSessions(store: Store, f: SessionFilter, now = Date.now()) {
  const today = utcDayStart(now);
  const week = today - 6 * DAY_MS;
  const rows7 = await store.allSessions({ ...f, sinceMs: week }, now);
  const rowsToday = rows7.filter((r) => Date.parse(r.last_seen_at ?? '') >= today);
  const completedIn = (rows: SessionRow[], from: number) => rows.filter((r) => !r.completed_at || Date.parse(r.completed_at) >= from);
  const window = f.sinceMs !== undefined ? await store.allSessions(f, now) : rows7;
  const by = (key: (r: SessionRow) => string | null) => grouped(window.map((r) => [key(r) ?? '(none)', sessionValues(r)]));
  return summaryOf(store, f, now, {
    today: sumSessions(completedIn(rowsToday, today)),
    week: sumSessions(completedIn(rows7, week)),
    byProject: by((r) => r.project),
    byLabel: by((r) => r.label),
    topTools: await store.topTools({ ...f, sinceMs: f.sinceMs ?? week }),
  });
}

const dims = (f: SessionFilter) => ({ source: f.source || undefined, project: f.project || undefined, label: f.label || undefined });

/**
 * /api/summary from the rollups: whole UTC days from session_rollups; when `since`
 * falls inside a day, that first day's whole hours from session_hour_rollups, and
 * only the part of one hour before them from the sessions (and tool events). A
 * session's `seen_day`, last-seen hour and `day` (rollups.ts) place it exactly
 * where the reference's filters on last_seen and completed would.
 */
export async function summary(store: Store, f: SessionFilter, now = Date.now()) {
  if (f.untilMs !== undefined) return summaryFromSessions(store, f, now);
  const d = dims(f);
  const today = utcDayStart(now);
  const week = today - 6 * DAY_MS;
  const total = async (from: number) => (await store.rollupSums({ ...d, dayFrom: from, seenFrom: from, by: [] }))[0] ?? zeroValues();
  const since = f.sinceMs ?? week;
  const sinceDay = utcDayStart(since);
  const wholeFrom = since === sinceDay ? sinceDay : sinceDay + DAY_MS;
  // The first day's whole hours (none when `since` starts a day), and the raw part before them.
  const hourFrom = Math.min(wholeFrom, Math.ceil(since / HOUR_MS) * HOUR_MS);
  const hours = hourFrom < wholeFrom ? { from: hourFrom, before: wholeFrom } : undefined;
  const edge = since === hourFrom ? [] : await store.allSessions({ ...f, sinceMs: since, seenBeforeMs: hourFrom }, now);
  const by = async (dim: 'project' | 'label') => {
    const rows = await store.rollupSums({ ...d, seenFrom: wholeFrom, by: [dim] });
    const hourly = hours ? await store.rollupSums({ ...d, hours, by: [dim] }) : [];
    const entries = (xs: RollupSum[]) => xs.map((r): [string, RollupValues] => [r[dim] ?? '(none)', r]);
    return grouped([...entries(rows), ...entries(hourly), ...edge.map((r): [string, RollupValues] => [r[dim] ?? '(none)', sessionValues(r)])]);
  };
  const rolled = await store.toolRollupSums({ ...d, dayFrom: wholeFrom });
  let tools: ToolSum[];
  if (rolled === null) tools = await store.toolSums({ ...f, sinceMs: since });
  else {
    const hourly = hours ? ((await store.toolRollupSums({ ...d, hours })) ?? []) : [];
    const raw = since === hourFrom ? [] : await store.toolSums({ ...f, sinceMs: since, seenBeforeMs: hourFrom });
    tools = [...rolled, ...hourly, ...raw];
  }
  return summaryOf(store, f, now, { today: await total(today), week: await total(week), byProject: await by('project'), byLabel: await by('label'), topTools: topToolsOf(tools, 10) });
}

type DailyRow = Tally & { date: string; source: string };

function dailyOf(from: number, groups: Array<[string, RollupValues]>) {
  const days: DailyRow[] = groups.map(([k, v]) => {
    const [date, source] = k.split('|') as [string, string];
    return { ...tallyOf(v, true), date, source };
  });
  return {
    from: new Date(from).toISOString().slice(0, 10),
    days: days.sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : a.source < b.source ? -1 : a.source > b.source ? 1 : 0)),
  };
}

const dateOf = (dayMs: number) => new Date(dayMs).toISOString().slice(0, 10);

/** The reference: /api/daily recomputed from the stored sessions (see summaryFromSessions). */
export async function dailyFromSessions(store: Store, f: SessionFilter, days: number, now = Date.now()) {
  const from = utcDayStart(now) - (days - 1) * DAY_MS;
  const rows = await store.allSessions({ ...f, sinceMs: from }, now);
  const entries: Array<[string, RollupValues]> = [];
  for (const r of rows) {
    const day = sessionDay(r);
    if (day === null || day < from) continue;
    entries.push([`${dateOf(day)}|${r.source ?? 'unknown'}`, sessionValues(r)]);
  }
  return dailyOf(from, grouped(entries));
}

/** /api/daily from the rollups: its window is whole UTC days. */
export async function daily(store: Store, f: SessionFilter, days: number, now = Date.now()) {
  if (f.untilMs !== undefined) return dailyFromSessions(store, f, days, now);
  const from = utcDayStart(now) - (days - 1) * DAY_MS;
  const rows = await store.rollupSums({ ...dims(f), dayFrom: from, seenFrom: from, by: ['day', 'source'] });
  return dailyOf(from, grouped(rows.map((r) => [`${dateOf(r.day!)}|${r.source ?? 'unknown'}`, r])));
}

/** The Prometheus families live in metric-families.ts (bounded by metric-limits.ts). */
export { metricFamilies } from './metric-families';
