/**
 * The session rollups, pure: what one stored session row contributes to the
 * small tables the dashboard reads (`session_rollups`, `filter_values`), and
 * the difference between two states of a row. A store reads a session before
 * and after a transaction changes it and adds `diff(before, after)` with
 * additive upserts; additions commute, so several replicas and any arrival
 * order give the same tables as recomputing them from the sessions.
 *
 * A session counts on two days: `day` (completed ?? last seen ?? started, the
 * day /api/daily puts it on) and `seen_day` (last seen, the day the breakdowns
 * select it by). Both move as the row changes, which is why the diff is of the
 * whole contribution, not of the fold's deltas.
 *
 * Costs are summed as integers (nano-USD for totals, micro-USD per session for
 * /api/daily, which rounds each session to 6 decimals before adding), so a sum
 * does not depend on the order it was added in and equals the recomputation.
 */
import type { HarnessEvent } from '../event';
import { foldTool, toolDelta, type ToolFact } from './facts';
import { factIdText, factOf, type FactRow } from './fold';
import { TOOL_EVENTS } from './normalize';
import type { SessionRow, ToolRow } from './store';

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;
export const utcDay = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;
export const utcHour = (ms: number): number => Math.floor(ms / HOUR_MS) * HOUR_MS;

/**
 * A dimension value as a key column: NULL and '' are different sessions'
 * projects and a primary key cannot hold NULL everywhere, so NULL is '' and a
 * value is '.' + value.
 */
export const dimKey = (v: string | null): string => (v === null ? '' : `.${v}`);
export const dimValue = (k: string): string | null => (k === '' ? null : k.slice(1));

/** The summed columns of a rollup row, in the order the tables declare them. */
export const ROLLUP_VALUES = ['sessions', 'tasks', 'succeeded', 'failed', 'tool_calls', 'input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'cost_nano', 'cost_micro'] as const;
export type RollupValue = (typeof ROLLUP_VALUES)[number];
export type RollupValues = Record<RollupValue, number>;

/** A rollup row's key: the two days (UTC day starts, ms) and the encoded dimensions. */
export interface RollupKey {
  day: number;
  seen_day: number;
  source: string;
  project: string;
  label: string;
}
export type RollupRow = RollupKey & RollupValues;

/** The dimensions /api/filters lists, each value with the number of stored sessions that have it. */
export type FilterDim = 'source' | 'project' | 'label';
export interface FilterCount {
  dim: FilterDim;
  value: string;
  sessions: number;
}

export const DIMS = ['source', 'project', 'label'] as const;
/** A row of session_dim_rollups: one dimension's value (encoded), the two days, the sums. */
export type DimRollupRow = { dim: FilterDim; value: string; day: number; seen_day: number } & RollupValues;

/**
 * A row of session_hour_rollups: the sessions last seen in one UTC hour, per (source, project,
 * label). What a window that starts inside a day reads for that first day's whole hours
 * (/api/summary?since=7d), so that only the part of one hour is read from the sessions.
 */
export type HourRollupRow = { hour: number; source: string; project: string; label: string } & RollupValues;

/**
 * A row of session_last_seen: the latest last-seen time of the sessions of one (source, project,
 * label), kept at ingest as a MAX (commutes, idempotent) for /metrics' last-event gauges. It can
 * only be too high (a session that left the combination, or was deleted), never too low: the
 * reader checks it against the sessions (metric-families.ts).
 */
export interface LastSeenRow {
  source: string;
  project: string;
  label: string;
  last_seen_ms: number;
}

/** The latest last-seen time of one (source, project, label), decoded: what /metrics' last-event gauges are made of. */
export interface LastSeen {
  source: string | null;
  project: string | null;
  label: string | null;
  last_seen_ms: number;
}

/**
 * session_last_seen's entries from `since` on, checked against the sessions. An entry is never
 * below the true latest last-seen time of its combination (every session written adds its own as a
 * MAX), so it is exact when a session of that combination was last seen at exactly that time (`at`,
 * an index lookup of the entries' times). One that is not (its session moved to another project,
 * or retention deleted it) makes the whole answer `recompute`'s, the grouping of the sessions
 * themselves: slower, still exact; `stale` says which entries to repair (the store's repairLastSeen).
 */
export async function checkedLastSeen(entries: LastSeenRow[], at: (times: number[]) => Promise<LastSeen[]>, recompute: () => Promise<LastSeen[]>): Promise<{ latest: LastSeen[]; stale: LastSeenRow[] }> {
  const keyOf = (l: { source: string | null; project: string | null; label: string | null }) => `${dimKey(l.source)}\u0000${dimKey(l.project)}\u0000${dimKey(l.label)}`;
  const decoded = entries.map((e): LastSeen => ({ source: dimValue(e.source), project: dimValue(e.project), label: dimValue(e.label), last_seen_ms: Number(e.last_seen_ms) }));
  if (decoded.length === 0) return { latest: [], stale: [] };
  const seen = new Set((await at([...new Set(decoded.map((e) => e.last_seen_ms))])).map((s) => `${keyOf(s)}\u0000${Number(s.last_seen_ms)}`));
  const holds = (e: LastSeen) => seen.has(`${keyOf(e)}\u0000${e.last_seen_ms}`);
  if (decoded.every(holds)) return { latest: decoded, stale: [] };
  const stale = entries.filter((_, i) => !holds(decoded[i]!)).map((e) => ({ ...e, last_seen_ms: Number(e.last_seen_ms) }));
  return { latest: (await recompute()).map((t) => ({ ...t, last_seen_ms: Number(t.last_seen_ms) })), stale };
}

/** What one session adds: its rollup rows (none when it has no time yet) and its filter values. */
export interface Contribution {
  row: RollupRow | null;
  hour: HourRollupRow | null;
  filters: FilterCount[];
}

export const zeroValues = (): RollupValues => ({ sessions: 0, tasks: 0, succeeded: 0, failed: 0, tool_calls: 0, input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, cost_nano: 0, cost_micro: 0 });

/** A cost beyond what a double holds (1e300 USD sent as a cost) is the largest double, so sums stay numbers. */
const finite = (x: number) => (Number.isFinite(x) ? x : Math.sign(x) * Number.MAX_VALUE);

/** One session's values, as the API tallies them (api.ts sums exactly these). */
export function sessionValues(r: SessionRow): RollupValues {
  const completed = r.completed_at !== null;
  return {
    sessions: 1,
    tasks: completed ? 1 : 0,
    succeeded: completed && r.success !== false ? 1 : 0,
    failed: completed && r.success === false ? 1 : 0,
    tool_calls: r.tool_calls_count,
    input_tokens: r.input_tokens,
    output_tokens: r.output_tokens,
    cache_creation_input_tokens: r.cache_creation_input_tokens,
    cache_read_input_tokens: r.cache_read_input_tokens,
    cost_nano: finite(Math.round(r.cost_usd * 1e9)),
    cost_micro: finite(Math.round(r.cost_usd * 1e6)),
  };
}

/** The day /api/daily puts a session on, or null when it has no time. */
export function sessionDay(r: SessionRow): number | null {
  const at = Date.parse(r.completed_at ?? r.last_seen_at ?? r.started_at ?? '');
  return Number.isNaN(at) ? null : utcDay(at);
}

/** A session (the API's shape, from toSession) → what it contributes; null → nothing. */
export function contribution(r: SessionRow | null): Contribution {
  if (r === null) return { row: null, hour: null, filters: [] };
  const filters: FilterCount[] = [];
  if (r.source !== null) filters.push({ dim: 'source', value: r.source, sessions: 1 });
  if (r.project !== null) filters.push({ dim: 'project', value: r.project, sessions: 1 });
  if (r.label !== null) filters.push({ dim: 'label', value: r.label, sessions: 1 });
  const day = sessionDay(r);
  const seen = Date.parse(r.last_seen_at ?? '');
  // A session without a last-seen time is in no window the API asks for (its filters compare last_seen).
  if (day === null || Number.isNaN(seen)) return { row: null, hour: null, filters };
  const dims = { source: dimKey(r.source), project: dimKey(r.project), label: dimKey(r.label) };
  const values = sessionValues(r);
  return { row: { day, seen_day: utcDay(seen), ...dims, ...values }, hour: { hour: utcHour(seen), ...dims, ...values }, filters };
}

/** A stored session's entry for session_last_seen (null when it has no last-seen time). */
export function lastSeenOf(r: SessionRow | null): LastSeenRow | null {
  const seen = Date.parse(r?.last_seen_at ?? '');
  return r === null || Number.isNaN(seen) ? null : { source: dimKey(r.source), project: dimKey(r.project), label: dimKey(r.label), last_seen_ms: seen };
}

export const rollupKeyText = (k: RollupKey): string => `${k.day}\u0000${k.seen_day}\u0000${k.source}\u0000${k.project}\u0000${k.label}`;

/**
 * Rollup and filter changes of one transaction, merged by key; rows whose
 * changes cancel out are dropped (a session whose key did not move and whose
 * values did not change writes nothing).
 */
export class RollupDelta {
  private readonly rowsByKey = new Map<string, RollupRow>();
  private readonly hoursByKey = new Map<string, HourRollupRow>();
  private readonly filtersByKey = new Map<string, FilterCount>();
  private readonly lastSeenByKey = new Map<string, LastSeenRow>();

  addRow(row: RollupRow, sign: 1 | -1): void {
    const k = rollupKeyText(row);
    let cur = this.rowsByKey.get(k);
    if (!cur) this.rowsByKey.set(k, (cur = { day: row.day, seen_day: row.seen_day, source: row.source, project: row.project, label: row.label, ...zeroValues() }));
    for (const v of ROLLUP_VALUES) cur[v] += sign * row[v];
  }

  addHour(row: HourRollupRow, sign: 1 | -1): void {
    const k = `${row.hour}\u0000${row.source}\u0000${row.project}\u0000${row.label}`;
    let cur = this.hoursByKey.get(k);
    if (!cur) this.hoursByKey.set(k, (cur = { hour: row.hour, source: row.source, project: row.project, label: row.label, ...zeroValues() }));
    for (const v of ROLLUP_VALUES) cur[v] += sign * row[v];
  }

  /** A session's state after the change: its combination's latest last-seen time is at least this (a MAX, never taken back). */
  addLastSeen(r: SessionRow | null): void {
    const l = lastSeenOf(r);
    if (!l) return;
    const k = `${l.source}\u0000${l.project}\u0000${l.label}`;
    const cur = this.lastSeenByKey.get(k);
    if (!cur || cur.last_seen_ms < l.last_seen_ms) this.lastSeenByKey.set(k, l);
  }

  addFilter(f: FilterCount, sign: 1 | -1): void {
    const k = `${f.dim}\u0000${f.value}`;
    const cur = this.filtersByKey.get(k);
    if (cur) cur.sessions += sign * f.sessions;
    else this.filtersByKey.set(k, { ...f, sessions: sign * f.sessions });
  }

  /** Adds `after − before` of one session. */
  diff(before: SessionRow | null, after: SessionRow | null): void {
    const b = contribution(before);
    const a = contribution(after);
    if (b.row) this.addRow(b.row, -1);
    if (a.row) this.addRow(a.row, 1);
    if (b.hour) this.addHour(b.hour, -1);
    if (a.hour) this.addHour(a.hour, 1);
    this.addLastSeen(after);
    for (const f of b.filters) this.addFilter(f, -1);
    for (const f of a.filters) this.addFilter(f, 1);
  }

  /** The rows to add, sorted by key (the order a store with row locks writes them in), zero rows left out. */
  rows(): RollupRow[] {
    return [...this.rowsByKey.entries()]
      .filter(([, r]) => ROLLUP_VALUES.some((v) => r[v] !== 0))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, r]) => r);
  }

  /** The hourly rows to add (session_hour_rollups), sorted by key, zero rows left out. */
  hourRows(): HourRollupRow[] {
    return sortedNonZero(this.hoursByKey);
  }

  /** The latest last-seen time per combination among the sessions this transaction wrote (session_last_seen, a MAX upsert). */
  lastSeen(): LastSeenRow[] {
    return [...this.lastSeenByKey.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
  }

  /**
   * The same changes per single dimension (session_dim_rollups): what an unfiltered or
   * one-filter question reads, a table whose size grows with days and distinct values,
   * not with sessions.
   */
  dimRows(): DimRollupRow[] {
    const m = new Map<string, DimRollupRow>();
    for (const r of this.rowsByKey.values()) {
      for (const dim of DIMS) {
        const k = `${dim}\u0000${r[dim]}\u0000${r.day}\u0000${r.seen_day}`;
        let cur = m.get(k);
        if (!cur) m.set(k, (cur = { dim, value: r[dim], day: r.day, seen_day: r.seen_day, ...zeroValues() }));
        for (const v of ROLLUP_VALUES) cur[v] += r[v];
      }
    }
    return [...m.entries()]
      .filter(([, r]) => ROLLUP_VALUES.some((v) => r[v] !== 0))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, r]) => r);
  }

  filters(): FilterCount[] {
    return [...this.filtersByKey.entries()]
      .filter(([, f]) => f.sessions !== 0)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, f]) => f);
  }

  get empty(): boolean {
    return this.rows().length === 0 && this.filters().length === 0;
  }
}

function sortedNonZero<R extends RollupValues>(m: Map<string, R>): R[] {
  return [...m.entries()]
    .filter(([, r]) => ROLLUP_VALUES.some((v) => r[v] !== 0))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, r]) => r);
}

/** `diff` of one session as a value (for tests and one-off callers). */
export function diff(before: SessionRow | null, after: SessionRow | null): { rows: RollupRow[]; filters: FilterCount[] } {
  const d = new RollupDelta();
  d.diff(before, after);
  return { rows: d.rows(), filters: d.filters() };
}

// ---- reading ----------------------------------------------------------------

/** A question to the rollups: filters, lower bounds on the two days, the columns to group by. */
export interface RollupQuery {
  source?: string;
  project?: string;
  label?: string;
  /** day >= dayFrom (a UTC day start). */
  dayFrom?: number;
  /** seen_day >= seenFrom (a UTC day start). */
  seenFrom?: number;
  /** Instead of the days: the sessions last seen in these whole UTC hours (session_hour_rollups; `by` then has no 'day'). */
  hours?: HourRange;
  by: Array<'day' | 'source' | 'project' | 'label'>;
}

/** Whole UTC hours: from ≤ hour < before (hour starts, ms). */
export interface HourRange {
  from: number;
  before: number;
}

export type RollupSum = Partial<{ day: number; source: string | null; project: string | null; label: string | null }> & RollupValues;

/**
 * The rollup query as SQL for either database (`ph(i)` writes the i-th placeholder).
 * A question about at most one dimension (filtered by it, grouped by it, or
 * neither) reads session_dim_rollups; one that crosses two (a project's labels)
 * reads session_rollups. Shards, where a table has them, are summed by the GROUP BY.
 */
export function rollupSql(q: RollupQuery, ph: (i: number) => string): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  const add = (cond: (p: string) => string, v: unknown) => {
    params.push(v);
    parts.push(cond(ph(params.length)));
  };
  const filtered = DIMS.filter((d) => q[d] !== undefined);
  const grouped = q.by.filter((b): b is (typeof DIMS)[number] => b !== 'day');
  const dims = [...new Set([...filtered, ...grouped])];
  const sums = ROLLUP_VALUES.map((v) => `sum(${v}) AS ${v}`).join(', ');
  if (q.hours) {
    // One table, every dimension crossed: an hour holds at most the combinations seen in it.
    for (const d of filtered) add((p) => `${d} = ${p}`, dimKey(q[d]!));
    add((p) => `hour >= ${p}`, q.hours.from);
    add((p) => `hour < ${p}`, q.hours.before);
    const by = grouped.join(', ');
    return { sql: `SELECT ${by ? `${by}, ` : ''}${sums} FROM session_hour_rollups WHERE ${parts.join(' AND ')}${by ? ` GROUP BY ${by}` : ''}`, params };
  }
  if (dims.length <= 1) {
    const dim = dims[0] ?? 'source';
    add((p) => `dim = ${p}`, dim);
    if (q[dim] !== undefined) add((p) => `value = ${p}`, dimKey(q[dim]!));
    if (q.dayFrom !== undefined) add((p) => `day >= ${p}`, q.dayFrom);
    if (q.seenFrom !== undefined) add((p) => `seen_day >= ${p}`, q.seenFrom);
    const cols = [...(q.by.includes('day') ? ['day'] : []), ...(grouped.length ? ['value'] : [])];
    const select = [...(q.by.includes('day') ? ['day'] : []), ...(grouped.length ? [`value AS ${dim}`] : [])];
    return { sql: `SELECT ${select.length ? `${select.join(', ')}, ` : ''}${sums} FROM session_dim_rollups WHERE ${parts.join(' AND ')}${cols.length ? ` GROUP BY ${cols.join(', ')}` : ''}`, params };
  }
  for (const d of filtered) add((p) => `${d} = ${p}`, dimKey(q[d]!));
  if (q.dayFrom !== undefined) add((p) => `day >= ${p}`, q.dayFrom);
  if (q.seenFrom !== undefined) add((p) => `seen_day >= ${p}`, q.seenFrom);
  const where = parts.length ? `WHERE ${parts.join(' AND ')}` : '';
  const by = q.by.join(', ');
  return { sql: `SELECT ${by ? `${by}, ` : ''}${sums} FROM session_rollups ${where}${by ? ` GROUP BY ${by}` : ''}`, params };
}

/** A row of rollupSql's answer (numbers may arrive as strings from PostgreSQL) → RollupSum with decoded dimensions. */
export function toRollupSum(r: Record<string, unknown>): RollupSum {
  const out = zeroValues() as RollupSum;
  for (const v of ROLLUP_VALUES) out[v] = Number(r[v] ?? 0);
  if ('day' in r) out.day = Number(r.day);
  for (const d of ['source', 'project', 'label'] as const) if (d in r) out[d] = dimValue(String(r[d]));
  return out;
}

// ---- tools ---------------------------------------------------------------------

/**
 * Top tools, kept at ingest from the tool facts (fold.ts): a call counts once,
 * on its first report's UTC day, source, project, label and tool, with that
 * report's duration; a later report that says it failed adds the failure (on
 * its own key, which is the same unless a report crossed midnight). The same
 * answers as the events' recomputation (rows.ts topToolsSql) for every call
 * reported once or reported again the same day without a longer duration.
 */
export interface ToolRollupRow {
  /** '' (every call), or the dimension whose value this row is for: one row per dimension, never a cross product. */
  dim: '' | FilterDim;
  value: string;
  day: number;
  tool: string;
  calls: number;
  failures: number;
  dur_sum: number;
  dur_count: number;
}

/** A row of tool_hour_rollups: tool_rollups' row of one UTC hour (what a window's partial first day reads). */
export type ToolHourRow = Omit<ToolRollupRow, 'day'> & { hour: number };

/** Tool rollup additions of newly stored events per UTC hour, given the tool facts stored before them (read-only here). */
export function toolHourRollups(events: Iterable<HarnessEvent>, facts: ReadonlyMap<string, FactRow>): ToolHourRow[] {
  const states = new Map<string, ToolFact | undefined>();
  const rows = new Map<string, ToolHourRow>();
  for (const e of events) {
    if (!TOOL_EVENTS.has(e.event)) continue;
    const fid = factOf(e);
    if (!fid) continue;
    const id = factIdText(fid);
    const prev = states.has(id) ? states.get(id) : (facts.get(id)?.state as ToolFact | undefined);
    const next = foldTool(prev, { failed: e.success === false });
    states.set(id, next);
    const d = toolDelta(prev, next);
    if ((d.tool_call === 0 && d.tool_failure === 0) || !e.tool_name) continue;
    const hour = utcHour(Date.parse(e.timestamp));
    const keys: Array<['' | FilterDim, string]> = [['', ''], ['source', dimKey(e.source)], ['project', dimKey(e.project ?? null)], ['label', dimKey(e.label ?? null)]];
    for (const [dim, value] of keys) {
      const k = `${dim}\u0000${value}\u0000${hour}\u0000${e.tool_name}`;
      const r = rows.get(k) ?? rows.set(k, { dim, value, hour, tool: e.tool_name, calls: 0, failures: 0, dur_sum: 0, dur_count: 0 }).get(k)!;
      r.calls += d.tool_call;
      r.failures += d.tool_failure;
      if (d.tool_call && e.duration_ms !== undefined && e.duration_ms !== null) {
        r.dur_sum += e.duration_ms;
        r.dur_count++;
      }
    }
  }
  return [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
}

/** The hourly tool rows summed into their UTC days (tool_rollups), sorted by key. */
export function toolDays(hours: Iterable<ToolHourRow>): ToolRollupRow[] {
  const rows = new Map<string, ToolRollupRow>();
  for (const h of hours) {
    const day = utcDay(h.hour);
    const k = `${h.dim}\u0000${h.value}\u0000${day}\u0000${h.tool}`;
    const r = rows.get(k) ?? rows.set(k, { dim: h.dim, value: h.value, day, tool: h.tool, calls: 0, failures: 0, dur_sum: 0, dur_count: 0 }).get(k)!;
    r.calls += h.calls;
    r.failures += h.failures;
    r.dur_sum += h.dur_sum;
    r.dur_count += h.dur_count;
  }
  return [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
}

/** Tool rollup additions of newly stored events per UTC day (toolHourRollups summed by day). */
export function toolRollups(events: Iterable<HarnessEvent>, facts: ReadonlyMap<string, FactRow>): ToolRollupRow[] {
  return toolDays(toolHourRollups(events, facts));
}

/** Per-tool sums (from the rollups, or from an edge day's events) → the API's top tools, most calls first. */
export function topToolsOf(sums: Iterable<{ tool: string; calls: number; failures: number; dur_sum: number; dur_count: number }>, limit: number): ToolRow[] {
  const m = new Map<string, { calls: number; failures: number; dur_sum: number; dur_count: number }>();
  for (const s of sums) {
    const cur = m.get(s.tool) ?? m.set(s.tool, { calls: 0, failures: 0, dur_sum: 0, dur_count: 0 }).get(s.tool)!;
    cur.calls += Number(s.calls);
    cur.failures += Number(s.failures);
    cur.dur_sum += Number(s.dur_sum);
    cur.dur_count += Number(s.dur_count);
  }
  return [...m.entries()]
    .filter(([, v]) => v.calls > 0)
    .sort(([a, x], [b, y]) => y.calls - x.calls || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, limit)
    .map(([tool, v]) => ({ tool, calls: v.calls, failures: v.failures, avg_duration_ms: v.dur_count === 0 ? null : Math.round(v.dur_sum / v.dur_count) }));
}

/** A question to the tool rollups: at most one filter, and whole days from `dayFrom` on or (tool_hour_rollups) whole hours. */
export type ToolRollupQuery = { source?: string; project?: string; label?: string } & ({ dayFrom: number; hours?: undefined } | { hours: HourRange; dayFrom?: undefined });

/** The tool rollup query, summed by tool; null when two filters cross (then the events answer). */
export function toolRollupSql(q: ToolRollupQuery, ph: (i: number) => string): { sql: string; params: unknown[] } | null {
  const filtered = DIMS.filter((d) => q[d] !== undefined);
  if (filtered.length > 1) return null;
  const dim = filtered[0];
  const sums = 'tool, sum(calls) AS calls, sum(failures) AS failures, sum(dur_sum) AS dur_sum, sum(dur_count) AS dur_count';
  const params: unknown[] = [dim ?? '', dim ? dimKey(q[dim]!) : ''];
  if (q.hours) return { sql: `SELECT ${sums} FROM tool_hour_rollups WHERE dim = ${ph(1)} AND value = ${ph(2)} AND hour >= ${ph(3)} AND hour < ${ph(4)} GROUP BY tool`, params: [...params, q.hours.from, q.hours.before] };
  return { sql: `SELECT ${sums} FROM tool_rollups WHERE dim = ${ph(1)} AND value = ${ph(2)} AND day >= ${ph(3)} GROUP BY tool`, params: [...params, q.dayFrom] };
}
